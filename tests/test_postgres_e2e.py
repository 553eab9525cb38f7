"""The whole gateway on PostgreSQL: HTTP intake, replay and conflict, refusals, delivery, races.

Each test gets its own schema on the test cluster (``tests/pg.py``); the app is the real one
from :func:`gateway.create_app` with only ``DATABASE_URL`` pointing there.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from gateway.app import create_app
from gateway.samples import tamper_form
from gateway.serving import make_worker
from gateway.testpki import TestPKI
from tests.conftest import AUTH, ZIP
from tests.e2e_helpers import (
    assert_valid_target_file,
    delivered_arrival_number,
    drop_files,
    signed_package,
    transitions_to,
)
from tests.pg import fresh_schema

pytestmark = pytest.mark.postgres
HEADERS = {**AUTH, "Content-Type": ZIP}


@pytest.fixture
def pg_app(app_config: dict) -> Iterator[Flask]:
    with fresh_schema() as url:
        app = create_app({**app_config, "DATABASE_URL": url})
        assert app.extensions["gateway.store"].engine.dialect.name == "postgresql"
        try:
            yield app
        finally:
            app.extensions["gateway.store"].close()


def drop_dir(app: Flask) -> Path:
    return Path(app.config["CHANNELS"]["filedrop"]["DIR"])


def post_all_at_once(app: Flask, bodies: list[bytes]) -> list[tuple[int, dict]]:
    """POST every body from its own thread and test client, released together by a barrier."""
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict] | None] = [None] * len(bodies)

    def post(index: int, body: bytes) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/applications", data=body, headers=HEADERS)
        results[index] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=post, args=(i, b)) for i, b in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in results), "a request did not finish"
    return results  # type: ignore[return-value]


def applications_numbered(app: Flask, number: str) -> list:
    return [a for a in app.extensions["gateway.store"].list_applications(limit=1000) if a.arrival_number == number]


@pytest.mark.parametrize("code", ["childcare-01", "care-01"])
def test_accept_replay_conflict_and_deliver(pg_app: Flask, pki: TestPKI, code: str) -> None:
    client = pg_app.test_client()
    number, data = signed_package(pki, code)
    first = client.post("/api/v1/applications", data=data, headers=HEADERS)
    assert first.status_code == 202, first.get_json()
    assert first.get_json()["state"] == "queued"

    replay = client.post("/api/v1/applications", data=data, headers=HEADERS)
    assert replay.status_code == 200 and replay.headers["Location"] == first.headers["Location"]
    conflict = client.post("/api/v1/applications", data=tamper_form(data), headers=HEADERS)
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "conflict"

    worker = make_worker(pg_app)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    view = client.get(first.headers["Location"], headers=AUTH).get_json()
    assert [t["to"] for t in view["history"]] == ["received", "verified", "validated", "queued", "delivered"]
    assert [d["status"] for d in view["deliveries"]] == ["done"]
    [delivered] = drop_files(drop_dir(pg_app))
    assert delivered_arrival_number(assert_valid_target_file(delivered, code)) == number
    assert len(applications_numbered(pg_app, number)) == 1


def test_refusals_are_recorded_and_never_delivered(pg_app: Flask, pki: TestPKI) -> None:
    client = pg_app.test_client()
    tampered_number, tampered = signed_package(pki)
    invalid_number, invalid = signed_package(pki, "childcare-01", "invalid-mynumber")
    assert client.post("/api/v1/applications", data=tamper_form(tampered), headers=HEADERS).get_json()["code"] \
        == "signature-digest-mismatch"
    response = client.post("/api/v1/applications", data=invalid, headers=HEADERS)
    assert response.status_code == 422 and response.get_json()["errors"][0]["code"] == "rule-mynumber-check-digit"
    garbage = client.post("/api/v1/applications", data=b"not a zip", headers=HEADERS)
    assert garbage.status_code == 400 and garbage.get_json()["code"] == "package-not-zip"

    store = pg_app.extensions["gateway.store"]
    for number in (tampered_number, invalid_number):
        assert store.get_application(number).state == "refused"
    assert [r.error_code for r in store.list_refusals()] == ["package-not-zip"]
    assert make_worker(pg_app).run_once() == 0
    assert drop_files(drop_dir(pg_app)) == []


def test_concurrent_identical_posts_make_exactly_one_application(pg_app: Flask, pki: TestPKI) -> None:
    number, data = signed_package(pki)
    results = post_all_at_once(pg_app, [data] * 8)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 7 + [202], results
    assert {body["arrival_number"] for _, body in results} == {number}
    assert len(applications_numbered(pg_app, number)) == 1

    assert make_worker(pg_app).run_once() == 1
    view = pg_app.test_client().get(f"/api/v1/applications/{number}", headers=AUTH).get_json()
    assert len(transitions_to(view, "received")) == 1 and len(transitions_to(view, "delivered")) == 1
    assert len(view["deliveries"]) == 1 and len(drop_files(drop_dir(pg_app))) == 1


def test_a_forged_package_racing_the_genuine_one_cannot_take_its_number(pg_app: Flask, pki: TestPKI) -> None:
    """Same 到達番号, other bytes, at the same moment: whichever arrives first, the forged one is
    refused and the genuine one ends up the one live application (at worst after a resend)."""
    number, genuine = signed_package(pki)
    forged = tamper_form(genuine)
    (genuine_status, _), (forged_status, forged_body) = post_all_at_once(pg_app, [genuine, forged])
    assert (genuine_status, forged_status) in ((202, 409), (202, 400), (409, 400)), (genuine_status, forged_body)
    if genuine_status == 409:  # the forged one held the number while it was being verified
        assert pg_app.test_client().post("/api/v1/applications", data=genuine, headers=HEADERS).status_code == 202

    live = [a for a in applications_numbered(pg_app, number) if a.live]
    assert [a.package_sha256 for a in live] == [hashlib.sha256(genuine).hexdigest()]
    assert live[0].state == "queued"
    assert make_worker(pg_app).run_once() == 1 and len(drop_files(drop_dir(pg_app))) == 1


def test_two_workers_deliver_each_application_once(pg_app: Flask, pki: TestPKI) -> None:
    client = pg_app.test_client()
    numbers = []
    for code in ("childcare-01", "care-01") * 3:
        number, data = signed_package(pki, code)
        assert client.post("/api/v1/applications", data=data, headers=HEADERS).status_code == 202
        numbers.append(number)
    workers = [make_worker(pg_app) for _ in range(2)]
    for worker in workers:
        worker.batch_size = 3
    claimed: list[int] = []
    barrier = threading.Barrier(len(workers))

    def run(worker: Callable[[], int]) -> None:
        barrier.wait()
        claimed.append(worker())

    threads = [threading.Thread(target=run, args=(w.run_once,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(claimed) == 6
    delivered = drop_files(drop_dir(pg_app))
    assert sorted(delivered_arrival_number(assert_valid_target_file(
        p, "childcare-01" if p.parent.name == "jidou-teate" else "care-01")) for p in delivered) == sorted(numbers)
    for number in numbers:
        view = client.get(f"/api/v1/applications/{number}", headers=AUTH).get_json()
        assert len(transitions_to(view, "delivered")) == 1 and len(view["deliveries"]) == 1
