"""The gateway's tables (SQLAlchemy Core). The migrations in ``gateway/migrations`` create them.

Portable between SQLite and PostgreSQL: times are stored as UTC and always read back
timezone-aware, JSON is JSONB on PostgreSQL, and the one uniqueness rule that depends on
state (one *live* application per 到達番号) is a partial index both databases support.
A test checks that the migrations produce exactly these tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(dt.UTC)
        # SQLite compares times as text: store them naive, all in UTC, in one format.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[dt.datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        # What process_bind_param and SQLite's DATETIME make together (its storage format,
        # "2026-11-28 01:15:00.000000"), in one step: every row written has one to four times.
        return _sqlite_text

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _sqlite_text(value: dt.datetime | None) -> str | None:
    """A time as :class:`UtcDateTime` stores it on SQLite: UTC, naive, to the microsecond."""
    last = _LAST_TEXT[0]  # (a time, its text), read once: another thread's pair cannot mix in
    if value is last[0]:  # the rows of one package share their time: it is made once
        return last[1]
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware one")
    utc = value if value.tzinfo is dt.UTC else value.astimezone(dt.UTC)
    # datetime's own isoformat (a subclass may have another), without its "+00:00"
    text = dt.datetime.isoformat(utc, " ", "microseconds")[:26]
    _LAST_TEXT[0] = (value, text)
    return text


_LAST_TEXT: list[tuple[dt.datetime | None, str | None]] = [(None, None)]


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


blobs = sa.Table(
    "blobs", metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

applications = sa.Table(
    "applications", metadata,
    _id(),
    sa.Column("arrival_number", sa.String(32), nullable=False, index=True),
    sa.Column("package_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    # False once refused: the 到達番号 is then free for a later, different package.
    sa.Column("live", sa.Boolean, nullable=False),
    sa.Column("procedure_code", sa.String(64)),
    sa.Column("procedure_version", sa.String(32)),
    sa.Column("plugin_version", sa.String(64)),
    sa.Column("municipality_code", sa.String(6)),
    sa.Column("application_kind", sa.String(16)),
    sa.Column("original_arrival_number", sa.String(32)),
    sa.Column("flags", Json, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("applied_at", UtcDateTime),
    sa.Column("verified_at", UtcDateTime),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("signer", Json),
    sa.Column("evidence", Json),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_detail", sa.Text),
    sa.Column("problems", Json),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("uq_applications_live_arrival_number", "arrival_number", unique=True,
             sqlite_where=sa.text("live"), postgresql_where=sa.text("live")),
)

transitions = sa.Table(
    "transitions", metadata,
    _id(),
    sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id"), nullable=False, index=True),
    sa.Column("from_state", sa.String(32)),
    sa.Column("to_state", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)

records = sa.Table(
    "records", metadata,
    _id(),
    sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id"), nullable=False, index=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("media_type", sa.String(128), nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("content_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
    sa.Column("plugin", sa.String(128), nullable=False),
    sa.Column("plugin_version", sa.String(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

outbox = sa.Table(
    "outbox", metadata,
    _id(),
    sa.Column("application_id", sa.Integer, sa.ForeignKey("applications.id"), nullable=False, index=True),
    sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id"), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("options", Json, nullable=False),
    # pending | in_flight | done | failed | cancelled
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("lease_until", UtcDateTime),
    # Who holds the lease: a worker whose lease ran out cannot complete another's claim.
    sa.Column("lease_token", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime),
    sa.Column("receipt_id", sa.String(512)),
    sa.Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts", metadata,
    _id(),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox.id"), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("receipt_id", sa.String(512)),
)

refusals_audit = sa.Table(
    "refusals_audit", metadata,
    _id(),
    sa.Column("package_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False, index=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(128), nullable=False),
    sa.Column("error_code", sa.String(64), nullable=False),
    sa.Column("error_detail", sa.Text, nullable=False),
)

# --------------------------------------------------------------------------- 宛名番号 table
# The resident-registry system's table of signing-certificate serials → 宛名番号
# (jpki-profile.md), imported whole by gateway.store.addressbook; a re-import replaces every
# entry in one transaction. Serials are unique only per issuing key, hence the two-part key,
# which is also the one index the per-package lookup uses.

address_book_imports = sa.Table(
    "address_book_imports", metadata,
    _id(),
    sa.Column("imported_at", UtcDateTime, nullable=False),
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
)

address_book = sa.Table(
    "address_book", metadata,
    # lower-case hex without separators: the certificate's authorityKeyIdentifier
    sa.Column("issuer_key_id", sa.String(64), primary_key=True),
    # lower-case hex without leading zeros, as the evidence writes it (up to 20 octets)
    sa.Column("serial", sa.String(40), primary_key=True),
    sa.Column("address_number", sa.String(32), nullable=False),
    sa.Column("import_id", sa.Integer, sa.ForeignKey("address_book_imports.id"), nullable=False),
)
