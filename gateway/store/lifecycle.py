"""Writing state changes inside an open transaction. Every change goes through here.

Its statements are :class:`~gateway.store.prepared.Prepared`: every package comes through
here twice or more.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from gateway.errors import NotFound, Problem
from gateway.states import State, check_transition
from gateway.store.prepared import Prepared
from gateway.store.queries import application_by_id
from gateway.store.schema import applications, outbox, transitions
from gateway.store.views import Application, Step, Transition, application_from_row

UPDATABLE_FIELDS = frozenset({
    "procedure_code", "procedure_version", "plugin_version", "municipality_code",
    "application_kind", "original_arrival_number", "applied_at", "verified_at", "flags",
    "signer", "evidence", "error_code", "error_detail", "problems",
})
"""Columns a transition may set besides the state (see :meth:`Store.transition`)."""

Steps = Sequence[tuple[State | str, str, Mapping[str, Any]]]
"""(new state, reason, fields) for each transition."""

_APP_ID = sa.bindparam("app_id")
# What a transition needs to know, with a row lock on PostgreSQL (SQLite holds the write lock).
_LOCK = Prepared(sa.select(applications.c.id, applications.c.arrival_number, applications.c.state)
                 .where(applications.c.id == _APP_ID).with_for_update())
_TRANSITION_COLUMNS = ("application_id", "from_state", "to_state", "at", "actor", "reason")
_INSERT_TRANSITION = Prepared(transitions.insert(), column_keys=_TRANSITION_COLUMNS)


def lock_application(conn: sa.Connection, app_id: int) -> Mapping[str, Any]:
    """``id``, ``arrival_number`` and ``state`` of an application, locked for update."""
    row = _LOCK.first(conn, {"app_id": app_id})
    if row is None:
        raise NotFound(f"申請 (id={app_id}) が見つかりません")
    return row


def apply_transition(conn: sa.Connection, app: Mapping[str, Any], to_state: State | str, *, actor: str,
                     reason: str, at: dt.datetime, fields: Mapping[str, Any] | None = None) -> Transition:
    """Check ``app.state → to_state`` against the lifecycle table, then write it and its record.

    ``app`` must come from :func:`lock_application` in the same transaction.
    """
    return apply_transitions(conn, app, [(to_state, reason, fields or {})], actor=actor, at=at)[0]


def apply_transitions(conn: sa.Connection, app: Mapping[str, Any], steps: Steps, *, actor: str,
                      at: dt.datetime) -> list[Transition]:
    """Several transitions in a row, each checked, written as one UPDATE and one batch of records.

    Why batched: on the hot path an accepted package makes three transitions in one commit,
    and each SQL statement costs more than the checks.
    """
    return _write(conn, app, steps, actor, at, read_back=False)[0]


def advance(conn: sa.Connection, app_id: int, steps: Sequence[Step], *, actor: str,
            at: dt.datetime) -> tuple[list[Transition], Application]:
    """Lock the application, make ``steps`` as :func:`apply_transitions` does, and return the
    application as it now is, read back by the UPDATE itself (``RETURNING``) where the
    database can (not SQLite before 3.35)."""
    made, row = _write(conn, lock_application(conn, app_id),
                       [(step.to_state, step.reason, step.fields) for step in steps], actor, at, read_back=True)
    return made, application_from_row(row) if row is not None else application_by_id(conn, app_id)


def _write(conn: sa.Connection, app: Mapping[str, Any], steps: Steps, actor: str, at: dt.datetime, *,
           read_back: bool) -> tuple[list[Transition], dict[str, Any] | None]:
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
    returning = read_back and conn.dialect.update_returning
    update, params = _update(tuple(sorted(values)), returning=returning), {"app_id": app["id"], **values}
    if returning:
        row = update.first(conn, params)
    else:
        row = None
        update.execute(conn, params)
    if state is State.WITHDRAWN:
        # Nothing still waiting may reach the core system after a withdrawal.
        conn.execute(outbox.update()
                     .where(outbox.c.application_id == app["id"], outbox.c.status.in_(("pending", "failed")))
                     .values(status="cancelled", lease_until=None, lease_token=None))
    _INSERT_TRANSITION.executemany(conn, [_transition_row(app["id"], t) for t in made])
    return made, row


@functools.lru_cache(maxsize=64)
def _update(columns: tuple[str, ...], *, returning: bool) -> Prepared:
    """The UPDATE setting ``columns``: one per combination of fields callers set (a handful)."""
    statement = applications.update().where(applications.c.id == _APP_ID)
    return Prepared(statement.returning(*applications.c) if returning else statement, column_keys=columns)


def _transition_row(app_id: int, t: Transition) -> dict[str, Any]:
    return {"application_id": app_id, "from_state": None if t.from_state is None else t.from_state.value,
            "to_state": t.to_state.value, "at": t.at, "actor": t.actor, "reason": t.reason}


def record_transition(conn: sa.Connection, app_id: int, arrival_number: str, old: State | None,
                      new: State, *, actor: str, reason: str, at: dt.datetime) -> Transition:
    made = Transition(arrival_number=arrival_number, from_state=old, to_state=new, at=at, actor=actor, reason=reason)
    _INSERT_TRANSITION.execute(conn, _transition_row(app_id, made))
    return made


def new_id(result: sa.CursorResult[Any]) -> int:
    """The primary key an INSERT of one row (run with ``conn.execute``) produced."""
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
