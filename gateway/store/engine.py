"""Engine set-up for SQLite and PostgreSQL, and running the Alembic migrations from code.

SQLite is configured for the promise the intake makes ("durably stored before 202"): WAL with
``synchronous=FULL`` (every commit is fsynced), foreign keys on, a busy timeout, and write
transactions opened with ``BEGIN IMMEDIATE`` so that two writers queue up on the lock instead
of one failing half-way through a read-then-write transaction.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import os
import threading
import weakref
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, NoReturn

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from gateway.errors import StartupError

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
WRITE = "gateway_write"
"""Execution option marking a connection whose transaction will write (see :func:`_begin`)."""
EARLY = "gateway_early"
"""Execution option: this write may wait for the next fully synced commit to reach the disk.

Used for the arrival record only. SQLite WAL with ``synchronous=NORMAL`` survives a crash of
the process (kill -9) but may lose the last commits on power loss; the commit that follows
(queued, refused or deferred, always ``FULL``) fsyncs the WAL and with it this one, and it
comes before any answer to the sender. So a 202 is never given for something not on disk,
and the hot path pays one fsync per package instead of two."""
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK_KEY = 0x6A70_6777  # pg_advisory_xact_lock key: one migrator at a time


def make_engine(url: str) -> sa.Engine:
    """Create the one engine a :class:`~gateway.store.Store` uses (thread-safe pool)."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":  # a plain URL means the driver we ship
        parsed = parsed.set(drivername="postgresql+psycopg")
    json_args: dict[str, Any] = {"json_serializer": dumps_json, "json_deserializer": json.loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
            raise StartupError("SQLite のメモリ上のデータベースは使えません (永続化できないため)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                  **json_args)
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, **json_args)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module; _sqlite_begin emits BEGIN.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
                   "foreign_keys=ON"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # A deferred transaction that reads and then writes can fail with SQLITE_BUSY when another
    # writer committed in between (the busy handler cannot help); IMMEDIATE takes the write
    # lock up front. Readers keep plain BEGIN so they never wait for writers (WAL).
    # Straight to the driver: this runs for every transaction, SQLAlchemy's statement path does not
    # need to see it.
    options = conn.get_execution_options()
    if options.get(WRITE):
        begin_sqlite_write(_driver(conn), early=bool(options.get(EARLY)))
    else:
        _driver(conn).execute("BEGIN")


def begin_sqlite_write(driver: Any, *, early: bool) -> None:
    """``BEGIN IMMEDIATE`` at the durability the write needs (see :data:`EARLY`).

    The level is set on every write: the same pooled connection serves arrivals (NORMAL) and
    everything else (FULL), and a level left over from the last user must never decide."""
    driver.execute(_SYNC_NORMAL if early else _SYNC_FULL)
    driver.execute("BEGIN IMMEDIATE")


_SYNC_NORMAL, _SYNC_FULL = "PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"


class WriteTransaction:
    """A write transaction straight on a pooled DBAPI connection: the hot path's plumbing.

    Why: ``engine.connect()``, ``conn.begin()``, the commit and the close cost some 50 µs of
    Python per transaction (Connection and RootTransaction objects, events, execution
    options), several times what SQLite needs to begin and commit, and every package makes
    two. This takes a connection from the engine's own pool (pre-ping, ``dispose()`` and
    invalidation still apply; with ``pins``, the thread's kept one: :class:`PinnedConnections`),
    begins as :func:`_sqlite_begin` does for writers (``BEGIN IMMEDIATE`` at the :data:`EARLY`
    or full level; PostgreSQL begins implicitly), commits or rolls back on the DBAPI
    connection and gives it back (``with`` block).

    It offers what a :class:`~gateway.store.prepared.Prepared` statement runs on
    (``dialect``, ``connection``, ``dispatch``, ``invalidate``) and nothing else: only those
    run in it. Errors look as through SQLAlchemy (its exception classes; a lost connection is
    invalidated, never given back as usable). The engine's ``commit`` and ``rollback``
    listeners hear this object in place of a Connection; ``begin`` listeners are not called,
    the BEGIN being this class's own.
    """

    __slots__ = ("_early", "_pin", "_pins", "connection", "dialect", "dispatch", "engine")

    def __init__(self, engine: sa.Engine, *, early: bool = False, pins: PinnedConnections | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.dispatch = engine.dispatch
        self._early = early
        self._pins = pins
        self._pin: _Pin | None = None
        self.connection: Any = None

    def __enter__(self) -> WriteTransaction:
        dialect = self.dialect
        try:
            if self._pins is None:
                self.connection = self.engine.raw_connection()
            else:
                self._pin, self.connection = self._pins.take()
        except dialect.loaded_dbapi.Error as err:  # as Engine.connect() reports it
            sa.Connection._handle_dbapi_exception_noconnection(err, dialect, self.engine)
        if dialect.name == "sqlite":
            try:
                begin_sqlite_write(self.connection.driver_connection, early=self._early)
            except BaseException as exc:
                self._fail(exc)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, _tb: Any) -> None:
        if exc is not None:
            self._end_after(exc)
            return  # the exception goes on
        try:
            if self.dispatch.commit:
                self.dispatch.commit(self)
            self.dialect.do_commit(self.connection.dbapi_connection)
        except BaseException as err:
            self._fail(err)
        self._give_back()

    def invalidate(self, exception: BaseException | None = None) -> None:
        """Drop the DBAPI connection (it was lost): the pool makes a new one when needed."""
        if self.connection.is_valid:
            self.connection.invalidate(exception)

    def _end_after(self, exc: BaseException) -> bool:
        """Roll back after ``exc``, or drop the connection when it is lost or its state
        unknown, and give it back to the pool. True when it was dropped."""
        fairy, dialect = self.connection, self.dialect
        # Interrupted half-way (KeyboardInterrupt …): the connection's state is unknown.
        lost = not isinstance(exc, Exception) or (
            isinstance(exc, dialect.loaded_dbapi.Error) and fairy.is_valid
            and dialect.is_disconnect(exc, fairy.dbapi_connection, None))
        try:
            if not lost and fairy.is_valid:
                if self.dispatch.rollback:
                    self.dispatch.rollback(self)
                dialect.do_rollback(fairy.dbapi_connection)
        except Exception as err:  # the rollback failed too: the connection cannot be trusted
            lost, exc = True, err
        try:
            if lost:
                self.invalidate(exc)
            return lost or not fairy.is_valid
        finally:
            self._give_back()

    def _give_back(self) -> None:
        if self._pin is None:
            self.connection.close()
        else:
            self._pin.put_back(self.connection)

    def _fail(self, exc: BaseException) -> NoReturn:
        """End the transaction after ``exc`` and raise it, a DBAPI error as SQLAlchemy would."""
        lost = self._end_after(exc)
        dbapi_error = self.dialect.loaded_dbapi.Error
        if isinstance(exc, dbapi_error):
            raise sa.exc.DBAPIError.instance(None, None, exc, dbapi_error, dialect=self.dialect,
                                             connection_invalidated=lost) from exc
        raise exc


class PinnedConnections:
    """One pooled connection per thread, kept checked out between its write transactions (SQLite).

    Why: taking a connection from the pool and giving it back costs some 20 µs of Python per
    transaction on a small VM (more with the CPU caches cold, as they are between the
    pipeline's phases), and a package makes two. For SQLite the pool gains nothing from having
    it back in between: the connection holds no lock or snapshot outside a transaction and
    there is no pre-ping. So a thread keeps the one it had (:meth:`take`). At most
    ``pool.size()`` threads keep one, so the pool's overflow stays for everyone else (the
    others check out as usual); it goes back to the pool when it was lost (invalidated),
    when its thread ends, and at :meth:`close`. A forked child never uses its parent's.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pins: weakref.WeakSet[_Pin] = weakref.WeakSet()
        self._limit = engine.pool.size() if isinstance(engine.pool, sa.pool.QueuePool) else 0
        self._closed = False

    def take(self) -> tuple[_Pin | None, Any]:
        """This thread's connection and its pin; the pin is None for a plain pool checkout
        (the caller closes that one, and puts a pinned one back with :meth:`_Pin.put_back`)."""
        pin = self._local.__dict__.get("pin")
        if pin is not None and not pin.retired and pin.generation == _generation:
            try:
                return pin, pin.slot.pop()  # atomic: close() may take it away meanwhile
            except IndexError:  # in use (a transaction inside a transaction), or just retired
                return None, self._engine.raw_connection()
        fairy = self._engine.raw_connection()
        with self._lock:
            if pin is not None:  # lost, closed, or the parent's: no longer counts
                self._pins.discard(pin)
            if self._closed or len(self._pins) >= self._limit:
                return None, fairy
            pin = _Pin(fairy)
            self._pins.add(pin)
        self._local.pin = pin
        return pin, fairy

    def close(self) -> None:
        """Give every kept connection back to the pool (one in use goes back after its transaction)."""
        with self._lock:
            self._closed = True
            pins = list(self._pins)
        for pin in pins:
            pin.retire()


class _Pin:
    """A connection kept by one thread: in ``slot`` while not in use, taken out while in use."""

    __slots__ = ("__weakref__", "_release", "generation", "retired", "slot")

    def __init__(self, fairy: Any) -> None:
        self.slot: list[Any] = []
        self.generation = _generation
        self.retired = False
        # Back to the pool when the pin dies with its thread (or at retire()); once only.
        self._release = weakref.finalize(self, _check_in, fairy, self.generation)
        self._release.atexit = False  # at exit the process closes it anyway

    def put_back(self, fairy: Any) -> None:
        """After a transaction: keep it for the next one, unless it was lost or the pin retired."""
        if fairy.is_valid and not self.retired:
            self.slot.append(fairy)
        else:
            self.retired = True
            self._release()

    def retire(self) -> None:
        self.retired = True
        try:
            self.slot.pop()
        except IndexError:  # in use: put_back() releases it
            return
        self._release()


def _check_in(fairy: Any, generation: int) -> None:
    if generation == _generation:  # not in a forked child: the connection is the parent's
        fairy.close()


_generation = 0
"""Bumped in a forked child: connections kept by the parent are not the child's to use."""


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def _driver(conn: sa.Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def dumps_json(value: Any) -> str:
    """JSON for the database: keeps Japanese readable and stores what verification returns."""
    return _ENCODER.encode(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


# What json.dumps(value, ensure_ascii=False, default=_json_default) builds on every call (the
# encoder keeps no state between calls).
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_json_default)


def alembic_config(engine_or_url: sa.Engine | str | None = None) -> AlembicConfig:
    """An Alembic configuration built in code: no ``alembic.ini`` is needed at run time."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(engine_or_url, str):
        cfg.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade`` in one transaction, serialised against other processes."""
    cfg = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        # Batch migrations copy tables, so foreign keys are checked once at the end instead.
        # SQLite ignores this pragma inside a transaction: it goes to the driver before BEGIN.
        driver = _driver(conn)
        if sqlite:
            driver.execute("PRAGMA foreign_keys=OFF")
        try:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise StartupError("マイグレーション後に外部キーの不整合があります")
        finally:
            if sqlite:
                driver.execute("PRAGMA foreign_keys=ON")
