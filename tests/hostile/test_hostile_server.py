"""A subset of the corpus against the real gateway: ``gateway serve`` as its own process, over HTTP.

Nothing is patched in that process, so "no network" is judged by the canaries alone: every
hostile URL points at a loopback HTTP server that must see no request, and every hostile
file reference at a file whose access time must not move. Memory is the server's own peak RSS
(``VmHWM``), which may not rise by more than the bound per case. After the subset the same
process still accepts a valid package, and its log holds no stack trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testpki import TestPKI
from tests.conftest import AUTH, TOKEN
from tests.e2e_helpers import GatewayProcess, gateway_settings, http, subprocess_env
from tests.hostile.corpus import BY_ID, DEFERRED, documented_statuses

TIME_LIMIT_SECONDS = 2.0
MEMORY_LIMIT_BYTES = 100 * 1024 * 1024
STATUSES = documented_statuses()
SUBSET = [
    # the attacks that would reach out (network, local files) if anything resolved them
    "reference-http", "reference-file", "transform-xslt-reading-files", "retrieval-method",
    "kousei-xxe-http", "kousei-parameter-entity-oob", "kousei-external-dtd", "form-xxe-file", "form-xxe-http",
    "form-parameter-entity-oob", "form-external-dtd", "form-xinclude",
    # the ones that cost memory or time if a limit were missing
    "kousei-billion-laughs", "form-quadratic-blowup", "form-deep-nesting", "form-huge-text-node",
    "zip-ratio-bomb", "zip-1gib-bomb-honest-header", "zip-1gib-bomb-lying-header", "zip-total-over-limit",
    "zip-overlapping-entries", "zip-10000-entries", "body-over-10mb",
    # one of each other family
    "form-one-digit", "signature-value-bit-flip", "xsw5-original-renamed", "second-signature",
    "signature-hmac-sha256", "keyvalue-next-to-x509data", "zip-slip", "zip-symlink", "zip-unsupported-version",
    "polyglot-pdf-zip", "cert-expired", "attacker-root-same-dn", "cert-revoked", "crl-stale",
]


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI, crl_dir: Path) -> Iterator[GatewayProcess]:
    root = tmp_path_factory.mktemp("hostile-server")
    env = subprocess_env(gateway_settings(root / "var", pki, API_TOKENS={"portal": TOKEN},
                                          REVOCATION_DIR=str(crl_dir), LOG_LEVEL="INFO"))  # INFO: the port line
    process = GatewayProcess(["serve", "--port", "0", "--threads", "4"], cwd=root, env=env,
                             log_path=root / "serve.log").start()
    yield process
    process.stop()


@pytest.mark.parametrize("case_id", SUBSET)
def test_hostile_package_against_the_real_server(case_id, server, kit, canary, canary_file):
    case = BY_ID[case_id]
    data = case.build(kit)
    before = peak_rss_bytes(server.proc.pid)
    fetched = len(canary.requests)
    canary_file.arm()
    start = time.perf_counter()
    response = http().post(f"{server.base_url}/api/v1/applications", data=data,
                           headers={**AUTH, "Content-Type": case.content_type}, timeout=30)
    elapsed = time.perf_counter() - start
    growth = peak_rss_bytes(server.proc.pid) - before
    body = response.json() if response.content else {}

    assert canary.requests[fetched:] == [], f"the canary server was fetched: {canary.requests[fetched:]}"
    assert not (canary_file.detects_reads and canary_file.was_read()), "the canary file was read"
    if case.code == DEFERRED:
        assert (response.status_code, body.get("state")) == (202, "verification_deferred")
    else:
        assert (response.status_code, body.get("code")) == (STATUSES[case.code], case.code), body.get("detail")
        assert response.headers["Content-Type"].startswith("application/problem+json")
    assert elapsed < TIME_LIMIT_SECONDS, f"took {elapsed:.2f} s"
    assert growth < MEMORY_LIMIT_BYTES, f"server peak RSS grew {growth / 2**20:.0f} MiB"


def test_real_server_still_serves_and_logged_no_stack_trace(server, kit):
    response = http().post(f"{server.base_url}/api/v1/applications", data=kit.package(),
                           headers={**AUTH, "Content-Type": "application/zip"}, timeout=30)
    assert (response.status_code, response.json()["state"]) == (202, "queued"), response.text
    assert http().get(f"{server.base_url}/healthz", timeout=10).json()["status"] == "ok"
    assert server.proc.poll() is None
    assert "Traceback" not in server.log()
