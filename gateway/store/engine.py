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
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

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
    driver = _driver(conn)
    if options.get(WRITE):
        driver.execute("PRAGMA synchronous=NORMAL" if options.get(EARLY) else "PRAGMA synchronous=FULL")
        driver.execute("BEGIN IMMEDIATE")
    else:
        driver.execute("BEGIN")


def _driver(conn: sa.Connection) -> Any:
    driver = conn.connection.driver_connection
    assert driver is not None
    return driver


def dumps_json(value: Any) -> str:
    """JSON for the database: keeps Japanese readable and stores what verification returns."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


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
