"""The store on a real SQLite file and a real PostgreSQL database (see tests/pg.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from gateway.errors import Conflict, NotFound, Problem
from gateway.models import Applicant, CertificateInfo, Manifest, TargetRecord
from gateway.states import IllegalTransition, State
from gateway.store import Step, Store, Transition, manifest_fields, signer_summary
from gateway.store.engine import alembic_config
from gateway.store.lifecycle import likely_start
from gateway.store.schema import metadata
from tests.pg import database_url  # noqa: F401  (the fixture: SQLite and PostgreSQL)

T0 = dt.datetime(2026, 11, 28, 1, 15, tzinfo=dt.UTC)
NUMBER = "202611280000012345"
PACKAGE = b"PK\x03\x04 a signed package"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    yield store
    store.close()


def arrive(store: Store, package: bytes = PACKAGE, number: str = NUMBER, at: dt.datetime = T0):
    return store.record_arrival(arrival_number=number, package=package, source="http:portal",
                                received_at=at)


def to_validated(store: Store, app_id: int) -> None:
    store.transition(app_id, "verified", actor="system", reason="署名検証成功")
    store.transition(app_id, "validated", actor="system", reason="審査成功")


RECORD = TargetRecord(content=b"<Record>1</Record>", media_type="application/xml",
                      filename="jidou.xml", target="jidou-teate")


# --------------------------------------------------------------------------- schema


def test_migrations_build_exactly_the_declared_schema_from_empty(database_url):  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    store.upgrade()  # a second run finds nothing to do
    with store.engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert {"blobs", "applications", "transitions", "records", "outbox", "delivery_attempts",
            "refusals_audit"} <= set(sa.inspect(store.engine).get_table_names())
    store.close()


def test_sqlite_commits_are_durable(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'sub' / 'g.db'}")  # the folder is created
    with store.engine.connect() as conn:
        pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                   for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")}
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}
    store.close()


# --------------------------------------------------------------------------- arrival


def test_arrival_stores_the_exact_bytes_and_a_received_application(store):
    result = arrive(store)
    app = result.application
    assert not result.replay
    assert (app.arrival_number, app.state, app.live, app.received_at) == (NUMBER, State.RECEIVED, True, T0)
    assert app.package_sha256 == hashlib.sha256(PACKAGE).hexdigest()
    assert store.get_blob(app.package_sha256) == PACKAGE
    view = store.get_application(NUMBER)
    assert view.history == (Transition(NUMBER, None, State.RECEIVED, T0, "system", "受信 (http:portal)"),)


def test_the_same_package_again_is_a_replay_of_the_same_application(store):
    first = arrive(store).application
    again = arrive(store, at=T0 + dt.timedelta(minutes=5))
    assert again.replay
    assert again.application == first
    assert store.counts_by_state() == {State.RECEIVED: 1}
    assert len(store.get_application(NUMBER).history) == 1


def test_different_bytes_under_a_live_number_conflict_and_are_audited(store):
    arrive(store)
    with pytest.raises(Conflict) as caught:
        arrive(store, package=b"PK other bytes")
    assert caught.value.status == 409
    assert store.counts_by_state() == {State.RECEIVED: 1}
    (refusal,) = store.list_refusals()
    assert refusal.error_code == "conflict"
    assert store.get_blob(refusal.package_sha256) == b"PK other bytes"


def test_a_refused_package_does_not_squat_its_arrival_number(store):
    garbage = arrive(store, package=b"PK garbage").application
    refused = store.refuse(garbage.id, "signature-invalid", "署名値が一致しません",
                           [Problem(path="/DataRoot", message="不正", code="signature-invalid")])
    assert (refused.state, refused.live, refused.error_code) == (State.REFUSED, False, "signature-invalid")
    assert refused.problems == ({"path": "/DataRoot", "line": None, "message": "不正", "code": "signature-invalid"},)
    assert refused.as_dict()["error"] == {"code": "signature-invalid", "detail": "署名値が一致しません",
                                          "errors": [dict(refused.problems[0])]}

    real = arrive(store, at=T0 + dt.timedelta(hours=1))
    assert not real.replay and real.application.id != garbage.id
    assert store.get_application(NUMBER).application.id == real.application.id  # the live one
    assert store.get_application_by_id(garbage.id).application.state == State.REFUSED
    with pytest.raises(Conflict):  # the new live application now holds the number
        arrive(store, package=b"PK garbage")


def test_an_application_only_refused_is_still_found_by_its_number(store):
    app = arrive(store).application
    store.refuse(app.id, "schema-invalid", "様式不適合")
    assert store.get_application(NUMBER).application.state == State.REFUSED
    assert store.get_application("999999999999999999") is None


def test_unreadable_packages_are_audited(store):
    refusal = store.record_unreadable(b"not a zip", source="http:portal", error_code="package-not-zip",
                                      detail="ZIP ではありません", received_at=T0)
    assert store.list_refusals() == [refusal]
    assert store.get_blob(refusal.package_sha256) == b"not a zip"
    assert store.counts_by_state() == {}


def test_concurrent_identical_posts_make_one_application(store):
    results, errors = [], []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        try:
            results.append(arrive(store))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.application.id for r in results}) == 1
    assert sorted(r.replay for r in results) == [False] + [True] * 7
    assert store.counts_by_state() == {State.RECEIVED: 1}


def test_concurrent_different_posts_leave_one_winner_and_conflicts(store):
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def post(i: int) -> None:
        barrier.wait()
        try:
            arrive(store, package=f"PK variant {i}".encode())
            outcomes.append("stored")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["stored"]


# --------------------------------------------------------------------------- transitions


def test_transitions_record_time_actor_reason_and_fields(store):
    app = arrive(store).application
    manifest = Manifest(arrival_number=NUMBER, procedure_code="childcare-01", municipality_code="131016",
                        application_kind="新規申請", original_arrival_number="",
                        applied_at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=9))),
                        applicant=Applicant(name="山田　太郎"), form_id="childcare-01", form_version="1",
                        form_filename="childcare-01.xml")
    cert = CertificateInfo(subject="CN=山田太郎", issuer="CN=Test JPKI", serial_number=0xABC,
                           not_before=T0, not_after=T0 + dt.timedelta(days=365), der=b"\x30\x82")
    at = T0 + dt.timedelta(seconds=2)
    verified = store.transition(app.id, "verified", actor="system", reason="署名検証成功", at=at,
                                verified_at=at, signer=signer_summary(cert), flags=("要本人確認",),
                                evidence={"certificate": b"\x30\x82", "checked_at": at},
                                **manifest_fields(manifest))
    assert verified.state == State.VERIFIED and verified.updated_at == at
    assert (verified.procedure_code, verified.municipality_code, verified.application_kind) == (
        "childcare-01", "131016", "新規申請")
    assert verified.applied_at == dt.datetime(2026, 11, 28, 1, 15, tzinfo=dt.UTC)
    assert verified.original_arrival_number is None
    assert verified.flags == ("要本人確認",)
    assert verified.signer["serial_number"] == "abc" and "subject" not in verified.signer
    assert verified.evidence == {"certificate": "MII=", "checked_at": at.isoformat()}
    assert "evidence" not in verified.as_dict() and "MII=" not in repr(verified)  # personal data stays in
    assert store.get_application(NUMBER).history[-1] == Transition(
        NUMBER, State.RECEIVED, State.VERIFIED, at, "system", "署名検証成功")


def test_an_illegal_transition_is_refused_and_nothing_changes(store):
    app = arrive(store).application
    with pytest.raises(IllegalTransition):
        store.transition(app.id, "queued", actor="staff:tanaka", reason="手で")
    view = store.get_application(NUMBER)
    assert view.application.state == State.RECEIVED and len(view.history) == 1
    with pytest.raises(TypeError, match="not an updatable"):
        store.transition(app.id, "verified", actor="system", reason="x", state="delivered")


def test_advance_makes_several_recorded_transitions_in_one_commit_or_none(store):
    app = arrive(store).application
    with pytest.raises(IllegalTransition):  # the second step is illegal: the first is undone too
        store.advance(app.id, [Step("verified", "署名検証成功"), Step("queued", "飛ばし")], actor="system")
    assert store.get_application(NUMBER).application.state == State.RECEIVED
    done = store.advance(app.id, [Step("verified", "署名検証成功", {"procedure_code": "care-01"}),
                                  Step("validated", "審査成功")], actor="system")
    assert (done.state, done.procedure_code) == (State.VALIDATED, "care-01")
    assert [(t.from_state, t.to_state, t.reason) for t in store.get_application(NUMBER).history[1:]] == [
        (State.RECEIVED, State.VERIFIED, "署名検証成功"), (State.VERIFIED, State.VALIDATED, "審査成功")]


def test_queue_delivery_can_carry_the_verification_steps(store):
    app = arrive(store).application
    queued = store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1",
                                  steps_before=[Step("verified", "ok"), Step("validated", "ok")])
    assert queued.state == State.QUEUED
    assert [t.to_state for t in store.get_application(NUMBER).history] == [
        State.RECEIVED, State.VERIFIED, State.VALIDATED, State.QUEUED]


def test_listeners_hear_each_transition_after_it_is_committed(database_url):  # noqa: F811
    heard: list[tuple] = []
    store = Store(database_url, on_transition=lambda *args: heard.append(args))
    store.upgrade()
    app = arrive(store).application
    store.transition(app.id, "verification_deferred", actor="system", reason="revocation-unknown")
    with pytest.raises(IllegalTransition):
        store.transition(app.id, "validated", actor="system", reason="x")
    assert heard == [(NUMBER, None, "received", "system", "受信 (http:portal)"),
                     (NUMBER, "received", "verification_deferred", "system", "revocation-unknown")]
    store.close()


def test_naive_datetimes_are_refused(store):
    naive = dt.datetime(2026, 11, 28, 10, 15)
    with pytest.raises(ValueError, match="timezone-aware"):
        arrive(store, at=naive)
    app = arrive(store, at=dt.datetime(2026, 11, 28, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=9))))
    assert app.application.received_at == T0  # kept in UTC, read back in UTC
    assert store.get_application(NUMBER).application.received_at == T0
    with pytest.raises(sa.exc.StatementError, match="naive"):
        store.transition(app.application.id, "verified", actor="system", reason="ok", at=naive)


# --------------------------------------------------------------------------- queueing


def test_queue_delivery_stores_record_outbox_and_state_in_one_commit(store):
    app = arrive(store).application
    to_validated(store, app.id)
    queued = store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="childcare_01",
                                  plugin_version="1.2.0", options={"DIR": "/srv/drop"})
    assert (queued.state, queued.plugin_version) == (State.QUEUED, "1.2.0")
    view = store.get_application(NUMBER)
    (record,) = view.records
    assert (record.target, record.filename, record.size, record.plugin) == (
        "jidou-teate", "jidou.xml", len(RECORD.content), "childcare_01")
    assert store.get_blob(record.content_sha256) == RECORD.content
    (delivery,) = view.deliveries
    assert (delivery.channel, delivery.status, delivery.attempts, delivery.record_id) == (
        "filedrop", "pending", 0, record.id)
    assert [t.to_state for t in view.history][-1] == State.QUEUED


def test_an_accepted_package_costs_two_commits_and_eight_statements(store):
    # The intake's hot path (gateway/pipeline.py): arrival, then everything else in one commit,
    # where the UPDATE checks the expected state itself (no locking SELECT before it).
    statements: list[str] = []
    commits: list[bool] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0]))
    sa.event.listen(store.engine, "commit", lambda _conn: commits.append(True))
    app = arrive(store).application
    store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1",
                         steps_before=[Step("verified", "ok"), Step("validated", "ok")])
    assert len(commits) == 2
    assert statements == ["INSERT"] * 3 + ["UPDATE"] + ["INSERT"] * 4  # transitions: one executemany


def test_the_state_an_update_expects_is_only_a_guess(store):
    # queue_delivery's UPDATE first expects `received` (the usual start); from another state it
    # changes nothing there, and the locked way does the same moves from the actual state.
    app = arrive(store).application
    store.transition(app.id, "verification_deferred", actor="system", reason="revocation-unknown")
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0]))
    queued = store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1",
                                  steps_before=[Step("verified", "ok"), Step("validated", "ok")])
    assert statements == ["UPDATE", "SELECT", "UPDATE"] + ["INSERT"] * 4
    assert queued == store.get_application_by_id(app.id).application and queued.state == State.QUEUED
    assert [(t.from_state, t.to_state) for t in store.get_application(NUMBER).history] == [
        (None, State.RECEIVED), (State.RECEIVED, State.VERIFICATION_DEFERRED),
        (State.VERIFICATION_DEFERRED, State.VERIFIED), (State.VERIFIED, State.VALIDATED),
        (State.VALIDATED, State.QUEUED)]


@pytest.mark.parametrize("start", ["received", "verification_deferred"])  # the guessed start, and the locked way
def test_queue_delivery_without_read_back_writes_the_same_and_returns_nothing(store, start):
    # The pipeline ignores what queue_delivery returns: read_back=False spares reading back and
    # decoding the row, and must change nothing else (rows, history, what listeners hear).
    heard: list[tuple] = []
    store.on_transition = lambda *args: heard.append(args)
    steps = [Step("verified", "ok", {"procedure_code": "care-01", "flags": ["x"], "evidence": {"signed": True}}),
             Step("validated", "ok")]
    views, returned = [], []
    for number, read_back in (("202611280000000001", True), ("202611280000000002", False)):
        app = arrive(store, package=number.encode(), number=number).application
        if start != "received":
            store.transition(app.id, start, actor="system", reason="revocation-unknown", at=T0)
        returned.append(store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p",
                                             plugin_version="1", steps_before=steps, at=T0, read_back=read_back))
        views.append(store.get_application(number))
    read, unread = views
    assert returned == [read.application, None]
    assert dataclasses.replace(unread.application, id=read.application.id, arrival_number=read.arrival_number,
                               package_sha256=read.application.package_sha256) == read.application
    assert [dataclasses.replace(t, arrival_number="") for t in unread.history] == \
        [dataclasses.replace(t, arrival_number="") for t in read.history]
    assert [(r.target, r.content_sha256) for r in unread.records] == [(r.target, r.content_sha256) for r in read.records]
    assert [(d.channel, d.status) for d in unread.deliveries] == [(d.channel, d.status) for d in read.deliveries]
    half = len(heard) // 2
    assert [args[1:] for args in heard[half:]] == [args[1:] for args in heard[:half]]
    assert {args[0] for args in heard[half:]} == {"202611280000000002"}


def test_a_guess_that_does_not_hold_raises_what_the_actual_state_raises(store):
    app = arrive(store).application
    store.refuse(app.id, "signature-invalid", "x")
    with pytest.raises(IllegalTransition) as caught:
        store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1",
                             steps_before=[Step("verified", "ok"), Step("validated", "ok")])
    assert (caught.value.extra, caught.value.detail) == (
        {"from_state": "refused", "to_state": "verified"}, "状態「不受理」から「署名検証済み」には変更できません (refused → verified)")
    view = store.get_application(NUMBER)
    assert view.application.state == State.REFUSED and len(view.history) == 2 and view.records == ()
    for fields in ({}, {"state": "queued"}):  # a missing application is reported first, as ever
        with pytest.raises(NotFound, match="見つかりません"):
            store.advance(app.id + 100, [Step("verified", "ok", fields)], actor="system")


def test_likely_start_is_the_first_state_the_whole_chain_may_leave():
    assert likely_start(("verified", "validated", "queued")) == State.RECEIVED
    assert likely_start((State.DELIVERED,)) == State.QUEUED
    assert likely_start(("withdrawn",)) == State.QUEUED
    assert likely_start(("received",)) is None and likely_start(("no-such-state",)) is None
    assert likely_start(()) is None


def test_withdrawal_from_failed_cancels_the_failed_delivery_too(store):
    app = arrive(store).application
    to_validated(store, app.id)
    store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1")
    (item,) = store.claim_due(T0 + dt.timedelta(days=1), 60)
    store.fail_attempt(item, "refused by the core system", permanent=True, max_attempts=3,
                       next_attempt_at=T0 + dt.timedelta(days=2))
    assert store.get_application(NUMBER).application.state == State.FAILED
    store.transition(app.id, "withdrawn", actor="system", reason="取下げ")
    view = store.get_application(NUMBER)
    assert view.application.state == State.WITHDRAWN and view.deliveries[0].status == "cancelled"
    assert [t.to_state for t in view.history][-2:] == [State.FAILED, State.WITHDRAWN]


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "no-returning"])
def test_the_applications_returned_are_those_stored(store, returning):
    if not returning:  # as on SQLite before 3.35: read back after the UPDATE instead
        store.engine.dialect.update_returning = False
    arrived = arrive(store).application
    assert arrived == store.get_application_by_id(arrived.id).application
    at = T0 + dt.timedelta(seconds=2)
    verified = store.transition(arrived.id, "verified", actor="system", reason="ok", at=at, verified_at=at,
                                applied_at=at.astimezone(dt.timezone(dt.timedelta(hours=9))),
                                flags=["要本人確認"], signer={"serial_number": "abc"},
                                evidence={"certificate": b"\x30\x82", "checked_at": at})
    assert verified == store.get_application_by_id(arrived.id).application
    assert (verified.evidence, verified.applied_at) == ({"certificate": "MII=", "checked_at": at.isoformat()}, at)
    queued = store.queue_delivery(arrived.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1",
                                  steps_before=[Step("validated", "ok")])
    assert queued == store.get_application_by_id(arrived.id).application and queued.state == State.QUEUED


def test_queue_delivery_of_an_unvalidated_application_writes_nothing(store):
    app = arrive(store).application
    with pytest.raises(IllegalTransition):
        store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1")
    view = store.get_application(NUMBER)
    assert view.records == () and view.deliveries == () and view.application.state == State.RECEIVED
    with pytest.raises(Exception, match="見つかりません"):  # the record's bytes were rolled back too
        store.get_blob(hashlib.sha256(RECORD.content).hexdigest())


def test_claims_are_exclusive_between_concurrent_workers(store):
    for i in range(12):
        app = arrive(store, package=f"PK {i}".encode(), number=f"2026112800000100{i:02d}").application
        to_validated(store, app.id)
        store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1")
    claimed: list[int] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        while items := store.claim_due(T0 + dt.timedelta(days=1), 60, limit=2):
            claimed.extend(i.id for i in items)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 12


def test_withdrawal_cancels_a_waiting_delivery(store):
    app = arrive(store).application
    to_validated(store, app.id)
    store.queue_delivery(app.id, record=RECORD, channel="filedrop", plugin="p", plugin_version="1")
    store.transition(app.id, "withdrawn", actor="system", reason="取下げ申請 202611280000099999")
    assert store.get_application(NUMBER).deliveries[0].status == "cancelled"
    assert store.claim_due(T0 + dt.timedelta(days=1), 60) == []


def test_list_applications_and_counts(store):
    for i in range(3):
        arrive(store, package=f"PK {i}".encode(), number=f"20261128000002000{i}")
    newest = store.list_applications(limit=2)
    assert [a.arrival_number for a in newest] == ["202611280000020002", "202611280000020001"]
    store.refuse(newest[0].id, "rule-violation", "x")
    assert [a.arrival_number for a in store.list_applications(state="refused")] == ["202611280000020002"]
    assert store.list_applications(offset=2)[0].arrival_number == "202611280000020000"
    assert store.counts_by_state() == {State.RECEIVED: 2, State.REFUSED: 1}
