"""The delivery worker against real databases and the real file-drop channel."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import DeliveryError
from gateway.models import Delivery, DeliveryReceipt, TargetRecord
from gateway.states import State
from gateway.store import Store
from gateway.store.outbox import LEASE_EXPIRED
from gateway.worker import DeliveryWorker
from plugins.filedrop import FileDropChannel
from tests.pg import database_url  # noqa: F401  (the fixture: SQLite and PostgreSQL)

T0 = dt.datetime(2026, 11, 28, 1, 15, tzinfo=dt.UTC)
NUMBER = "202611280000012345"
RECORD = TargetRecord(content="<Record>児童手当</Record>".encode(), media_type="application/xml",
                      filename="jidou.xml", target="jidou-teate")


class FlakyChannel:
    """Fails ``failures`` times (with ``error``), then acknowledges; remembers every delivery."""

    def __init__(self, name: str = "flaky", failures: int = 0, error: Exception | None = None) -> None:
        self.name = name
        self.failures = failures
        self.error = error or DeliveryError("接続できません", code="delivery-connect")
        self.seen: list[Delivery] = []

    def deliver(self, delivery: Delivery) -> DeliveryReceipt:
        self.seen.append(delivery)
        if len(self.seen) <= self.failures:
            raise self.error
        return DeliveryReceipt(receipt_id=f"R-{delivery.arrival_number}", channel=self.name)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(database_url, clock=lambda: T0)
    store.upgrade()
    yield store
    store.close()


def queue(store: Store, channel: str, number: str = NUMBER, options: dict | None = None) -> int:
    app = store.record_arrival(arrival_number=number, package=f"PK {number}".encode(),
                               source="http:portal").application
    store.transition(app.id, "verified", actor="system", reason="ok", procedure_code="childcare-01")
    store.transition(app.id, "validated", actor="system", reason="ok")
    store.queue_delivery(app.id, record=RECORD, channel=channel, plugin="childcare_01",
                         plugin_version="1.0", options=options)
    return app.id


def states(store: Store, number: str = NUMBER) -> list[tuple[str | None, str]]:
    return [(t.from_state, t.to_state) for t in store.get_application(number).history]


def test_delivers_once_through_the_file_drop(store, tmp_path):
    queue(store, "filedrop")
    heard: list[tuple] = []
    worker = DeliveryWorker(store, {"filedrop": FileDropChannel(tmp_path)},
                            on_transition=lambda *args: heard.append(args))
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert (tmp_path / "jidou-teate" / f"{NUMBER}_jidou.xml").read_bytes() == RECORD.content
    view = store.get_application(NUMBER)
    assert view.application.state == State.DELIVERED
    (delivery,) = view.deliveries
    assert delivery.status == "done" and delivery.receipt_id.startswith(f"file:jidou-teate/{NUMBER}_jidou.xml#")
    assert [(a.attempt, a.ok) for a in delivery.history] == [(1, True)]
    shown = json.loads(json.dumps(view.as_dict(), ensure_ascii=False))
    assert (shown["到達番号"], shown["state"], shown["state_label"]) == (NUMBER, "delivered", "連携済み")
    assert [h["to"] for h in shown["history"]] == ["received", "verified", "validated", "queued", "delivered"]
    assert shown["deliveries"][0]["history"][0]["ok"] is True
    assert shown["records"][0]["filename"] == "jidou.xml"
    assert [args[:4] for args in heard] == [(NUMBER, "queued", "delivered", "system:worker")]


def test_failed_attempts_are_retried_with_exponential_backoff(store):
    queue(store, "flaky")
    channel = FlakyChannel(failures=2)
    worker = DeliveryWorker(store, {"flaky": channel}, backoff_seconds=5, max_backoff_seconds=60)
    assert worker.run_once(T0) == 1
    assert store.get_application(NUMBER).deliveries[0].next_attempt_at == T0 + dt.timedelta(seconds=5)
    assert worker.run_once(T0 + dt.timedelta(seconds=4)) == 0  # not due yet
    assert worker.run_once(T0 + dt.timedelta(seconds=5)) == 1  # fails again: wait 10 s now
    assert store.get_application(NUMBER).deliveries[0].next_attempt_at == T0 + dt.timedelta(seconds=15)
    assert worker.run_once(T0 + dt.timedelta(seconds=15)) == 1
    view = store.get_application(NUMBER)
    assert view.application.state == State.DELIVERED
    assert [(a.attempt, a.ok) for a in view.deliveries[0].history] == [(1, False), (2, False), (3, True)]
    assert "delivery-connect" in view.deliveries[0].history[0].error
    assert states(store)[-2:] == [(State.QUEUED, State.RETRYING), (State.RETRYING, State.DELIVERED)]
    assert [d.attempt for d in channel.seen] == [1, 2, 3]


def test_backoff_is_capped():
    worker = DeliveryWorker(None, {}, backoff_seconds=5, max_backoff_seconds=60)  # type: ignore[arg-type]
    assert [worker.backoff(n).total_seconds() for n in (1, 2, 3, 4, 5, 50)] == [5, 10, 20, 40, 60, 60]


def test_exhausted_attempts_fail_and_need_a_person(store):
    queue(store, "flaky")
    worker = DeliveryWorker(store, {"flaky": FlakyChannel(failures=99)}, max_attempts=2, backoff_seconds=1)
    worker.run_once(T0)
    worker.run_once(T0 + dt.timedelta(seconds=1))
    assert worker.run_once(T0 + dt.timedelta(days=1)) == 0
    view = store.get_application(NUMBER)
    assert view.application.state == State.FAILED and view.deliveries[0].status == "failed"
    assert states(store)[-1] == (State.RETRYING, State.FAILED)


def test_a_permanent_error_fails_at_once(store):
    queue(store, "flaky")
    error = DeliveryError("形式が受け付けられません", code="delivery-rejected-format", permanent=True)
    worker = DeliveryWorker(store, {"flaky": FlakyChannel(failures=1, error=error)})
    worker.run_once(T0)
    view = store.get_application(NUMBER)
    assert view.application.state == State.FAILED
    assert len(view.deliveries[0].history) == 1
    assert view.deliveries[0].last_error == "delivery-rejected-format: 形式が受け付けられません"


def test_failed_applications_can_be_redelivered_by_staff(store):
    app_id = queue(store, "flaky")
    worker = DeliveryWorker(store, {"flaky": FlakyChannel(failures=1, error=RuntimeError("bug")),
                                    "other": FlakyChannel("other")}, max_attempts=1)
    worker.run_once(T0)
    store.requeue(app_id, actor="staff:tanaka", reason="連携先の復旧を確認", channel="other")
    worker.run_once(T0)
    view = store.get_application(NUMBER)
    assert view.application.state == State.DELIVERED
    assert [(d.channel, d.status) for d in view.deliveries] == [("flaky", "failed"), ("other", "done")]
    assert (State.FAILED, State.QUEUED) in states(store)


def test_an_unexpected_exception_is_a_failed_attempt_and_the_others_go_on(store):
    queue(store, "broken", number="202611280000000001")
    queue(store, "flaky", number="202611280000000002")
    worker = DeliveryWorker(store, {"broken": FlakyChannel("broken", failures=9, error=ZeroDivisionError("x")),
                                    "flaky": FlakyChannel()})
    assert worker.run_once(T0) == 2
    broken = store.get_application("202611280000000001")
    assert broken.application.state == State.RETRYING
    assert broken.deliveries[0].last_error == "ZeroDivisionError: x"
    assert store.get_application("202611280000000002").application.state == State.DELIVERED


def test_an_unknown_channel_is_retried_not_lost(store):
    queue(store, "gone")
    DeliveryWorker(store, {}).run_once(T0)
    view = store.get_application(NUMBER)
    assert view.application.state == State.RETRYING
    assert view.deliveries[0].last_error.startswith("delivery-channel-unknown")


def test_route_options_reach_the_channel_and_queued_options_win(store, tmp_path):
    queue(store, "flaky", options={"DIR": "chosen"})
    channel = FlakyChannel()
    DeliveryWorker(store, {"flaky": channel}, route_options={"flaky": {"DIR": "default", "X": 1}}).run_once(T0)
    (seen,) = channel.seen
    assert seen.options == {"DIR": "chosen", "X": 1}
    assert (seen.arrival_number, seen.procedure_code, seen.target, seen.record) == (
        NUMBER, "childcare-01", "jidou-teate", RECORD)


def test_a_worker_that_dies_mid_delivery_is_replaced_and_the_record_lands_once(store, tmp_path):
    queue(store, "filedrop")
    channel = FileDropChannel(tmp_path)
    # The doomed worker claims the entry and the channel writes the file, then the process dies
    # before complete_delivery() is committed.
    (item,) = store.claim_due(T0, lease_seconds=60, limit=10)
    channel.deliver(Delivery(arrival_number=item.arrival_number, procedure_code=item.procedure_code,
                             target=RECORD.target, record=RECORD, attempt=item.attempt))
    worker = DeliveryWorker(store, {"filedrop": channel}, lease_seconds=60)
    assert worker.run_once(T0 + dt.timedelta(seconds=30)) == 0  # the lease still holds
    assert worker.run_once(T0 + dt.timedelta(seconds=61)) == 1
    assert sorted(p.name for p in (tmp_path / "jidou-teate").iterdir()) == [f"{NUMBER}_jidou.xml"]
    view = store.get_application(NUMBER)
    assert states(store).count((State.QUEUED, State.DELIVERED)) == 1
    assert [(a.attempt, a.ok, a.error) for a in view.deliveries[0].history] == [
        (1, False, LEASE_EXPIRED), (2, True, None)]


def test_a_worker_that_outlived_its_lease_cannot_record_over_the_next_one(store):
    queue(store, "flaky")
    (stale,) = store.claim_due(T0, lease_seconds=10)
    DeliveryWorker(store, {"flaky": FlakyChannel()}).run_once(T0 + dt.timedelta(seconds=11))
    late = store.complete_delivery(stale, DeliveryReceipt("R-late", "flaky"), now=T0 + dt.timedelta(seconds=12))
    assert late is None
    assert states(store).count((State.QUEUED, State.DELIVERED)) == 1
    assert store.get_application(NUMBER).deliveries[0].receipt_id == f"R-{NUMBER}"


def test_a_delivery_that_keeps_killing_its_worker_ends_as_failed(store):
    queue(store, "flaky")
    for n in range(2):
        assert len(store.claim_due(T0 + dt.timedelta(minutes=2 * n), lease_seconds=60, max_attempts=2)) == 1
    assert store.claim_due(T0 + dt.timedelta(minutes=5), lease_seconds=60, max_attempts=2) == []
    assert store.get_application(NUMBER).application.state == State.FAILED


def test_run_forever_delivers_and_stops_when_told(store):
    queue(store, "flaky")
    stop = threading.Event()
    worker = DeliveryWorker(store, {"flaky": FlakyChannel()}, poll_seconds=0.01)
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        for _ in range(500):
            if store.get_application(NUMBER).application.state == State.DELIVERED:
                break
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert store.get_application(NUMBER).application.state == State.DELIVERED


def test_filedrop_route_dir_is_used(store, tmp_path: Path):
    queue(store, "filedrop", options={"DIR": str(tmp_path / "routed")})
    DeliveryWorker(store, {"filedrop": FileDropChannel(tmp_path / "default")}).run_once(T0)
    assert (tmp_path / "routed" / "jidou-teate" / f"{NUMBER}_jidou.xml").exists()
    assert not (tmp_path / "default").exists()
