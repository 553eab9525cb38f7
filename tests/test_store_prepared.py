"""gateway/store/prepared.py: statements run on the DBAPI cursor behave as through SQLAlchemy.

On a real SQLite file and a real PostgreSQL database (tests/pg.py), against the gateway's
own tables, so every column type the store binds (JSON, UTC times, booleans, bytes) is covered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from gateway.store import Store
from gateway.store.prepared import Prepared, PreparedInsert, insert_unless_conflict
from gateway.store.schema import applications, blobs, outbox, transitions
from tests.pg import database_url  # noqa: F401  (the fixture: SQLite and PostgreSQL)

T0 = dt.datetime(2026, 11, 28, 1, 15, 0, 123456, tzinfo=dt.UTC)
JST = dt.timezone(dt.timedelta(hours=9))
APP_COLUMNS = ("arrival_number", "package_sha256", "state", "live", "flags", "received_at", "applied_at",
               "source", "signer", "evidence", "problems", "updated_at")
INSERT_BLOB = Prepared(insert_unless_conflict(blobs, index_elements=[blobs.c.sha256]),
                       column_keys=("sha256", "size", "data", "created_at"))
INSERT_APP = PreparedInsert(applications.insert(), column_keys=APP_COLUMNS)
INSERT_LIVE_APP = PreparedInsert(
    insert_unless_conflict(applications, index_elements=[applications.c.arrival_number],
                           index_where=applications.c.live), column_keys=APP_COLUMNS)
SELECT_APP = sa.select(applications).where(applications.c.id == sa.bindparam("app_id"))


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:  # noqa: F811
    store = Store(database_url)  # the store's engine: its hooks, its JSON settings
    store.upgrade()
    yield store.engine
    store.close()


def app_row(number: str = "202611280000012345", **changes: object) -> dict[str, object]:
    return {"arrival_number": number, "package_sha256": "ab" * 32, "state": "received", "live": True,
            "flags": ["要本人確認"], "received_at": T0, "applied_at": T0.astimezone(JST),
            "source": "http:portal", "signer": None, "evidence": {"der": b"\x30\x82", "at": T0, "氏名": "山田"},
            "problems": [], "updated_at": T0, **changes}


@contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction in which the blob the applications refer to exists."""
    with engine.connect() as conn, conn.begin():
        INSERT_BLOB.execute(conn, {"sha256": "ab" * 32, "size": 3, "data": b"PK\x03", "created_at": T0})
        yield conn


def test_rows_read_and_written_are_those_sqlalchemy_reads_and_writes(engine):
    with writing(engine) as conn:
        app_id = INSERT_APP.insert(conn, app_row())
        prepared = Prepared(SELECT_APP).first(conn, {"app_id": app_id})
        through_sqlalchemy = dict(conn.execute(SELECT_APP, {"app_id": app_id}).mappings().one())
    assert prepared == through_sqlalchemy
    assert prepared["live"] is True and prepared["received_at"] == T0 and prepared["applied_at"] == T0
    assert prepared["evidence"] == {"der": "MII=", "at": T0.isoformat(), "氏名": "山田"}
    assert prepared["signer"] is None and prepared["flags"] == ["要本人確認"]


def test_inserts_return_their_key_and_a_skipped_conflict_returns_none(engine):
    with writing(engine) as conn:
        first = INSERT_LIVE_APP.insert_if_new(conn, app_row())
        assert first is not None
        assert INSERT_LIVE_APP.insert_if_new(conn, app_row()) is None  # the number is live
        # the conflict is only with a live application: a refused one frees the number
        assert Prepared(applications.update().where(applications.c.id == sa.bindparam("app_id")),
                        column_keys=["live"]).execute(conn, {"app_id": first, "live": False}) == 1
        second = INSERT_LIVE_APP.insert(conn, app_row())
        assert second > first
        with pytest.raises(RuntimeError, match="nothing was inserted"):
            INSERT_LIVE_APP.insert(conn, app_row())


def test_executemany_literals_and_returning(engine):
    record = Prepared(transitions.insert(), column_keys=(
        "application_id", "from_state", "to_state", "at", "actor", "reason"))
    with writing(engine) as conn:
        app_id = INSERT_APP.insert(conn, app_row())
        record.executemany(conn, [{"application_id": app_id, "from_state": old, "to_state": new, "at": T0,
                                   "actor": "system", "reason": "試験"}
                                  for old, new in [(None, "received"), ("received", "verified")]])
        record.executemany(conn, [])  # nothing to do is fine
        # "verified" is a literal of the statement, not a parameter
        verified = Prepared(sa.select(transitions.c.from_state, transitions.c.at)
                            .where(transitions.c.application_id == sa.bindparam("app_id"),
                                   transitions.c.to_state == "verified"))
        assert verified.rows(conn, {"app_id": app_id}) == [{"from_state": "received", "at": T0}]
        if conn.dialect.update_returning:
            back = Prepared(applications.update().where(applications.c.id == sa.bindparam("app_id"))
                            .returning(applications.c.state, applications.c.updated_at), column_keys=["state"])
            assert back.first(conn, {"app_id": app_id, "state": "verified"}) == {
                "state": "verified", "updated_at": T0}


def test_errors_are_raised_as_sqlalchemy_raises_them(engine):
    with engine.connect() as conn, conn.begin():  # no blob: the foreign key fails
        with pytest.raises(sa.exc.IntegrityError):
            INSERT_APP.insert(conn, app_row())
    with engine.connect() as conn, conn.begin():
        with pytest.raises(sa.exc.StatementError, match="naive"):
            INSERT_APP.insert(conn, app_row(received_at=dt.datetime(2026, 11, 28, 10, 15)))
        with pytest.raises(sa.exc.StatementError, match="source"):
            INSERT_APP.insert(conn, {k: v for k, v in app_row().items() if k != "source"})
    expanding = Prepared(sa.select(outbox.c.id).where(outbox.c.status.in_(["pending", "failed"])))
    with engine.connect() as conn, pytest.raises(ValueError, match="not a plain statement"):
        expanding.rows(conn, {})


def test_cursor_listeners_hear_each_statement(engine):
    heard: list[tuple[str, bool]] = []

    def listen(_conn, _cursor, statement, _params, _context, executemany):
        heard.append((statement.split()[0], executemany))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        with writing(engine) as conn:
            INSERT_APP.insert(conn, app_row())
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    assert heard == [("INSERT", False), ("INSERT", False)]


def test_one_compiled_form_per_dialect(engine):
    statement = Prepared(SELECT_APP)
    assert statement.compiled(engine.dialect) is statement.compiled(engine.dialect)
    other = sa.create_engine("sqlite://").dialect
    assert statement.compiled(other) is not statement.compiled(engine.dialect)
