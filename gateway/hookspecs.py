"""Every hook a gateway plugin can implement.

Plugins are found through the entry-point group ``gateway.plugins`` (built-ins included) and
implement hooks with :data:`gateway.hookimpl`. Registries (``register_*``) return objects and
are merged by :class:`gateway.plugins.Plugins`, which refuses duplicates at start-up.
``firstresult`` is used only where the question is "who handles this?"; the built-in answer
is a ``trylast`` implementation, so a vendor's implementation wins.

Security checks live in the core: hooks here can add refusals, never remove one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from flask import Blueprint

    from gateway.errors import Problem
    from gateway.models import Channel, FormContext, Manifest, Procedure, VerifiedPackage

hookspec = pluggy.HookspecMarker("gateway")
hookimpl = pluggy.HookimplMarker("gateway")


# --------------------------------------------------------------------------- registries


@hookspec
def register_procedures(config: Mapping[str, Any]) -> Iterable[Procedure]:
    """Return the procedures this plugin handles.

    A ``(code, version)`` pair registered twice stops the gateway at start-up.

    :param config: The gateway configuration (read-only).
    :returns: :class:`gateway.models.Procedure` objects.
    """


@hookspec
def register_channels(config: Mapping[str, Any]) -> Iterable[Channel]:
    """Return the delivery channels this plugin provides (file drop, SOAP, REST, ...).

    A channel name registered twice stops the gateway at start-up.

    :param config: The gateway configuration (read-only).
    :returns: objects implementing :class:`gateway.models.Channel`.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``gateway`` command line.

    :param cli: The top-level click group.
    """


@hookspec
def register_blueprints(config: Mapping[str, Any]) -> Iterable[Blueprint]:
    """Return Flask blueprints to mount in the gateway's HTTP app.

    :param config: The gateway configuration (read-only).
    """


# --------------------------------------------------------------------------- decisions


@hookspec(firstresult=True)
def route_delivery(procedure: Procedure, manifest: Manifest, config: Mapping[str, Any]) -> str | None:
    """Name the channel an application is delivered through.

    Stops at the first non-None result. The built-in answer is the municipality's configured
    route (``ROUTES``) or else the procedure's default channel.

    :param procedure: The procedure that validated the form.
    :param manifest: The signed manifest (municipality, kind, ...).
    :param config: The gateway configuration.
    :returns: A registered channel name, or None to let the next plugin decide.
    """


# --------------------------------------------------------------------------- added checks


@hookspec
def check_package(package: VerifiedPackage, procedure: Procedure) -> Iterable[Problem]:
    """Add verification checks after the core's signature and certificate checks passed.

    Any problem returned refuses the package (``rule-plugin``). A plugin cannot undo a
    refusal made by the core.

    :param package: The verified package.
    :param procedure: Its procedure.
    :returns: Problems found (empty when none).
    """


@hookspec
def check_form(context: FormContext, procedure: Procedure) -> Iterable[Problem]:
    """Add business-rule checks to a procedure's own (e.g. a municipality's extra item).

    The form is **read-only**: read ``context.form``, never change it (no text, attribute or
    child changed, added or removed). The procedure's checks have run before this hook and
    read the form once for the package (:func:`gateway.validation.once_per_package`, kept for
    that package and form object); its transform runs after it and reuses that read, which
    holds the form's elements and the dates already parsed from their text. A change made here
    would reach the record in part or not at all, and the record would not be what the rules
    checked. Read items with :func:`gateway.validation.items_of` and
    :func:`~gateway.validation.text_of` (one pass over a block, no path lookups).

    :param context: The verified package and its schema-valid form (read-only).
    :param procedure: The procedure.
    :returns: Problems found (empty when none).
    """


# --------------------------------------------------------------------------- events


@hookspec
def application_state_changed(arrival_number: str, old_state: str | None, new_state: str,
                              actor: str, reason: str) -> None:
    """Called after each recorded state transition (``lifecycle.md``). Return value ignored.

    Implementations must not raise; an exception is logged and the transition stands.

    :param arrival_number: The application's 到達番号.
    :param old_state: The previous state, None for the first.
    :param new_state: The new state.
    :param actor: ``system``, ``plugin:<name>`` or ``staff:<user>``.
    :param reason: Why, in Japanese or as an error code.
    """
