"""Alembic environment for the gateway's database (SQLite or PostgreSQL).

Normally run from :meth:`gateway.store.Store.upgrade`, which passes its connection in
``config.attributes["connection"]``. For writing a new migration by hand:
``alembic -c gateway/alembic.ini revision --autogenerate -m "..."`` with
``GATEWAY_DATABASE_URL`` (or ``-x url=...``) naming a database at head.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from gateway.store.engine import make_engine
from gateway.store.schema import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or os.environ.get("GATEWAY_DATABASE_URL") or config.get_main_option("sqlalchemy.url"))
    if not url:
        raise SystemExit("データベースの URL がありません (-x url=... か GATEWAY_DATABASE_URL)")
    engine = make_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("オフライン (SQL 出力) のマイグレーションには対応していません")
run_migrations_online()
