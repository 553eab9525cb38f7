"""gateway/store/engine.py and schema.py: the hot path's plumbing behaves as SQLAlchemy's.

``WriteTransaction`` against SQLAlchemy's Connection + begin + commit (on a real SQLite file
and a real PostgreSQL database, tests/pg.py), and the one-step converters (UTC times on
SQLite, JSON) against what SQLAlchemy and ``json.dumps`` make.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import gc
import json
import sqlite3
import threading
from collections.abc import Iterator
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.store import Store
from gateway.store import engine as engines
from gateway.store.engine import WriteTransaction, _json_default, dumps_json
from gateway.store.prepared import Prepared, insert_unless_conflict
from gateway.store.schema import UtcDateTime, applications, blobs
from tests.pg import database_url  # noqa: F401  (the fixture: SQLite and PostgreSQL)

T0 = dt.datetime(2026, 11, 28, 1, 15, 0, 123456, tzinfo=dt.UTC)
INSERT_BLOB = Prepared(insert_unless_conflict(blobs, index_elements=[blobs.c.sha256]),
                       column_keys=("sha256", "size", "data", "created_at"))
INSERT_APP = Prepared(applications.insert(), column_keys=(
    "arrival_number", "package_sha256", "state", "live", "flags", "received_at", "source", "updated_at"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    store = Store(database_url)
    store.upgrade()
    yield store
    store.close()


def blob(name: str) -> dict[str, object]:
    return {"sha256": name.ljust(64, "0"), "size": 1, "data": b"x", "created_at": T0}


def stored(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0].rstrip("0") for row in conn.execute(sa.select(blobs.c.sha256).order_by(blobs.c.sha256))]


def checked_out(store: Store) -> int:
    return store.engine.pool.checkedout()


# --------------------------------------------------------------------------- WriteTransaction


def test_a_write_transaction_commits_and_gives_its_connection_back(store):
    heard: list[str] = []
    sa.event.listen(store.engine, "commit", lambda _conn: heard.append("commit"))
    sa.event.listen(store.engine, "rollback", lambda _conn: heard.append("rollback"))
    with WriteTransaction(store.engine) as tx:
        INSERT_BLOB.execute(tx, blob("a"))
        assert checked_out(store) == 1
    assert heard == ["commit"]
    assert stored(store) == ["a"] and checked_out(store) == 0


def test_an_error_rolls_the_write_transaction_back_and_goes_on_unchanged(store):
    class Stop(Exception):
        pass

    with pytest.raises(Stop), WriteTransaction(store.engine) as tx:
        INSERT_BLOB.execute(tx, blob("a"))
        raise Stop
    with pytest.raises(sa.exc.IntegrityError), WriteTransaction(store.engine) as tx:  # as SQLAlchemy raises it
        INSERT_BLOB.execute(tx, blob("b"))
        INSERT_APP.execute(tx, {"arrival_number": "1", "package_sha256": "no such blob", "state": "received",
                                "live": True, "flags": [], "received_at": T0, "source": "s", "updated_at": T0})
    assert stored(store) == [] and checked_out(store) == 0
    with WriteTransaction(store.engine) as tx:  # the connection is fine for the next one
        INSERT_BLOB.execute(tx, blob("c"))
    assert stored(store) == ["c"]


def test_a_lost_connection_is_dropped_not_given_back(store, monkeypatch):
    monkeypatch.setattr(store.engine.dialect, "is_disconnect", lambda *_args: True)
    with pytest.raises(sa.exc.DBAPIError) as caught, WriteTransaction(store.engine) as tx:
        lost = tx.connection.dbapi_connection
        INSERT_APP.execute(tx, {"arrival_number": "1", "package_sha256": "no such blob", "state": "received",
                                "live": True, "flags": [], "received_at": T0, "source": "s", "updated_at": T0})
    assert caught.value.connection_invalidated and checked_out(store) == 0
    monkeypatch.undo()
    with WriteTransaction(store.engine) as tx:
        assert tx.connection.dbapi_connection is not lost  # a new one
        INSERT_BLOB.execute(tx, blob("a"))
    assert stored(store) == ["a"]


def test_a_failed_commit_is_raised_as_sqlalchemy_raises_it_and_rolled_back(store, monkeypatch):
    dbapi = store.engine.dialect.loaded_dbapi

    def fail(_dbapi_connection):
        raise dbapi.OperationalError("disk I/O error")

    monkeypatch.setattr(store.engine.dialect, "do_commit", fail)
    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"), WriteTransaction(store.engine) as tx:
        INSERT_BLOB.execute(tx, blob("a"))
    monkeypatch.undo()
    assert stored(store) == [] and checked_out(store) == 0


def test_sqlite_writers_take_the_write_lock_at_the_durability_they_need(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.upgrade()
    other = sqlite3.connect(tmp_path / "g.db", timeout=0, isolation_level=None)
    try:
        for early, level in ((True, 1), (False, 2)):  # NORMAL for the arrival, else FULL (engine.EARLY)
            with WriteTransaction(store.engine, early=early) as tx:
                driver = tx.connection.driver_connection
                assert driver.in_transaction
                assert driver.execute("PRAGMA synchronous").fetchone()[0] == level
                with pytest.raises(sqlite3.OperationalError, match="locked"):  # BEGIN IMMEDIATE
                    other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released
        other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def test_a_begin_that_fails_is_raised_as_sqlalchemy_raises_it(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.upgrade()

    def locked(*_args, **_kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(engines, "begin_sqlite_write", locked)
    with pytest.raises(sa.exc.OperationalError, match="locked"), WriteTransaction(store.engine):
        pytest.fail("the block must not run")  # pragma: no cover
    assert checked_out(store) == 0
    store.close()


# --------------------------------------------------------------------------- PinnedConnections (SQLite)


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    store.upgrade()
    yield store
    store.close()


def test_a_thread_keeps_its_connection_between_write_transactions(sqlite_store):
    store = sqlite_store
    used = []
    for name in "ab":
        with store._transaction() as tx:
            used.append(tx.connection.dbapi_connection)
            INSERT_BLOB.execute(tx, blob(name))
    assert used[0] is used[1] and checked_out(store) == 1  # kept, not given back
    assert stored(store) == ["a", "b"]
    store.close()
    assert checked_out(store) == 0


def test_at_most_pool_size_threads_keep_one_and_it_goes_back_when_the_thread_ends(sqlite_store):
    store = sqlite_store
    threads_n = store.engine.pool.size() + 3
    barrier = threading.Barrier(threads_n)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            with store._transaction() as tx:
                INSERT_BLOB.execute(tx, blob(f"t{i}"))
            barrier.wait()  # all alive at once: the rest use the pool as usual
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert errors == [] and len(stored(store)) == threads_n
    assert checked_out(store) == 0


def test_a_kept_connection_that_is_lost_is_replaced(sqlite_store, monkeypatch):
    store = sqlite_store
    with store._transaction() as tx:
        first = tx.connection.dbapi_connection
    monkeypatch.setattr(store.engine.dialect, "is_disconnect", lambda *_args: True)
    with pytest.raises(sa.exc.DBAPIError), store._transaction() as tx:
        INSERT_APP.execute(tx, {"arrival_number": "1", "package_sha256": "no such blob", "state": "received",
                                "live": True, "flags": [], "received_at": T0, "source": "s", "updated_at": T0})
    monkeypatch.undo()
    assert checked_out(store) == 0
    for name in "ab":
        with store._transaction() as tx:
            assert tx.connection.dbapi_connection is not first
            INSERT_BLOB.execute(tx, blob(name))
    assert stored(store) == ["a", "b"]
    assert checked_out(store) == 1  # the new one is kept in turn


def test_closing_the_store_in_a_transaction_gives_the_connection_back_after_it(sqlite_store):
    store = sqlite_store
    with store._transaction() as tx:
        INSERT_BLOB.execute(tx, blob("a"))
        store._pins.close()
        assert checked_out(store) == 1
    assert checked_out(store) == 0
    with store._transaction() as tx:  # still usable: a plain checkout now
        INSERT_BLOB.execute(tx, blob("b"))
    assert checked_out(store) == 0 and stored(store) == ["a", "b"]


# --------------------------------------------------------------------------- converters


def sqlalchemy_sqlite_time():
    """What UtcDateTime's bind processor on SQLite was before it was made in one step."""
    dialect = sqlite_dialect.dialect()
    return sa.types.TypeDecorator.bind_processor(UtcDateTime().dialect_impl(dialect), dialect)


