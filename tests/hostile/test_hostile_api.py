"""Every hostile package of the corpus through the real HTTP API (the Flask test client).

For each case: the exact stable code and the HTTP status docs/error-codes.md gives it, a
problem document without a stack trace, refused in under 2 s, no network (Python sockets
refused and recorded; the canary server and canary file untouched), and for the bombs a
bound on memory. After the corpus, the same gateway still accepts a valid package and has
queued nothing hostile for delivery.
"""

from __future__ import annotations

import pytest

from tests.conftest import AUTH
from tests.hostile.corpus import CASES, DEFERRED, Case, documented_statuses
from tests.hostile.guards import measure, no_network

TIME_LIMIT_SECONDS = 2.0
MEMORY_LIMIT_BYTES = 100 * 1024 * 1024
"""Per bomb: tracemalloc peak and the rise of the RSS high-water mark (security.md G2)."""
STATUSES = documented_statuses()
_accepted_hostile: list[str] = []


def post(app, case: Case, data: bytes):
    return app.test_client().post("/api/v1/applications", data=data, content_type=case.content_type, headers=AUTH)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}:{c.id}" + (f"[needs {c.depends}]" if c.depends else "")
                                            for c in CASES])
def test_hostile_package(case: Case, kit, gateways, canary, canary_file):
    data = case.build(kit)
    app = gateways[case.app]
    fetched = len(canary.requests)
    canary_file.arm()
    with no_network() as attempts, measure(trace_memory=case.bomb) as usage:
        response = post(app, case, data)
    body = response.get_json(silent=True) or {}
    if response.status_code in (200, 202) and body.get("state") != "verification_deferred":
        _accepted_hostile.append(case.id)

    assert attempts == [], f"network access during verification: {attempts}"
    assert canary.requests[fetched:] == [], f"the canary server was fetched: {canary.requests[fetched:]}"
    assert not (canary_file.detects_reads and canary_file.was_read()), "the canary file was read"
    got = body.get("code") or body.get("state")
    if case.code == DEFERRED:
        assert (response.status_code, body.get("state")) == (202, "verification_deferred"), \
            f"expected deferral, got {response.status_code} {got}"
        view = app.test_client().get(f"/api/v1/applications/{body['arrival_number']}", headers=AUTH).get_json()
        assert view["state"] == "verification_deferred"
    else:
        assert (response.status_code, got) == (STATUSES[case.code], case.code), body.get("detail")
        assert response.mimetype == "application/problem+json"
        assert body["type"].endswith(f"/{case.code}")
        assert "Traceback" not in response.get_data(as_text=True)
    assert usage.seconds < TIME_LIMIT_SECONDS, f"took {usage.seconds:.2f} s"
    if case.bomb:
        assert usage.peak_bytes < MEMORY_LIMIT_BYTES, f"tracemalloc peak {usage.peak_bytes / 2**20:.0f} MiB"
        assert usage.rss_growth_bytes < MEMORY_LIMIT_BYTES, f"RSS grew {usage.rss_growth_bytes / 2**20:.0f} MiB"


def test_gateway_still_serves_after_the_corpus(kit, gateways):
    """The gateway that took every hostile package accepts a valid one, and with the same guards."""
    valid = Case("valid", lambda kit: kit.package(), "", "control")
    with no_network() as attempts, measure(trace_memory=True) as usage:
        response = post(gateways["default"], valid, valid.build(kit))
    assert (response.status_code, response.get_json()["state"]) == (202, "queued"), response.get_json()
    assert attempts == [] and usage.seconds < TIME_LIMIT_SECONDS
    health = gateways["default"].test_client().get("/healthz").get_json()
    assert health["status"] == "ok" and health["applications"].get("queued", 0) >= 1


def test_nothing_hostile_was_queued(gateways):
    """Only the control package is queued for delivery; everything hostile was refused or deferred."""
    assert _accepted_hostile == []
    counts = gateways["default"].test_client().get("/healthz").get_json()["applications"]
    assert counts.get("queued", 0) + counts.get("validated", 0) <= 1, counts
