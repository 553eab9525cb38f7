"""Shared fixtures: the test PKI, the app, its clients, and signed packages.

Everything here is real: a real SQLite file per test, real RSA signatures from the project's
own test PKI, the built-in plugins loaded through their entry points.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.samples import make_sample_package, new_arrival_number, sample_for
from gateway.testpki import TestPKI, init_pki

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ZIP = "application/zip"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Verification must never reach the network: only loopback connections are allowed."""
    if request.node.get_closest_marker("network"):
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address):  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("/"):
            raise OSError(f"network access blocked in tests: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def app_config(tmp_path: Path, pki: TestPKI) -> dict:
    return {
        "DATA_DIR": str(tmp_path / "var"),
        "TRUST_ANCHORS": [str(p) for p in pki.root_paths],
        "ALLOW_TEST_ROOTS": True,
        "REVOCATION_DIR": str(pki.directory / "crl"),
        "API_TOKENS": {"portal": TOKEN},
        "WORKER": {"POLL_SECONDS": 0.05, "BACKOFF_SECONDS": 0.01, "MAX_ATTEMPTS": 3},
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def app(app_config: dict):
    return create_app(app_config)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def make_package(app, pki: TestPKI) -> Callable[..., bytes]:
    """Build a signed package from a procedure's own sample: ``make_package("care-01")``."""

    def make(code: str = "childcare-01", variant: str = "valid", **options) -> bytes:
        sample = sample_for(app.config, code, variant)
        options.setdefault("arrival_number", new_arrival_number())
        return make_sample_package(app.config, code, sample, pki_dir=pki.directory, **options)

    return make
