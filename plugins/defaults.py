"""Built-in answers to the gateway's "who handles this?" hooks.

Every implementation here is ``trylast``: a vendor plugin that answers the same hook wins.
It is registered through the ``gateway.plugins`` entry point like any vendor plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway import hookimpl
from gateway.models import Manifest, Procedure


@hookimpl(trylast=True)
def route_delivery(procedure: Procedure, manifest: Manifest, config: Mapping[str, Any]) -> str:
    """The municipality's configured route, else the ``*`` route, else the procedure's default."""
    routes = config.get("ROUTES", {})
    for scope in (manifest.municipality_code, "*"):
        channel = routes.get(scope, {}).get(procedure.code)
        if channel:
            return str(channel)
    return procedure.channel
