"""Hot statements compiled once and run straight on the DBAPI cursor.

Why this exists: every package runs nine or more SQL statements, and SQLAlchemy's
per-statement machinery (cache key, execution context, result set-up, events) costs several
times what SQLite needs to run each of them (~100-200 µs against ~15 µs on a small VM): it
was most of the store's cost, and the store a large part of the intake's. A :class:`Prepared` statement is still
written with SQLAlchemy Core against :mod:`gateway.store.schema` (names and types stay in one
place) and compiled by SQLAlchemy, once per dialect. Only the per-execution work is skipped:
parameters go through each column type's own bind processor (JSON, UTC times, booleans) in
the compiled order, and returned rows through the types' result processors.

It runs inside the caller's transaction: on a Connection SQLAlchemy gave out (the engine's
``begin`` hooks, the commit and the pool still apply), or on the hot path's
:class:`~gateway.store.engine.WriteTransaction` (see :class:`Runner`). Errors look as they would through
SQLAlchemy: DBAPI errors are raised as its exceptions (``IntegrityError`` …, a lost
connection is invalidated), bad parameters as ``StatementError``. ``before_cursor_execute``
and ``after_cursor_execute`` listeners still hear each statement (with ``context=None``).
Only plain statements: no expanding ``IN``, no Python-side column defaults. Use it for what
runs once or more per package; elsewhere ``conn.execute`` is simpler.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

Build = sa.Executable | Callable[[sa.Dialect], sa.Executable]
"""A statement, or a function making it for a dialect (e.g. ``INSERT … ON CONFLICT``)."""
_REQUIRED = object()


class Runner(Protocol):
    """What a statement runs on: a ``sa.Connection`` or an ``engine.WriteTransaction``."""

    @property
    def dialect(self) -> sa.Dialect: ...

    @property
    def connection(self) -> Any:
        """The pool's proxy of the DBAPI connection (``dbapi_connection``)."""

    @property
    def dispatch(self) -> Any:
        """Its events: ``before_cursor_execute`` and ``after_cursor_execute`` are called."""

    def invalidate(self, exception: BaseException | None = None) -> None: ...


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    binds: tuple[tuple[str, Callable[[Any], Any] | None, Any], ...]
    """(name, bind processor, literal value or _REQUIRED), in the order the driver wants them."""
    columns: tuple[tuple[str, Callable[[Any], Any] | None], ...]
    """(key, result processor) of each returned column."""
    returns_id: bool
    """The statement ends in ``RETURNING <primary key>`` (see :class:`PreparedInsert`)."""

    def parameters(self, params: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        try:  # one pass (this runs for every row written)
            if self.positional:
                return [value if process is None else process(value) for name, process, literal in self.binds
                        for value in [params[name] if literal is _REQUIRED else literal]]
            return {name: value if process is None else process(value) for name, process, literal in self.binds
                    for value in [params[name] if literal is _REQUIRED else literal]}
        except Exception as exc:  # a missing value, a naive datetime: reported as SQLAlchemy does
            raise sa.exc.StatementError(str(exc), self.sql, dict(params), exc) from exc

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        return {key: value if process is None else process(value)
                for (key, process), value in zip(self.columns, values, strict=True)}


class Prepared:
    """One Core statement, compiled on first use for each dialect, run on the DBAPI cursor.

    ``column_keys`` are the columns an INSERT or UPDATE sets (bound under the column's name);
    other parameters are ``sa.bindparam`` names. Thread-safe: compiled forms are immutable.
    """

    def __init__(self, build: Build, *, column_keys: Sequence[str] | None = None) -> None:
        self._build = build
        self._column_keys = None if column_keys is None else list(column_keys)
        self._compiled: weakref.WeakKeyDictionary[sa.Dialect, _Compiled] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._last: tuple[sa.Dialect | None, Any] = (None, None)

    def execute(self, conn: Runner, params: Mapping[str, Any]) -> int:
        """Run it once; returns the number of rows it changed."""
        compiled = self.compiled(conn.dialect)
        cursor = _run(conn, compiled.sql, compiled.parameters(params), many=False)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def executemany(self, conn: Runner, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run it for each parameter set, in one driver call."""
        compiled = self.compiled(conn.dialect)
        batch = [compiled.parameters(params) for params in rows]
        if batch:
            _run(conn, compiled.sql, batch, many=True).close()

    def rows(self, conn: Runner, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows a SELECT (or a statement with RETURNING) gives, as processed dicts."""
        compiled = self.compiled(conn.dialect)
        cursor = _run(conn, compiled.sql, compiled.parameters(params), many=False)
        try:
            fetched = cursor.fetchall()
        finally:
            cursor.close()
        return [compiled.row(values) for values in fetched]

    def first(self, conn: Runner, params: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        """The statement compiled for ``dialect`` (made once, then reused)."""
        last = self._last  # a process has one dialect, in the tests two: skip the weak dictionary
        if last[0] is dialect:
            return last[1]
        compiled = self._compiled.get(dialect)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(dialect)
                if compiled is None:
                    compiled = self._compiled[dialect] = self._compile(dialect)
        self._last = (dialect, compiled)
        return compiled

    def _statement(self, dialect: sa.Dialect) -> tuple[sa.Executable, bool]:
        """The statement to compile, and whether it returns the new primary key."""
        return (self._build(dialect) if callable(self._build) else self._build), False

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        statement, returns_id = self._statement(dialect)
        compiled = statement.compile(dialect=dialect, column_keys=self._column_keys)
        if compiled.post_compile_params or compiled.escaped_bind_names:
            raise ValueError(f"not a plain statement (expanding IN or escaped names): {compiled}")
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        order = compiled.positiontup if compiled.positional else list(by_name)
        assert order is not None
        binds = tuple(
            (name, by_name[name].type.dialect_impl(dialect).bind_processor(dialect),
             _REQUIRED if by_name[name].required else by_name[name].effective_value)
            for name in order)
        # The driver's type code is not known before a first run; no type used here needs it.
        columns = tuple((column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
                        for column in getattr(statement, "exported_columns", ()))
        return _Compiled(sql=str(compiled), positional=bool(compiled.positional), binds=binds,
                         columns=columns, returns_id=returns_id)


class PreparedInsert(Prepared):
    """An INSERT of one row that returns the new primary key.

    The key comes the way the dialect prefers: ``lastrowid`` on SQLite (any version, no
    RETURNING needed), ``RETURNING`` on PostgreSQL.
    """

    def insert(self, conn: Runner, params: Mapping[str, Any]) -> int:
        """Insert the row; returns its new primary key."""
        key = self.insert_if_new(conn, params)
        if key is None:
            raise RuntimeError(f"nothing was inserted: {self.compiled(conn.dialect).sql}")
        return key

    def insert_if_new(self, conn: Runner, params: Mapping[str, Any]) -> int | None:
        """For an ``INSERT … ON CONFLICT DO NOTHING``: the new key, or None when it did nothing."""
        compiled = self.compiled(conn.dialect)
        cursor = _run(conn, compiled.sql, compiled.parameters(params), many=False)
        try:
            if compiled.returns_id:
                row = cursor.fetchone()
                return None if row is None else int(row[0])
            return int(cursor.lastrowid) if cursor.rowcount == 1 else None
        finally:
            cursor.close()

    def _statement(self, dialect: sa.Dialect) -> tuple[sa.Executable, bool]:
        statement, _ = super()._statement(dialect)
        assert isinstance(statement, sa.Insert)
        if dialect.postfetch_lastrowid:
            return statement, False
        if not dialect.insert_returning:
            raise ValueError(f"{dialect.name}: neither lastrowid nor INSERT … RETURNING")
        # inline(): no RETURNING of SQLAlchemy's own choosing; ours is the primary key only.
        return statement.inline().returning(*statement.table.primary_key), True


def insert_unless_conflict(table: sa.Table, *, index_elements: Sequence[sa.Column[Any]],
                           index_where: sa.ColumnElement[bool] | None = None) -> Callable[[sa.Dialect], sa.Insert]:
    """``INSERT … ON CONFLICT (…) DO NOTHING``, built with each database's own construct."""
    def build(dialect: sa.Dialect) -> sa.Insert:
        insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        return insert(table).on_conflict_do_nothing(index_elements=list(index_elements), index_where=index_where)
    return build


def _run(conn: Runner, sql: str, args: Any, *, many: bool) -> Any:
    """Execute on a fresh DBAPI cursor of ``conn``; the caller closes the cursor returned."""
    dialect = conn.dialect
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    cursor = dbapi_conn.cursor()
    dispatch = conn.dispatch
    try:
        if dispatch.before_cursor_execute:  # instrumentation: bench/breakdown.py counts statements
            dispatch.before_cursor_execute(conn, cursor, sql, args, None, many)
        if many:
            cursor.executemany(sql, args)
        else:
            cursor.execute(sql, args)
        if dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(conn, cursor, sql, args, None, many)
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_conn, cursor)
        cursor.close()
        error = sa.exc.DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error,
                                           connection_invalidated=lost, dialect=dialect, ismulti=many)
        if lost:
            conn.invalidate(exc)
        raise error from exc
    except BaseException:
        cursor.close()
        raise
    return cursor
