"""The HTTP contract of application-package.md, through the Flask test client."""

from __future__ import annotations

import json

from gateway.samples import tamper_form
from tests.conftest import AUTH, ZIP


def post(client, data: bytes, headers=None, content_type=ZIP):
    return client.post("/api/v1/applications", data=data, content_type=content_type,
                       headers=AUTH if headers is None else headers)


def test_accepts_signed_package_with_receipt_and_location(client, make_package):
    resp = post(client, make_package("childcare-01"))
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["state"] == "queued"
    assert body["到達番号"] == body["arrival_number"]
    assert resp.headers["Location"] == f"/api/v1/applications/{body['arrival_number']}"


def test_exact_replay_is_200_with_same_receipt(client, make_package):
    package = make_package("care-01")
    first = post(client, package)
    again = post(client, package)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.get_json()["arrival_number"] == first.get_json()["arrival_number"]
    history = client.get(first.headers["Location"], headers=AUTH).get_json()["history"]
    assert [step["to"] for step in history].count("received") == 1


def test_same_arrival_number_other_bytes_is_409(client, make_package):
    first = make_package("childcare-01", arrival_number="202611280000000777")
    other = make_package("care-01", arrival_number="202611280000000777")
    assert post(client, first).status_code == 202
    resp = post(client, other)
    assert resp.status_code == 409
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["type"].endswith("/conflict")


def test_tampered_form_is_refused_and_recorded(client, make_package):
    package = tamper_form(make_package("childcare-01", arrival_number="202611280000000778"))
    resp = post(client, package)
    assert resp.status_code == 400
    problem = resp.get_json()
    assert problem["code"] == "signature-digest-mismatch"
    assert problem["type"].endswith("/signature-digest-mismatch")
    assert problem["title"] == "電子署名を検証できません"
    view = client.get("/api/v1/applications/202611280000000778", headers=AUTH).get_json()
    assert view["state"] == "refused"


def test_rule_errors_list_path_line_message(client, make_package):
    resp = post(client, make_package("childcare-01", variant="invalid-mynumber"))
    assert resp.status_code == 422
    problem = resp.get_json()
    assert problem["code"] == "rule-violation"
    assert problem["errors"] and {"path", "line", "message"} <= set(problem["errors"][0])
    assert problem["errors"][0]["path"].startswith("/認定請求書/")


def test_schema_errors_list_path_line_message(client, make_package):
    resp = post(client, make_package("care-01", variant="invalid-schema"))
    assert resp.status_code == 422
    problem = resp.get_json()
    assert problem["code"].startswith("schema-")
    assert all(isinstance(e["line"], int) for e in problem["errors"])


def test_not_a_zip_is_refused_as_package_error(client):
    resp = post(client, b"%PDF-1.4 not a zip")
    assert resp.status_code == 400
    assert resp.get_json()["code"].startswith("package-")


def test_wrong_media_type_is_415(client, make_package):
    resp = post(client, make_package(), content_type="application/octet-stream")
    assert resp.status_code == 415
    assert resp.get_json()["code"] == "package-media-type"


def test_missing_or_wrong_token_is_401(client, make_package):
    assert post(client, make_package(), headers={}).status_code == 401
    resp = post(client, make_package(), headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_body_over_limit_is_413(app_config, make_package):
    from gateway.app import create_app

    small = create_app({**app_config, "LIMITS": {"MAX_PACKAGE_BYTES": 2000}}).test_client()
    resp = post(small, make_package())
    assert resp.status_code == 413
    assert resp.get_json()["code"] == "package-too-large"


def test_get_shows_state_history_evidence_and_deliveries(app, client, make_package):
    from gateway.serving import make_worker

    location = post(client, make_package("care-01")).headers["Location"]
    make_worker(app).run_once()
    view = client.get(location, headers=AUTH).get_json()
    assert view["state"] == "delivered"
    assert [h["to"] for h in view["history"]] == ["received", "verified", "validated", "queued", "delivered"]
    assert all(h["at"] and h["actor"] for h in view["history"])
    evidence = view["evidence"]
    assert evidence["signed"] is True and evidence["certificate"]["test_root"] is True
    assert "subject" not in evidence["certificate"]  # the 4 facts stay in the store
    assert evidence["revocation"]["state"] == "good" and evidence["revocation"]["detail"]["crl_number"] >= 1
    identity = evidence["identity"]
    assert identity["basic_facts"]["read"] is True and "申請者情報.氏名" in identity["basic_facts"]["comparison"]
    shown = json.dumps(evidence, ensure_ascii=False)
    assert "山田" not in shown and "１番１号" not in shown  # outcomes only: never the name or address
    assert view["deliveries"][0]["receipt_id"].startswith("file:kaigo-hoken/")


def test_unknown_application_is_404_problem(client):
    resp = client.get("/api/v1/applications/999999999999999999", headers=AUTH)
    assert resp.status_code == 404
    assert resp.mimetype == "application/problem+json"


def test_procedures_plugins_and_health(client):
    codes = {p["code"] for p in client.get("/api/v1/procedures").get_json()}
    assert {"childcare-01", "care-01"} <= codes
    assert any(p["name"] == "childcare_01" for p in client.get("/-/plugins").get_json())
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["allow_test_roots"] is True
