"""The real gateway as a process: ``gateway serve`` configured by environment, spoken to over HTTP.

Nothing is in-process here: the server is ``.venv/bin/gateway serve`` on a port the OS picks,
configured only through ``GATEWAY_*`` variables, and the crash tests ``kill -9`` it. What was
delivered is read from the drop folder and validated against the core system's schema.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import plugins.care_01
import plugins.childcare_01
from gateway.config import load_config
from gateway.samples import sample_for, tamper_form
from gateway.store import Store
from gateway.testpki import TestPKI
from tests.e2e_helpers import (
    GatewayProcess,
    assert_valid_target_file,
    delivered_arrival_number,
    drop_files,
    gateway_settings,
    http,
    my_numbers,
    run_gateway,
    signed_package,
    subprocess_env,
    transitions_to,
)

TOKEN = "tok"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ZIP = {"Content-Type": "application/zip"}
MAX_PACKAGE_BYTES = 200_000  # packages here are ~5 KB; small enough to send one byte over cheaply
EXPECTED = {"childcare-01": plugins.childcare_01.expected_problems, "care-01": plugins.care_01.expected_problems}


class Gateway:
    """One data directory and the server processes that ran on it."""

    def __init__(self, root: Path, pki: TestPKI, **settings: Any) -> None:
        self.root = root
        self.pki = pki
        self.data_dir = root / "var"
        self.drop = self.data_dir / "drop"
        self.env = subprocess_env(gateway_settings(
            self.data_dir, pki, API_TOKENS={"portal": TOKEN}, WORKER__POLL_SECONDS=0.1, LOG_LEVEL="INFO",
            **settings))
        self.processes: list[GatewayProcess] = []
        self.session = http()

    def serve(self, *options: str) -> GatewayProcess:
        process = GatewayProcess(["serve", "--port", "0", "--threads", "4", *options], cwd=self.root,
                                 env=self.env, log_path=self.root / f"serve-{len(self.processes)}.log")
        self.processes.append(process)
        return process.start()

    @property
    def url(self) -> str:
        return self.processes[-1].base_url

    def post(self, data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        return self.session.post(f"{self.url}/api/v1/applications", data=data,
                                 headers={**AUTH, **ZIP} if headers is None else headers, timeout=30)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", AUTH)
        return self.session.get(f"{self.url}{path}", timeout=30, **kwargs)

    def view(self, number: str) -> dict[str, Any]:
        response = self.get(f"/api/v1/applications/{number}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_state(self, number: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            view = self.view(number)
            if view["state"] == state or time.monotonic() > deadline:
                assert view["state"] == state, view
                return view
            time.sleep(0.05)

    def delivered_files(self, number: str) -> list[Path]:
        return [p for p in drop_files(self.drop) if p.name.startswith(f"{number}_")]

    def logs(self) -> str:
        return "".join(p.log() for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.stop()


def package(pki: TestPKI, code: str = "childcare-01", variant: str = "valid",
            arrival_number: str | None = None) -> tuple[str, bytes]:
    """A signed package from the procedure's own sample: (到達番号, bytes)."""
    return signed_package(pki, code, variant, arrival_number=arrival_number)


def assert_problem(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code and body["type"].endswith(f"/{code}") and body["status"] == status
    assert body["title"] and not body["title"].isascii(), "the title is Japanese"
    return body


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, pki: TestPKI) -> Iterator[Gateway]:
    """One server with its worker for the module, configured only by environment variables."""
    gateway = Gateway(tmp_path_factory.mktemp("e2e"), pki, LIMITS__MAX_PACKAGE_BYTES=MAX_PACKAGE_BYTES)
    gateway.serve()
    yield gateway
    gateway.close()


# --------------------------------------------------------------------------- acceptance and delivery


@pytest.mark.parametrize("code", ["childcare-01", "care-01"])
def test_valid_package_is_accepted_then_delivered_once_in_the_target_format(gw: Gateway, pki: TestPKI,
                                                                            code: str) -> None:
    number, data = package(pki, code)
    response = gw.post(data)
    assert response.status_code == 202, response.text
    assert response.headers["Location"].endswith(f"/api/v1/applications/{number}")
    receipt = response.json()
    assert receipt["到達番号"] == receipt["arrival_number"] == number
    assert receipt["state"] == "queued" and receipt["procedure"] == code

    view = gw.wait_for_state(number, "delivered")
    steps = [t["to"] for t in view["history"]]
    assert steps == ["received", "verified", "validated", "queued", "delivered"]
    assert all(t["at"] and t["actor"] for t in view["history"])
    assert [d["status"] for d in view["deliveries"]] == ["done"]
    assert view["deliveries"][0]["attempts"] == 1 and view["deliveries"][0]["delivered_at"]
    assert view["deliveries"][0]["receipt_id"].startswith("file:")
    assert view["procedure"] == code and view["signer"], view

    [delivered] = gw.delivered_files(number)
    root = assert_valid_target_file(delivered, code)
    assert delivered_arrival_number(root) == number


