"""Fixtures for the hostile corpus: canaries, the kit, and long-lived gateways to attack.

One gateway per configuration serves the whole corpus (a module-scoped app): after every
hostile package it must still accept a valid one, which a fresh app per case would not show.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.testpki import TestPKI
from tests.conftest import TOKEN
from tests.hostile.certs import prepare_crl_dir
from tests.hostile.guards import CanaryFile, CanaryServer
from tests.hostile.kit import Kit

@pytest.fixture(scope="session")
def canary() -> Iterator[CanaryServer]:
    with CanaryServer() as server:
        yield server


@pytest.fixture(scope="session")
def canary_file(tmp_path_factory: pytest.TempPathFactory) -> CanaryFile:
    return CanaryFile(tmp_path_factory.mktemp("canary") / "passwd")


@pytest.fixture(scope="session")
def kit(pki: TestPKI, canary: CanaryServer, canary_file: CanaryFile) -> Kit:
    return Kit(pki, external=canary.url, secret_file=canary_file.url)


@pytest.fixture(scope="session")
def crl_dir(pki: TestPKI, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_crl_dir(pki, tmp_path_factory.mktemp("revocation") / "crl")


def gateway_config(root: Path, pki: TestPKI, crl_dir: Path, *, allow_test_roots: bool = True) -> dict:
    return {
        "DATA_DIR": str(root / "var"),
        "TRUST_ANCHORS": [str(p) for p in pki.root_paths],
        "ALLOW_TEST_ROOTS": allow_test_roots,
        "REVOCATION_DIR": str(crl_dir),
        "API_TOKENS": {"portal": TOKEN},
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI, crl_dir: Path) -> dict[str, Flask]:
    """"default": test roots allowed (the test PKI is trusted); "production": they are not."""
    return {
        "default": create_app(gateway_config(tmp_path_factory.mktemp("gw-default"), pki, crl_dir)),
        "production": create_app(gateway_config(tmp_path_factory.mktemp("gw-production"), pki, crl_dir,
                                                allow_test_roots=False)),
    }
