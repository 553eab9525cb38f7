"""What is measured: the real gateway (as ``create_app`` wires it) and the floor, in-process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.testpki import TestPKI

TOKEN = "bench-token-0123456789abcdef"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # gateway.app's format


def gateway_config(data_dir: Path, pki: TestPKI, log_level: str) -> dict[str, Any]:
    """The production defaults, but with the test PKI trusted and its CRLs at hand."""
    return {
        "DATA_DIR": str(data_dir),
        "TRUST_ANCHORS": [str(p) for p in pki.root_paths],
        "ALLOW_TEST_ROOTS": True,
        "REVOCATION_DIR": str(pki.directory / "crl"),
        "API_TOKENS": {"bench": TOKEN},
        "LOG_LEVEL": log_level,
    }


def log_to_file(path: Path, level: str) -> None:
    """Send the gateway's log (INFO by default, as in production) to a file, not the terminal.

    ``create_app`` calls ``logging.basicConfig``, which does nothing once the root logger has
    a handler; the per-package log lines are still formatted and written, as in production.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)


def make_gateway(config: dict[str, Any]):
    """The Flask app and its pipeline, exactly as ``gateway serve`` builds them."""
    from gateway.app import create_app

    app = create_app(config)
    return app, app.extensions["gateway.pipeline"]


def gateway_intake(pipeline: Any, expected_state: str = "queued") -> Callable[[bytes], bool]:
    """One package through ``Pipeline.intake``; True when it ended in ``expected_state``."""

    def intake(data: bytes) -> bool:
        receipt = pipeline.intake(data, source="bench")
        return receipt.state == expected_state and not receipt.replay

    return intake


def floor_intake(db_path: Path) -> Callable[[bytes], bool]:
    from bench.floor import FloorStore, floor_intake as floor

    store = FloorStore(db_path)

    def intake(data: bytes) -> bool:
        floor(data, store)
        return True

    return intake