class Moment(dt.datetime):
    def isoformat(self, *_args: object, **_kwargs: object) -> str:  # pragma: no cover - must not be used
        return "another format"


@pytest.mark.parametrize("value", [
    T0, T0.replace(microsecond=0), Moment(2026, 11, 28, 1, 15, tzinfo=dt.UTC),
    Moment(2026, 11, 28, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=9))), T0.astimezone(dt.timezone(dt.timedelta(hours=9))),
    T0.astimezone(dt.timezone(dt.timedelta(hours=-5, minutes=-30))), T0.astimezone(ZoneInfo("Asia/Tokyo")),
    T0.astimezone(ZoneInfo("UTC")), dt.datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin")),
    dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.UTC), dt.datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), None,
])
def test_sqlite_times_are_written_as_sqlalchemy_writes_them(value):
    fast = UtcDateTime().dialect_impl(sqlite_dialect.dialect()).bind_processor(sqlite_dialect.dialect())
    assert fast(value) == sqlalchemy_sqlite_time()(value)
    assert fast(value) == fast(value)  # made once, remembered: the same text again


def test_a_remembered_time_is_that_very_time():
    fast = UtcDateTime().dialect_impl(sqlite_dialect.dialect()).bind_processor(sqlite_dialect.dialect())
    reference = sqlalchemy_sqlite_time()
    times = [T0, T0 + dt.timedelta(microseconds=1), T0.astimezone(dt.timezone(dt.timedelta(hours=9)))]
    for value in times * 3 + times[::-1]:  # alternating, repeated, equal but not the same object
        assert fast(value) == reference(value)
    assert fast(dt.datetime(2026, 11, 28, 1, 15, 0, 123456, tzinfo=dt.UTC)) == fast(T0)
    for naive in (dt.datetime(2026, 11, 28), T0.replace(tzinfo=None)):
        with pytest.raises(ValueError, match="naive"):
            fast(naive)


class Colour(enum.Enum):
    RED = "赤"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: tuple[int, ...]


@pytest.mark.parametrize("value", [
    [], {}, None, "氏名", {"der": b"\x30\x82", "at": T0, "day": T0.date(), "colour": Colour.RED,
                           "set": {"b", "a"}, "point": Point(1, (2, 3)), "proxy": MappingProxyType({"k": "v"}),
                           "nested": [{"氏名": "山田　太郎", "n": 1.5, "ok": True}]},
])
def test_json_is_what_json_dumps_makes(value):
    assert dumps_json(value) == json.dumps(value, ensure_ascii=False, default=_json_default)


def test_json_of_what_it_cannot_store_fails_as_before():
    with pytest.raises(TypeError, match="cannot store object"):
        dumps_json({"x": object()})
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular"):
        dumps_json(circular)
