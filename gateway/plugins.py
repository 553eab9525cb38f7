"""The plugin manager and a typed facade over its hooks.

One :class:`Plugins` per app (kept in ``app.extensions["gateway"]``). Built-in plugins are
loaded from the same entry-point group as vendors' (``gateway.plugins``); tests can pass
explicit plugin objects instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pluggy

from gateway import hookspecs
from gateway.errors import Problem, ProcedureError, StartupError
from gateway.models import Channel, FormContext, Manifest, Procedure, VerifiedPackage

ENTRY_POINT_GROUP = "gateway.plugins"
log = logging.getLogger(__name__)


def make_plugin_manager(config: Mapping[str, Any], extra: Sequence[object] = ()) -> pluggy.PluginManager:
    """Build and check a plugin manager.

    :param config: Gateway configuration; ``DISABLED_PLUGINS`` names entry points to block,
        ``LOAD_ENTRYPOINTS`` false loads none (tests register their own).
    :param extra: Plugin objects to register after the entry points (test-only plugins).
    """
    pm = pluggy.PluginManager("gateway")
    pm.add_hookspecs(hookspecs)
    for name in config.get("DISABLED_PLUGINS", ()):
        pm.set_blocked(name)
    if config.get("LOAD_ENTRYPOINTS", True):
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise StartupError(f"プラグインの実装が仕様に一致しません: {exc}") from exc
    return pm


class Plugins:
    """Typed access to the hooks, with registries merged and checked once at start-up."""

    def __init__(self, pm: pluggy.PluginManager, config: Mapping[str, Any]) -> None:
        self.pm = pm
        self.config = config
        self.procedures = self._collect_procedures()
        self.channels = self._collect_channels()
        for proc in self.procedures.values():
            if proc.channel not in self.channels:
                raise StartupError(
                    f"手続 {proc.code} の連携チャネル {proc.channel!r} が登録されていません")
        for scope, routes in config.get("ROUTES", {}).items():
            for code, channel in routes.items():
                if channel not in self.channels:  # caught now, not when an application arrives
                    raise StartupError(f"ROUTES の {scope} / {code} の連携チャネル {channel!r} が登録されていません")

    # -- registries

    def _collect_procedures(self) -> dict[tuple[str, str], Procedure]:
        found: dict[tuple[str, str], Procedure] = {}
        owners: dict[tuple[str, str], str] = {}
        for impl, result in self._each("register_procedures", config=self.config):
            for proc in result or ():
                key = (proc.code, proc.version)
                if key in found:
                    raise StartupError(
                        f"手続 {proc.code} (版 {proc.version}) が重複して登録されています: "
                        f"{owners[key]} と {impl}")
                found[key] = proc
                owners[key] = impl
        return found

    def _collect_channels(self) -> dict[str, Channel]:
        found: dict[str, Channel] = {}
        for impl, result in self._each("register_channels", config=self.config):
            for channel in result or ():
                if channel.name in found:
                    raise StartupError(f"連携チャネル {channel.name!r} が重複して登録されています ({impl})")
                found[channel.name] = channel
        return found

    def _each(self, hook_name: str, **kwargs: Any) -> Iterable[tuple[str, Any]]:
        """Call a registry hook per implementation so duplicates can name their plugin."""
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            yield impl.plugin_name, impl.function(**{a: kwargs[a] for a in impl.argnames})

    # -- lookups

    def procedure(self, code: str, version: str) -> Procedure:
        try:
            return self.procedures[(code, version)]
        except KeyError:
            versions = sorted(v for c, v in self.procedures if c == code)
            if versions:
                raise ProcedureError(
                    f"手続 {code} の様式バージョン {version} には対応していません (対応: {', '.join(versions)})",
                    code="procedure-version-unknown") from None
            raise ProcedureError(f"手続 {code} には対応していません") from None

    def channel(self, name: str) -> Channel:
        return self.channels[name]

    # -- decisions and added checks

    def route_delivery(self, procedure: Procedure, manifest: Manifest) -> str:
        name = self.pm.hook.route_delivery(procedure=procedure, manifest=manifest, config=self.config)
        if name not in self.channels:
            raise StartupError(f"連携チャネル {name!r} が登録されていません")
        return name

    def check_package(self, package: VerifiedPackage, procedure: Procedure) -> list[Problem]:
        return [p for found in self._call("check_package", package=package, procedure=procedure) for p in found or ()]

    def check_form(self, context: FormContext, procedure: Procedure) -> list[Problem]:
        return [p for found in self._call("check_form", context=context, procedure=procedure) for p in found or ()]

    def state_changed(self, arrival_number: str, old: str | None, new: str, actor: str, reason: str) -> None:
        try:
            self._call("application_state_changed", arrival_number=arrival_number, old_state=old, new_state=new,
                       actor=actor, reason=reason)
        except Exception:  # an event listener must never undo a recorded transition
            log.exception("application_state_changed listener failed for %s", arrival_number)

    def _call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """The results of hook ``hook_name``'s implementations, as pluggy calls them.

        These hooks run per package (state_changed per transition) and most gateways implement
        none of them: a hook without implementations is not called at all (pluggy's call
        machinery costs several µs even then) and returns no results.
        """
        hook = getattr(self.pm.hook, hook_name)
        return hook(**kwargs) if hook.get_hookimpls() else []

    def list_plugins(self) -> list[dict[str, Any]]:
        """Every registered plugin with its hooks and, for entry points, its distribution."""
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        out = []
        for name, plugin in self.pm.list_name_plugin():
            dist = dists.get(id(plugin))
            out.append({
                "name": name,
                "hooks": sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()),
                "distribution": f"{dist.project_name} {dist.version}" if dist else None,
            })
        return sorted(out, key=lambda p: p["name"])
