"""Writing state changes inside an open transaction. Every change goes through here.

Its statements are :class:`~gateway.store.prepared.Prepared`: every package comes through
here twice or more.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gateway.errors import NotFound, Problem
from gateway.states import State, can_transition, check_transition
from gateway.store.prepared import Prepared, Runner
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
_CANCEL_WAITING = Prepared(
    outbox.update().where(outbox.c.application_id == _APP_ID,
                          sa.or_(outbox.c.status == "pending", outbox.c.status == "failed"))
    .values(status="cancelled", lease_until=None, lease_token=None))


def lock_application(conn: Runner, app_id: int) -> Mapping[str, Any]:
    """``id``, ``arrival_number`` and ``state`` of an application, locked for update."""
    row = _LOCK.first(conn, {"app_id": app_id})
    if row is None:
        raise NotFound(f"申請 (id={app_id}) が見つかりません")
    return row


def apply_transition(conn: Runner, app: Mapping[str, Any], to_state: State | str, *, actor: str,
                     reason: str, at: dt.datetime, fields: Mapping[str, Any] | None = None) -> Transition:
    """Check ``app.state → to_state`` against the lifecycle table, then write it and its record.

    ``app`` must come from :func:`lock_application` in the same transaction.
    """
    return apply_transitions(conn, app, [(to_state, reason, fields or {})], actor=actor, at=at)[0]


def apply_transitions(conn: Runner, app: Mapping[str, Any], steps: Steps, *, actor: str,
                      at: dt.datetime) -> list[Transition]:
    """Several transitions in a row, each checked, written as one UPDATE and one batch of records.

    Why batched: on the hot path an accepted package makes three transitions in one commit,
    and each SQL statement costs more than the checks.
    """
    return _write(conn, app["id"], app["arrival_number"], _Plan.make(app["state"], steps, at), actor, at,
                  read_back=False)[0]


def advance(conn: Runner, app_id: int, steps: Sequence[Step], *, actor: str,
            at: dt.datetime, read_back: bool = True) -> tuple[list[Transition], Application | None]:
    """Lock the application, make ``steps`` as :func:`apply_transitions` does, and return the
    application as it now is, read back by the UPDATE itself (``RETURNING``) where the
    database can (not SQLite before 3.35).

    ``read_back`` False returns None instead of the application: a caller that does not use it
    saves reading back and decoding the whole row (its JSON evidence above all); the UPDATE
    then returns only the 到達番号 the transition records need.

    Where it can, the usual case also saves the locking SELECT: the UPDATE is first made
    conditional on the state the steps most likely start from (``WHERE state = …``), which
    locks, checks and writes in one statement. When the application is in another state (or
    missing) that UPDATE changes nothing and the full way runs: lock, then check against the
    actual state (:class:`~gateway.states.IllegalTransition`, :class:`NotFound` as ever).
    """
    chain = [(step.to_state, step.reason, step.fields) for step in steps]
    start = likely_start(tuple(to_state for to_state, _, _ in chain)) if conn.dialect.update_returning else None
    if start is not None:
        try:
            plan = _Plan.make(start, chain, at)
        except TypeError:  # a programming error in the fields: raised below, after NotFound as ever
            plan = None
        if plan is not None:
            made, row = _write(conn, app_id, None, plan, actor, at, read_back=read_back)
            if row is not None:
                return made, application_from_row(row) if read_back else None
    app = lock_application(conn, app_id)
    made, row = _write(conn, app_id, app["arrival_number"], _Plan.make(app["state"], chain, at), actor, at,
                       read_back=read_back)
    if not read_back:
        return made, None
    return made, application_from_row(row) if row is not None else application_by_id(conn, app_id)


@functools.lru_cache(maxsize=256)
def likely_start(to_states: tuple[State | str, ...]) -> State | None:
    """The first state (in the lifecycle's order) from which every step of ``to_states`` is
    allowed, e.g. ``received`` for verified → validated → queued; None when there is none.

    Only a guess to try first: the UPDATE that uses it checks it in the database."""
    if not to_states:
        return None
    for start in State:
        state: State | str = start
        for to_state in to_states:
            if not can_transition(state, to_state):
                break
            state = to_state
        else:
            return start
    return None


@functools.lru_cache(maxsize=256)
def _checked(state: State, to_state: State | str) -> State:
    """:func:`~gateway.states.check_transition`, remembered: the table is fixed, a package
    makes the same few moves (an illegal one raises every time: exceptions are not cached)."""
    return check_transition(state, to_state)


@dataclass(frozen=True)
class _Plan:
    """What a chain of steps from ``start`` writes: each move checked, the columns it sets."""

    start: State
    end: State
    moves: list[tuple[State, State, str]]
    """(from, to, reason) of each step."""
    values: dict[str, Any]

    @classmethod
    def make(cls, start: State | str, steps: Steps, at: dt.datetime) -> _Plan:
        state = first = State(start)
        values: dict[str, Any] = {}
        moves: list[tuple[State, State, str]] = []
        for to_state, reason, fields in steps:
            new = _checked(state, to_state)
            if fields:
                values.update(column_values(fields))
            moves.append((state, new, reason))
            state = new
        values.update(state=state.value, updated_at=at)
        if state is State.REFUSED:
            values["live"] = False  # a refused package does not hold its 到達番号
        return cls(first, state, moves, values)


def _write(conn: Runner, app_id: int, arrival_number: str | None, plan: _Plan, actor: str, at: dt.datetime, *,
           read_back: bool) -> tuple[list[Transition], dict[str, Any] | None]:
    """Write ``plan``: one UPDATE, the transition records in one batch.

    ``arrival_number`` None: the application was not locked and read before. The UPDATE then
    applies only while it is in ``plan.start`` and reads the row back (RETURNING, which the
    dialect must have; only its ``arrival_number`` unless ``read_back``); when it did not
    apply, nothing is written and the row is None.
    """
    guarded = arrival_number is None
    if read_back and (guarded or conn.dialect.update_returning):
        returning: str | None = "row"
    else:
        returning = "arrival_number" if guarded else None
    update = _update(tuple(sorted(plan.values)), returning, guarded)
    params = {"app_id": app_id, **plan.values}
    if guarded:
        params["current_state"] = plan.start.value
    if returning:
        row = update.first(conn, params)
        if guarded:
            if row is None:
                return [], None
            arrival_number = row["arrival_number"]
    else:
        row = None
        update.execute(conn, params)
    made = [Transition(arrival_number=arrival_number, from_state=old, to_state=new, at=at, actor=actor,
                       reason=reason) for old, new, reason in plan.moves]
    if plan.end is State.WITHDRAWN:
        # Nothing still waiting may reach the core system after a withdrawal.
        _CANCEL_WAITING.execute(conn, {"app_id": app_id})
    _INSERT_TRANSITION.executemany(conn, [_transition_row(app_id, t) for t in made])
    return made, row


@functools.lru_cache(maxsize=64)
def _update(columns: tuple[str, ...], returning: str | None, guarded: bool) -> Prepared:
    """The UPDATE setting ``columns``: one per combination of fields callers set (a handful).

    ``returning``: "row" (all its columns), "arrival_number", or None (nothing)."""
    statement = applications.update().where(applications.c.id == _APP_ID)
    if guarded:
        statement = statement.where(applications.c.state == sa.bindparam("current_state"))
    if returning == "row":
        statement = statement.returning(*applications.c)
    elif returning:
        statement = statement.returning(applications.c[returning])
    return Prepared(statement, column_keys=columns)


def _transition_row(app_id: int, t: Transition) -> dict[str, Any]:
    return {"application_id": app_id, "from_state": None if t.from_state is None else t.from_state.value,
            "to_state": t.to_state.value, "at": t.at, "actor": t.actor, "reason": t.reason}


def record_transition(conn: Runner, app_id: int, arrival_number: str, old: State | None,
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
    if not UPDATABLE_FIELDS.issuperset(fields):
        unknown = set(fields) - UPDATABLE_FIELDS
        raise TypeError(f"not an updatable application field: {', '.join(sorted(unknown))}")
    values = dict(fields)
    if "flags" in values:
        values["flags"] = list(values["flags"] or ())
    if "problems" in values:
        values["problems"] = problems_json(values["problems"] or ())
    return values


def problems_json(problems: Iterable[Problem | Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [p.as_dict() if isinstance(p, Problem) else dict(p) for p in problems]
