"""Writing state changes inside an open transaction. Every change goes through here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
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
    return apply_transitions(conn, app, [(to_state, reason, fields or {})], actor=actor, at=at)[0]


def apply_transitions(conn: sa.Connection, app: sa.RowMapping,
                      steps: Sequence[tuple[State | str, str, Mapping[str, Any]]], *, actor: str,
                      at: dt.datetime) -> list[Transition]:
    """Several transitions in a row, each checked, written as one UPDATE and one batch of records.

    Why batched: on the hot path an accepted package makes three transitions in one commit,
    and each SQL statement costs more than the checks.
    """
    state = State(app["state"])
    values: dict[str, Any] = {}
    made: list[Transition] = []
    for to_state, reason, fields in steps:
        new = check_transition(state, to_state)
        values.update(column_values(fields))
        made.append(Transition(arrival_number=app["arrival_number"], from_state=state, to_state=new, at=at,
                               actor=actor, reason=reason))
        state = new
    values.update(state=state.value, updated_at=at)
    if state is State.REFUSED:
        values["live"] = False  # a refused package does not hold its 到達番号
    conn.execute(_UPDATE, {"app_id": app["id"], **values})
    if state is State.WITHDRAWN:
        # Nothing still waiting may reach the core system after a withdrawal.
        conn.execute(outbox.update()
                     .where(outbox.c.application_id == app["id"], outbox.c.status.in_(("pending", "failed")))
                     .values(status="cancelled", lease_until=None, lease_token=None))
    conn.execute(_INSERT_TRANSITION, [_transition_row(app["id"], t) for t in made])
    return made


def _transition_row(app_id: int, t: Transition) -> dict[str, Any]:
    return {"application_id": app_id, "from_state": None if t.from_state is None else t.from_state.value,
            "to_state": t.to_state.value, "at": t.at, "actor": t.actor, "reason": t.reason}


def record_transition(conn: sa.Connection, app_id: int, arrival_number: str, old: State | None,
                      new: State, *, actor: str, reason: str, at: dt.datetime) -> Transition:
    made = Transition(arrival_number=arrival_number, from_state=old, to_state=new, at=at, actor=actor, reason=reason)
    conn.execute(_INSERT_TRANSITION, _transition_row(app_id, made))
    return made


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