def test_same_package_again_is_200_with_the_same_receipt_and_no_second_delivery(gw: Gateway, pki: TestPKI) -> None:
    number, data = package(pki)
    first = gw.post(data)
    assert first.status_code == 202
    gw.wait_for_state(number, "delivered")

    again = gw.post(data)
    assert again.status_code == 200, again.text
    assert again.headers["Location"] == first.headers["Location"]
    assert again.json()["arrival_number"] == number
    assert again.json()["received_at"] == first.json()["received_at"]
    time.sleep(0.5)  # several worker polls
    view = gw.view(number)
    assert len(transitions_to(view, "delivered")) == 1 and len(view["deliveries"]) == 1
    assert len(gw.delivered_files(number)) == 1


def test_same_arrival_number_other_bytes_is_409_and_leaves_the_first_alone(gw: Gateway, pki: TestPKI) -> None:
    number, data = package(pki)
    assert gw.post(data).status_code == 202
    before = gw.wait_for_state(number, "delivered")
    _, other = package(pki, "childcare-01", "valid-minimal-wareki", arrival_number=number)

    assert_problem(gw.post(other), 409, "conflict")
    after = gw.view(number)
    assert after["package_sha256"] == before["package_sha256"]
    assert after["history"] == before["history"]
    assert len(gw.delivered_files(number)) == 1


# --------------------------------------------------------------------------- refusals


def test_tampered_package_is_400_signature_digest_mismatch_recorded_never_delivered(gw: Gateway,
                                                                                   pki: TestPKI) -> None:
    number, data = package(pki)
    body = assert_problem(gw.post(tamper_form(data)), 400, "signature-digest-mismatch")
    assert body["instance"] == "/api/v1/applications"
    view = gw.view(number)  # refused packages are on record for audit
    assert view["state"] == "refused" and view["error"]["code"] == "signature-digest-mismatch"
    time.sleep(0.3)
    assert gw.delivered_files(number) == [] and view["deliveries"] == []


@pytest.mark.parametrize("code, variant, error", [
    ("childcare-01", "invalid-mynumber", "rule-violation"),
    ("care-01", "invalid-schema", "schema-invalid"),
])
def test_invalid_form_is_422_with_located_errors(gw: Gateway, pki: TestPKI, code: str, variant: str,
                                                 error: str) -> None:
    number, data = package(pki, code, variant)
    body = assert_problem(gw.post(data), 422, error)
    assert body["errors"], body
    for item in body["errors"]:
        assert set(item) >= {"path", "line", "message"}
        assert item["path"].startswith("/") and isinstance(item["line"], int) and item["message"]
    assert {(e["code"], e["path"]) for e in body["errors"]} == {
        (e["code"], e["path"]) for e in EXPECTED[code](variant)}
    assert gw.view(number)["state"] == "refused"


def test_wrong_content_type_is_415(gw: Gateway, pki: TestPKI) -> None:
    _, data = package(pki)
    assert_problem(gw.post(data, headers={**AUTH, "Content-Type": "application/octet-stream"}),
                   415, "package-media-type")
    assert_problem(gw.post(data, headers=AUTH), 415, "package-media-type")


def test_callers_without_a_valid_token_are_401(gw: Gateway, pki: TestPKI) -> None:
    number, data = package(pki)
    for headers in (ZIP, {**ZIP, "Authorization": "Bearer wrong"}, {**ZIP, "Authorization": TOKEN}):
        response = gw.post(data, headers=headers)
        assert_problem(response, 401, "auth-required")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(gw.get(f"/api/v1/applications/{number}", headers={}), 401, "auth-required")
    assert gw.get(f"/api/v1/applications/{number}").status_code == 404, "nothing was stored"


def test_oversized_body_is_413(gw: Gateway) -> None:
    body = assert_problem(gw.post(b"\0" * (MAX_PACKAGE_BYTES + 1)), 413, "package-too-large")
    assert str(MAX_PACKAGE_BYTES) in body["detail"]


