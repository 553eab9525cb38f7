"""The gateway's durable store: packages, applications, their history and the delivery outbox.

One :class:`Store` per process; it is safe to share between threads (one engine, one
connection per operation). Every method runs in its own transaction and returns frozen
snapshots (:mod:`gateway.store.views`), never live database objects. Transition listeners
are called after the commit, so they never see a change that could still roll back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from gateway.errors import Conflict, NotFound, Problem
from gateway.models import DeliveryReceipt, TargetRecord
from gateway.states import State
from gateway.store import engine as engines
from gateway.store import lifecycle, queries
from gateway.store import outbox as outbox_ops
from gateway.store.lifecycle import apply_transition, lock_application, problems_json, record_transition
from gateway.store.prepared import Prepared, PreparedInsert, Runner, insert_unless_conflict
from gateway.store.schema import applications, blobs, outbox, records, refusals_audit
from gateway.store.views import (
    Application,
    ApplicationView,
    ArrivalResult,
    OutboxItem,
    Refusal,
    Step,
    Transition,
    application_from_row,
)

log = logging.getLogger(__name__)
TransitionListener = Callable[[str, str | None, str, str, str], None]
"""Called as ``(arrival_number, old_state, new_state, actor, reason)``, like the
``application_state_changed`` hook (so ``Plugins.state_changed`` fits)."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# The statements every package runs (see gateway.store.prepared for why they are prepared).
_INSERT_BLOB = Prepared(insert_unless_conflict(blobs, index_elements=[blobs.c.sha256]),
                        column_keys=("sha256", "size", "data", "created_at"))
# A live 到達番号 already taken inserts nothing (no error, also not between concurrent posts
# on PostgreSQL: the second waits for the first and then does nothing).
_INSERT_APPLICATION = PreparedInsert(
    insert_unless_conflict(applications, index_elements=[applications.c.arrival_number], index_where=applications.c.live),
    column_keys=("arrival_number", "package_sha256", "live", "state", "flags", "received_at", "source",
                 "updated_at"))
_INSERT_RECORD = PreparedInsert(records.insert(), column_keys=(
    "application_id", "target", "media_type", "filename", "content_sha256", "plugin", "plugin_version",
    "created_at"))
_INSERT_REFUSAL = PreparedInsert(refusals_audit.insert(), column_keys=(
    "package_sha256", "size", "at", "source", "error_code", "error_detail"))


