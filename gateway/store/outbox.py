"""The delivery outbox: leasing due entries to workers and recording what came of each attempt.

An entry is ``pending`` → ``in_flight`` (leased) → ``done`` | ``pending`` again (retry) |
``failed``; ``cancelled`` when the application was withdrawn first. A lease is a promise with
a deadline: if the worker dies the lease runs out and another worker delivers again, which is
why channels must be idempotent. Each claim gets a fresh token, so a worker that outlived its
lease cannot overwrite what the next holder records.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from gateway.models import DeliveryReceipt
from gateway.states import State
from gateway.store.lifecycle import apply_transition, lock_application
from gateway.store.prepared import PreparedInsert, Runner
from gateway.store.queries import record_by_id
from gateway.store.schema import applications, delivery_attempts, outbox
from gateway.store.views import OutboxItem, Transition

log = logging.getLogger(__name__)
ACTOR = "system:worker"
LEASE_EXPIRED = "lease-expired: 連携処理が期限内に終わりませんでした (プロセス停止の可能性)"
_DELIVERING = (State.QUEUED.value, State.RETRYING.value)
_ADD = PreparedInsert(outbox.insert(), column_keys=(  # once per accepted package
    "application_id", "record_id", "channel", "options", "status", "attempts", "next_attempt_at", "created_at"))


def add(conn: Runner, app_id: int, record_id: int, channel: str,
        options: Mapping[str, Any], at: dt.datetime) -> int:
    return _ADD.insert(conn, {
        "application_id": app_id, "record_id": record_id, "channel": channel, "options": dict(options),
        "status": "pending", "attempts": 0, "next_attempt_at": at, "created_at": at,
    })


def _claimable(now: dt.datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(outbox.c.status == "pending", outbox.c.next_attempt_at <= now),
        sa.and_(outbox.c.status == "in_flight", outbox.c.lease_until <= now),
    )


def claim_due(conn: sa.Connection, now: dt.datetime, lease: dt.timedelta, limit: int,
              max_attempts: int | None) -> tuple[list[OutboxItem], list[Transition]]:
    candidates = (sa.select(outbox.c.id, outbox.c.status, outbox.c.attempts)
                  .where(_claimable(now)).order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        # Other workers skip what this one is claiming instead of waiting for it.
        candidates = candidates.with_for_update(skip_locked=True)
    items: list[OutboxItem] = []
    made: list[Transition] = []
    for entry in conn.execute(candidates).mappings().all():
        if entry["status"] == "in_flight":  # its worker died or hung: that attempt failed
            _record_attempt(conn, entry["id"], entry["attempts"], now, ok=False, error=LEASE_EXPIRED)
            if max_attempts is not None and entry["attempts"] >= max_attempts:
                if t := _give_up(conn, entry["id"], LEASE_EXPIRED, now):
                    made.append(t)
                continue
        token = uuid.uuid4().hex
        # The WHERE repeats the claim condition: only one claimer can win an entry.
        won = conn.execute(
            outbox.update().where(outbox.c.id == entry["id"], _claimable(now))
            .values(status="in_flight", attempts=outbox.c.attempts + 1, lease_until=now + lease,
                    lease_token=token)).rowcount
        if won == 1:
            items.append(_item(conn, entry["id"]))
    return items, made


def _item(conn: sa.Connection, outbox_id: int) -> OutboxItem:
    row = conn.execute(
        sa.select(outbox, applications.c.arrival_number, applications.c.procedure_code)
        .join(applications, applications.c.id == outbox.c.application_id)
        .where(outbox.c.id == outbox_id)).mappings().one()
    return OutboxItem(
        id=row["id"], application_id=row["application_id"], arrival_number=row["arrival_number"],
        procedure_code=row["procedure_code"] or "", channel=row["channel"], attempt=row["attempts"],
        lease_token=row["lease_token"], lease_until=row["lease_until"],
        record=record_by_id(conn, row["record_id"]), options=dict(row["options"] or {}))


def complete(conn: sa.Connection, item: OutboxItem, receipt: DeliveryReceipt,
             now: dt.datetime) -> Transition | None:
    _record_attempt(conn, item.id, item.attempt, now, ok=True, receipt_id=receipt.receipt_id)
    if not _still_holds(conn, item):
        return None
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(
        status="done", delivered_at=now, receipt_id=receipt.receipt_id, lease_until=None,
        lease_token=None, last_error=None))
    app = lock_application(conn, item.application_id)
    if app["state"] not in _DELIVERING:  # e.g. withdrawn while this delivery was in flight
        log.warning("%s was delivered while in state %s", item.arrival_number, app["state"])
        return None
    return apply_transition(conn, app, State.DELIVERED, actor=ACTOR, at=now,
                            reason=f"{receipt.channel} 受領番号 {receipt.receipt_id}")


def fail(conn: sa.Connection, item: OutboxItem, error: str, *, permanent: bool,
         retry_at: dt.datetime, max_attempts: int, now: dt.datetime) -> Transition | None:
    _record_attempt(conn, item.id, item.attempt, now, ok=False, error=error)
    if not _still_holds(conn, item):
        return None
    if permanent or item.attempt >= max_attempts:
        return _give_up(conn, item.id, error, now)
    conn.execute(outbox.update().where(outbox.c.id == item.id).values(
        status="pending", next_attempt_at=retry_at, lease_until=None, lease_token=None,
        last_error=error))
    app = lock_application(conn, item.application_id)
    if app["state"] != State.QUEUED.value:  # already retrying: the attempt row says enough
        return None
    return apply_transition(conn, app, State.RETRYING, actor=ACTOR, at=now,
                            reason=f"連携失敗 (試行 {item.attempt}): {error}")


def _give_up(conn: sa.Connection, outbox_id: int, error: str, now: dt.datetime) -> Transition | None:
    conn.execute(outbox.update().where(outbox.c.id == outbox_id).values(
        status="failed", lease_until=None, lease_token=None, last_error=error))
    app_id = conn.execute(sa.select(outbox.c.application_id).where(outbox.c.id == outbox_id)).scalar_one()
    app = lock_application(conn, app_id)
    if app["state"] not in _DELIVERING:
        return None
    return apply_transition(conn, app, State.FAILED, actor=ACTOR, at=now, reason=f"連携不能: {error}")


def _still_holds(conn: sa.Connection, item: OutboxItem) -> bool:
    holds = conn.execute(sa.select(outbox.c.id).where(
        outbox.c.id == item.id, outbox.c.status == "in_flight",
        outbox.c.lease_token == item.lease_token)).first() is not None
    if not holds:
        log.warning("outbox %s (%s): lease lost before the result was recorded", item.id, item.arrival_number)
    return holds


def _record_attempt(conn: sa.Connection, outbox_id: int, attempt: int, at: dt.datetime, *, ok: bool,
                    error: str | None = None, receipt_id: str | None = None) -> None:
    conn.execute(delivery_attempts.insert().values(
        outbox_id=outbox_id, attempt=attempt, at=at, ok=ok, error=error, receipt_id=receipt_id))
