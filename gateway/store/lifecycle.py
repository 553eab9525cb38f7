"""Writing state changes inside an open transaction. Every change goes through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from gateway.errors import NotFound, Problem
from gateway.states import State, check_transition
from gateway.store.schema import applications, outbox, transitions
from gateway.store.views import Transition

UPDATABLE_FIELDS = frozenset({
    "procedure_code", "procedure_version", "plugin_version", "municipality_code",
    "application_kind", "original_arrival_number", "applied_at", "verified_at", "flags",
    "signer", "evidence", "error_code", "error_detail", "problems",
})
"""Columns a transition may set besides the state (see :meth:`Store.transition`)."""

# Built once: constructing statements costs more than the SQL they run on the hot path.
_LOCK = sa.select(applications).where(applications.c.id == sa.bindparam("app_id")).with_for_update()
_UPDATE = applications.update().where(applications.c.id == sa.bindparam("app_id"))
_INSERT_TRANSITION = transitions.insert()


def lock_application(conn: sa.Connection, app_id: int) -> sa.RowMapping:
    """Read an application for update (a row lock on PostgreSQL; SQLite holds the write lock)."""
    row = conn.execute(_LOCK, {"app_id": app_id}).mappings().first()
    if row is None:
        raise NotFound(f"申請 (id={app_id}) が見つかりません")
    return row


def apply_transition(conn: sa.Connection, app: sa.RowMapping, to_state: State | str, *, actor: str,
                     reason: str, at: dt.datetime, fields: Mapping[str, Any] | None = None) -> Transition:
    """Check ``app.state → to_state`` against the lifecycle table, then write it and its record.

    ``app`` must come from :func:`lock_application` in the same transaction.
    """
    old = State(app["state"])
    new = check_transition(old, to_state)
    values = column_values(fields or {})
    values.update(state=new.value, updated_at=at)
    if new is State.REFUSED:
        values["live"] = False  # a refused package does not hold its 到達番号
    conn.execute(_UPDATE, {"app_id": app["id"], **values})
    if new is State.WITHDRAWN:
        # Nothing still waiting may reach the core system after a withdrawal.
        conn.execute(outbox.update()
                     .where(outbox.c.application_id == app["id"], outbox.c.status.in_(("pending", "failed")))
                     .values(status="cancelled", lease_until=None, lease_token=None))
    return record_transition(conn, app["id"], app["arrival_number"], old, new,
                             actor=actor, reason=reason, at=at)


def record_transition(conn: sa.Connection, app_id: int, arrival_number: str, old: State | None,
                      new: State, *, actor: str, reason: str, at: dt.datetime) -> Transition:
    conn.execute(_INSERT_TRANSITION, {
        "application_id": app_id, "from_state": None if old is None else old.value,
        "to_state": new.value, "at": at, "actor": actor, "reason": reason})
    return Transition(arrival_number=arrival_number, from_state=old, to_state=new, at=at,
                      actor=actor, reason=reason)


def new_id(result: sa.CursorResult[Any]) -> int:
    """The primary key an INSERT of one row produced."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def column_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Turn keyword fields into column values; unknown names are a programming error."""
    unknown = set(fields) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"not an updatable application field: {', '.join(sorted(unknown))}")
    values = dict(fields)
    if "flags" in values:
        values["flags"] = list(values["flags"] or ())
    if "problems" in values:
        values["problems"] = problems_json(values["problems"] or ())
    return values


def problems_json(problems: Iterable[Problem | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [p.as_dict() if isinstance(p, Problem) else dict(p) for p in problems]