class Store:
    """Durable storage on SQLite or PostgreSQL (``url`` as SQLAlchemy spells it)."""

    def __init__(self, url: str, *, on_transition: TransitionListener | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.url = url
        self.engine = engines.make_engine(url)
        self._pins = engines.PinnedConnections(self.engine) if self.engine.dialect.name == "sqlite" else None
        self.on_transition = on_transition
        self.clock = clock

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema (``alembic upgrade head``, run from code)."""
        engines.upgrade(self.engine, revision)

    def close(self) -> None:
        if self._pins is not None:
            self._pins.close()
        self.engine.dispose()

    # ------------------------------------------------------------------ blobs

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` under its SHA-256 (hex) and return it; storing it again is a no-op."""
        with self._transaction() as conn:
            return self._put_blob(conn, data, self.clock())

    def get_blob(self, sha256: str) -> bytes:
        with self._reading() as conn:
            data = conn.execute(sa.select(blobs.c.data).where(blobs.c.sha256 == sha256)).scalar()
        if data is None:
            raise NotFound(f"保存データ {sha256[:16]}… が見つかりません")
        return bytes(data)

    # ------------------------------------------------------------------ intake

    def record_arrival(self, *, arrival_number: str, package: bytes, source: str,
                       received_at: dt.datetime | None = None, actor: str = "system") -> ArrivalResult:
        """Store the exact package and its application in state ``received``, in one commit.

        The same bytes under a live 到達番号 return that application with ``replay=True``;
        different bytes raise :class:`~gateway.errors.Conflict` (the refused bytes are audited).
        """
        if not arrival_number:
            raise ValueError("no 到達番号: use record_unreadable() for packages without one")
        at = received_at or self.clock()
        if at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        at = at.astimezone(dt.UTC)  # as the database gives it back
        for _ in range(3):
            try:
                if result := self._record_arrival(arrival_number, package, source, at, actor):
                    return result
            except sa.exc.IntegrityError:
                # Not expected (the INSERT gives way to a live 到達番号 instead of failing), but
                # a lost race must never lose a package: it is now a replay or a conflict.
                log.info("concurrent arrival of %s; reading it again", arrival_number)
        raise RuntimeError(f"could not record the arrival of {arrival_number}")

    def _record_arrival(self, arrival_number: str, package: bytes, source: str,
                        at: dt.datetime, actor: str) -> ArrivalResult | None:
        """One attempt; None when the application holding the number was refused meanwhile."""
        # early: the next commit about this package (always fully synced) precedes any answer.
        with self._transaction(early=True) as conn:
            sha = self._put_blob(conn, package, at)
            app_id = _INSERT_APPLICATION.insert_if_new(conn, {
                "arrival_number": arrival_number, "package_sha256": sha, "live": True,
                "state": State.RECEIVED.value, "flags": [], "received_at": at, "source": source,
                "updated_at": at})
            if app_id is None:  # the number is live already: a replay or a conflict
                live = queries.LIVE_BY_NUMBER.first(conn, {"number": arrival_number})
            else:
                made = record_transition(conn, app_id, arrival_number, None, State.RECEIVED,
                                         actor=actor, reason=f"受信 ({source})", at=at)
        if app_id is None:
            return None if live is None else self._replay_or_conflict(live, sha, package, source, at)
        self._announce([made])
        # Built from what was just written (no re-read: this is the hot path).
        return ArrivalResult(Application(
            id=app_id, arrival_number=arrival_number, package_sha256=sha, state=State.RECEIVED, live=True,
            received_at=at, updated_at=at, source=source), replay=False)

    def _replay_or_conflict(self, live: Mapping[str, Any], sha: str, package: bytes, source: str,
                            at: dt.datetime) -> ArrivalResult:
        if live["package_sha256"] == sha:
            return ArrivalResult(application_from_row(live), replay=True)
        number = live["arrival_number"]
        with self._transaction() as conn:  # audited (fully synced, with the bytes stored above) before the 409
            self._audit_refusal(conn, sha, len(package), source, "conflict", f"到達番号 {number} は別の内容で受理済み", at)
        raise Conflict(f"到達番号 {number} は別の内容の申請パッケージで既に受理されています", arrival_number=number)

    def record_unreadable(self, package: bytes, *, source: str, error_code: str, detail: str,
                          received_at: dt.datetime | None = None) -> Refusal:
        """Audit a package refused before any 到達番号 could be read (it is never delivered)."""
        at = received_at or self.clock()
        with self._transaction() as conn:
            sha = self._put_blob(conn, package, at)
            refusal_id = self._audit_refusal(conn, sha, len(package), source, error_code, detail, at)
        return Refusal(id=refusal_id, package_sha256=sha, size=len(package), at=at, source=source,
                       error_code=error_code, error_detail=detail)

    # ------------------------------------------------------------------ state changes

    def transition(self, app_id: int, to_state: State | str, *, actor: str, reason: str,
                   at: dt.datetime | None = None, **fields: Any) -> Application:
        """Move an application to ``to_state`` and set ``fields`` (see ``UPDATABLE_FIELDS``).

        Raises :class:`~gateway.states.IllegalTransition` when the lifecycle forbids the move.
        """
        return self.advance(app_id, [Step(to_state, reason, fields)], actor=actor, at=at)

    def advance(self, app_id: int, steps: Sequence[Step], *, actor: str,
                at: dt.datetime | None = None) -> Application:
        """Make several transitions (each checked and recorded) in one commit, e.g.
        received → verified → validated once the pipeline has passed both."""
        at = at or self.clock()
        with self._transaction() as conn:
            made, app = lifecycle.advance(conn, app_id, steps, actor=actor, at=at)
        self._announce(made)
        return app

    def refuse(self, app_id: int, error_code: str, detail: str,
               problems: Iterable[Problem | Mapping[str, Any]] = (), *, actor: str = "system",
               at: dt.datetime | None = None) -> Application:
        """Refuse an application: recorded for audit, never delivered, its 到達番号 freed."""
        return self.transition(app_id, State.REFUSED, actor=actor, reason=error_code, at=at,
                               error_code=error_code, error_detail=detail, problems=problems_json(problems))

    def queue_delivery(self, app_id: int, *, record: TargetRecord, channel: str, plugin: str,
                       plugin_version: str, actor: str = "system",
                       options: Mapping[str, Any] | None = None, steps_before: Sequence[Step] = (),
                       at: dt.datetime | None = None, read_back: bool = True) -> Application | None:
        """Store the target record and its outbox entry and move validated → queued, in one commit.

        ``steps_before`` are made first in the same commit (e.g. → verified → validated), so a
        package that passed everything costs one commit after its arrival.
        ``read_back`` False returns None instead of the application as it now is (the pipeline
        does not use it: reading back and decoding the whole row would be wasted).
        """
        at = at or self.clock()
        with self._transaction() as conn:
            made, snapshot = lifecycle.advance(conn, app_id, [*steps_before, Step(
                State.QUEUED, f"{plugin} {plugin_version} で変換、{channel} で連携予定",
                {"plugin_version": plugin_version})], actor=actor, at=at, read_back=read_back)
            sha = self._put_blob(conn, record.content, at)
            record_id = _INSERT_RECORD.insert(conn, {
                "application_id": app_id, "target": record.target, "media_type": record.media_type,
                "filename": record.filename, "content_sha256": sha, "plugin": plugin,
                "plugin_version": plugin_version, "created_at": at})
            outbox_ops.add(conn, app_id, record_id, channel, options or {}, at)
        self._announce(made)
        return snapshot

    def requeue(self, app_id: int, *, actor: str, reason: str, channel: str | None = None,
                options: Mapping[str, Any] | None = None, at: dt.datetime | None = None) -> Application:
        """Redeliver (or re-route to ``channel``) a ``failed`` application: failed → queued.

        A new outbox entry is made for the latest record, so the failed one keeps its history.
        """
        at = at or self.clock()
        with self._writing() as conn:
            app = lock_application(conn, app_id)
            last = conn.execute(sa.select(outbox).where(outbox.c.application_id == app_id)
                                .order_by(outbox.c.id.desc()).limit(1)).mappings().first()
            if last is None:
                raise NotFound(f"申請 {app['arrival_number']} には連携データがありません")
            made = apply_transition(conn, app, State.QUEUED, actor=actor, reason=reason, at=at)
            outbox_ops.add(conn, app_id, last["record_id"], channel or last["channel"],
                           last["options"] if options is None else options, at)
            snapshot = queries.application_by_id(conn, app_id)
        self._announce([made])
        return snapshot

    # ------------------------------------------------------------------ reading

    def get_application(self, arrival_number: str) -> ApplicationView | None:
        """The live application with this 到達番号, else the latest refused one."""
        with self._reading() as conn:
            return queries.view_by_arrival_number(conn, arrival_number)

    def get_application_by_id(self, app_id: int) -> ApplicationView | None:
        with self._reading() as conn:
            return queries.view_by_id(conn, app_id)

    def list_applications(self, state: State | str | None = None, limit: int = 50,
                          offset: int = 0) -> list[Application]:
        """Newest first."""
        with self._reading() as conn:
            return queries.list_applications(conn, state, limit, offset)

    def counts_by_state(self) -> dict[State, int]:
        with self._reading() as conn:
            return queries.counts_by_state(conn)

    def list_refusals(self, limit: int = 50, offset: int = 0) -> list[Refusal]:
        with self._reading() as conn:
            return queries.list_refusals(conn, limit, offset)

    # ------------------------------------------------------------------ outbox

    def claim_due(self, now: dt.datetime, lease_seconds: float, limit: int = 10, *,
                  max_attempts: int | None = None) -> list[OutboxItem]:
        """Lease up to ``limit`` due deliveries (pending and due, or in flight with an expired lease).

        Safe with several workers. A lease that expired counts as a failed attempt; with
        ``max_attempts`` reached the entry fails instead of being claimed again.
        """
        with self._writing() as conn:
            items, made = outbox_ops.claim_due(conn, now, dt.timedelta(seconds=lease_seconds),
                                               limit, max_attempts)
        self._announce(made)
        return items

    def complete_delivery(self, item: OutboxItem, receipt: DeliveryReceipt, *,
                          now: dt.datetime | None = None) -> Transition | None:
        """Record the receipt; queued/retrying → delivered. None when no transition was made."""
        with self._writing() as conn:
            made = outbox_ops.complete(conn, item, receipt, now or self.clock())
        self._announce([made] if made else [])
        return made

    def fail_attempt(self, item: OutboxItem, error: str, *, permanent: bool,
                     next_attempt_at: dt.datetime, max_attempts: int,
                     now: dt.datetime | None = None) -> Transition | None:
        """Record a failed attempt: retry at ``next_attempt_at``, or fail for good."""
        with self._writing() as conn:
            made = outbox_ops.fail(conn, item, error, permanent=permanent, retry_at=next_attempt_at,
                                   max_attempts=max_attempts, now=now or self.clock())
        self._announce([made] if made else [])
        return made

    # ------------------------------------------------------------------ plumbing

    def _transaction(self, *, early: bool = False) -> engines.WriteTransaction:
        """A write transaction for :class:`~gateway.store.prepared.Prepared` statements only,
        without SQLAlchemy's Connection (the hot path: see ``engine.WriteTransaction``);
        ``early`` only for the arrival record (see ``engine.EARLY``)."""
        return engines.WriteTransaction(self.engine, early=early, pins=self._pins)

    @contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction on a SQLAlchemy Connection, for statements run with ``conn.execute``."""
        with self.engine.connect() as conn:
            conn.execution_options(**{engines.WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    def _put_blob(conn: Runner, data: bytes, at: dt.datetime) -> str:
        sha = hashlib.sha256(data).hexdigest()
        _INSERT_BLOB.execute(conn, {"sha256": sha, "size": len(data), "data": data, "created_at": at})
        return sha

    @staticmethod
    def _audit_refusal(conn: Runner, sha: str, size: int, source: str, error_code: str,
                       detail: str, at: dt.datetime) -> int:
        return _INSERT_REFUSAL.insert(conn, {
            "package_sha256": sha, "size": size, "at": at, "source": source,
            "error_code": error_code, "error_detail": detail})

    def _announce(self, made: list[Transition]) -> None:
        if self.on_transition is None:
            return
        for transition in made:
            try:
                self.on_transition(transition.arrival_number, transition.from_state, transition.to_state,
                                   transition.actor, transition.reason)
            except Exception:  # a listener must never undo or hide a committed transition
                log.exception("transition listener failed for %s", transition.arrival_number)