def test_oversized_chunked_body_is_413(gw: Gateway) -> None:
    """Without a Content-Length the limit must still hold while the body streams in."""
    chunks = (b"\0" * 50_000 for _ in range(MAX_PACKAGE_BYTES // 50_000 + 1))
    assert_problem(gw.post(chunks), 413, "package-too-large")


def test_unknown_application_is_404_problem(gw: Gateway) -> None:
    assert_problem(gw.get("/api/v1/applications/202611280000000000"), 404, "not-found")


def test_read_endpoints(gw: Gateway) -> None:
    health = gw.get("/healthz", headers={}).json()
    assert health["status"] == "ok" and health["allow_test_roots"] is True and health["authentication"] is True
    codes = {p["code"] for p in gw.get("/api/v1/procedures").json()}
    assert {"childcare-01", "care-01"} <= codes
    names = {p["name"] for p in gw.get("/-/plugins").json()}
    assert {"childcare_01", "care_01", "filedrop", "builtin_defaults"} <= names


def test_no_my_number_reaches_the_server_log(gw: Gateway, pki: TestPKI) -> None:
    """個人番号 must never be logged: not when accepted, delivered, or refused for a bad one."""
    config = load_config({})
    secrets = set()
    for code, variant in (("childcare-01", "valid"), ("care-01", "valid"), ("childcare-01", "invalid-mynumber")):
        number, data = package(pki, code, variant)
        gw.post(data)
        secrets.update(my_numbers(sample_for(config, code, variant).form_xml))
    gw.wait_for_state(number, "refused")
    time.sleep(0.3)
    logs = gw.logs()
    assert "delivered" in logs, "the log level shows the worker's activity"
    assert secrets and not [n for n in secrets if n in logs]


# --------------------------------------------------------------------------- crashes


def test_kill_9_right_after_202_then_restart_delivers_exactly_once(tmp_path: Path, pki: TestPKI) -> None:
    """The issue's check: a 202 means durably stored. Kill the server the moment it answers."""
    gw = Gateway(tmp_path, pki)
    try:
        server = gw.serve("--no-worker")
        number, data = package(pki)
        response = gw.post(data)
        assert response.status_code == 202
        server.kill()
        assert drop_files(gw.drop) == []

        gw.serve()  # same data directory, worker in-process this time
        view = gw.wait_for_state(number, "delivered")
        assert len(transitions_to(view, "delivered")) == 1 and len(view["deliveries"]) == 1
        assert [t["to"] for t in view["history"]].count("received") == 1
        [delivered] = drop_files(gw.drop)
        assert delivered_arrival_number(assert_valid_target_file(delivered, "childcare-01")) == number
        assert gw.post(data).status_code == 200, "the package survived the crash: a resend is a replay"
        time.sleep(0.3)
        assert len(drop_files(gw.drop)) == 1
    finally:
        gw.close()


def test_crash_between_delivery_and_its_commit_does_not_duplicate(tmp_path: Path, pki: TestPKI) -> None:
    """Kill the server after 202, deliver with ``gateway worker --once``, then roll the database
    back to before that delivery (what a crash after the file write but before the commit leaves)
    and deliver again: the drop folder still holds exactly one file per application."""
    gw = Gateway(tmp_path, pki)
    try:
        server = gw.serve("--no-worker")
        numbers = []
        for code in ("childcare-01", "care-01"):
            number, data = package(pki, code)
            assert gw.post(data).status_code == 202
            numbers.append(number)
        server.kill()

        snapshot = tmp_path / "snapshot"
        snapshot.mkdir()
        db_files = sorted(gw.data_dir.glob("gateway.db*"))
        for f in db_files:
            shutil.copy2(f, snapshot / f.name)

        first = run_gateway(["worker", "--once"], cwd=tmp_path, env=gw.env)
        assert first.returncode == 0 and "2 件を処理しました" in first.stdout, first.stderr
        delivered = {p.name: p.read_bytes() for p in drop_files(gw.drop)}
        assert len(delivered) == 2

        for f in gw.data_dir.glob("gateway.db*"):  # the commit "never happened"
            f.unlink()
        for f in snapshot.iterdir():
            shutil.copy2(f, gw.data_dir / f.name)

        second = run_gateway(["worker", "--once"], cwd=tmp_path, env=gw.env)
        assert second.returncode == 0 and "2 件を処理しました" in second.stdout, second.stderr
        assert {p.name: p.read_bytes() for p in drop_files(gw.drop)} == delivered
        assert not [p for p in gw.drop.rglob(".*")], "no temporary files left behind"

        gw.serve("--no-worker")
        for number in numbers:
            view = gw.view(number)
            assert view["state"] == "delivered"
            assert len(transitions_to(view, "delivered")) == 1
        third = run_gateway(["worker", "--once"], cwd=tmp_path, env=gw.env)
        assert "0 件を処理しました" in third.stdout
    finally:
        gw.close()


def test_package_left_in_received_by_a_crash_is_processed_when_the_portal_resends_it(tmp_path: Path,
                                                                                    pki: TestPKI) -> None:
    """A kill -9 between step 3 (arrival stored) and step 4 (verification): the portal got no 202,
    so it sends the same bytes again. lifecycle.md: nothing is ever lost after `received`."""
    gw = Gateway(tmp_path, pki)
    number, data = package(pki)
    # Exactly what the crash leaves behind: the arrival's commit and nothing after it.
    store = Store(f"sqlite:///{gw.data_dir / 'gateway.db'}")
    store.upgrade()
    store.record_arrival(arrival_number=number, package=data, source="http:portal")
    store.close()
    try:
        gw.serve()
        response = gw.post(data)
        assert response.status_code in (200, 202), response.text
        assert response.json()["state"] in ("queued", "delivered"), response.json()
        gw.wait_for_state(number, "delivered", timeout=5)
        assert len(drop_files(gw.drop)) == 1
    finally:
        gw.close()
