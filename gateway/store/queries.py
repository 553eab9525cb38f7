"""Read-side queries, each building frozen snapshots inside the caller's transaction."""

from __future__ import annotations

import sqlalchemy as sa

from gateway.errors import NotFound
from gateway.states import State
from gateway.store.prepared import Prepared, Runner
from gateway.store.schema import (
    applications,
    blobs,
    delivery_attempts,
    outbox,
    records,
    refusals_audit,
    transitions,
)
from gateway.store.views import (
    Application,
    ApplicationView,
    Attempt,
    DeliveryView,
    RecordInfo,
    Refusal,
    Transition,
    application_from_row,
    record_from_row,
)

_BY_ID = Prepared(sa.select(applications).where(applications.c.id == sa.bindparam("app_id")))
LIVE_BY_NUMBER = Prepared(sa.select(applications).where(
    applications.c.arrival_number == sa.bindparam("number"), applications.c.live.is_(True)))
"""The live application with a 到達番号 (``{"number": …}``): what an arrival finds when its number is taken."""


def application_by_id(conn: Runner, app_id: int) -> Application:
    row = _BY_ID.first(conn, {"app_id": app_id})
    if row is None:
        raise NotFound(f"申請 (id={app_id}) が見つかりません")
    return application_from_row(row)


def view_by_arrival_number(conn: sa.Connection, arrival_number: str) -> ApplicationView | None:
    # The live application wins; otherwise the most recent refused one with that number.
    app_id = conn.execute(
        sa.select(applications.c.id).where(applications.c.arrival_number == arrival_number)
        .order_by(applications.c.live.desc(), applications.c.id.desc()).limit(1)
    ).scalar()
    return None if app_id is None else view_by_id(conn, app_id)


def view_by_id(conn: sa.Connection, app_id: int) -> ApplicationView | None:
    row = conn.execute(sa.select(applications).where(applications.c.id == app_id)).mappings().first()
    if row is None:
        return None
    app = application_from_row(row)
    history = tuple(
        Transition(arrival_number=app.arrival_number,
                   from_state=None if t["from_state"] is None else State(t["from_state"]),
                   to_state=State(t["to_state"]), at=t["at"], actor=t["actor"], reason=t["reason"])
        for t in conn.execute(sa.select(transitions).where(transitions.c.application_id == app_id)
                              .order_by(transitions.c.id)).mappings())
    return ApplicationView(application=app, history=history, records=records_of(conn, app_id),
                           deliveries=deliveries_of(conn, app_id))


def records_of(conn: sa.Connection, app_id: int) -> tuple[RecordInfo, ...]:
    rows = conn.execute(
        sa.select(records, blobs.c.size).join(blobs, blobs.c.sha256 == records.c.content_sha256)
        .where(records.c.application_id == app_id).order_by(records.c.id)).mappings()
    return tuple(record_from_row(r, r["size"]) for r in rows)


def record_by_id(conn: sa.Connection, record_id: int) -> RecordInfo:
    row = conn.execute(
        sa.select(records, blobs.c.size).join(blobs, blobs.c.sha256 == records.c.content_sha256)
        .where(records.c.id == record_id)).mappings().one()
    return record_from_row(row, row["size"])


def deliveries_of(conn: sa.Connection, app_id: int) -> tuple[DeliveryView, ...]:
    entries = conn.execute(sa.select(outbox).where(outbox.c.application_id == app_id)
                           .order_by(outbox.c.id)).mappings().all()
    attempts: dict[int, list[Attempt]] = {e["id"]: [] for e in entries}
    if entries:
        for a in conn.execute(sa.select(delivery_attempts)
                              .where(delivery_attempts.c.outbox_id.in_(list(attempts)))
                              .order_by(delivery_attempts.c.id)).mappings():
            attempts[a["outbox_id"]].append(Attempt(attempt=a["attempt"], at=a["at"], ok=bool(a["ok"]),
                                                    error=a["error"], receipt_id=a["receipt_id"]))
    return tuple(
        DeliveryView(id=e["id"], channel=e["channel"], status=e["status"], attempts=e["attempts"],
                     next_attempt_at=e["next_attempt_at"], created_at=e["created_at"],
                     record_id=e["record_id"], last_error=e["last_error"],
                     delivered_at=e["delivered_at"], receipt_id=e["receipt_id"],
                     history=tuple(attempts[e["id"]]))
        for e in entries)


def list_applications(conn: sa.Connection, state: State | str | None, limit: int,
                      offset: int) -> list[Application]:
    query = sa.select(applications).order_by(applications.c.id.desc()).limit(limit).offset(offset)
    if state is not None:
        query = query.where(applications.c.state == State(state).value)
    return [application_from_row(r) for r in conn.execute(query).mappings()]


def counts_by_state(conn: sa.Connection) -> dict[State, int]:
    rows = conn.execute(sa.select(applications.c.state, sa.func.count())
                        .group_by(applications.c.state)).all()
    return {State(state): count for state, count in rows}


def list_refusals(conn: sa.Connection, limit: int, offset: int) -> list[Refusal]:
    rows = conn.execute(sa.select(refusals_audit).order_by(refusals_audit.c.id.desc())
                        .limit(limit).offset(offset)).mappings()
    return [Refusal(id=r["id"], package_sha256=r["package_sha256"], size=r["size"], at=r["at"],
                    source=r["source"], error_code=r["error_code"], error_detail=r["error_detail"])
            for r in rows]
