"""Initial schema: blobs, applications, transitions, records, outbox, attempts, refusals.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types as they were at this revision (never import gateway.store here).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name="pk_blobs"),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("arrival_number", sa.String(32), nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("procedure_code", sa.String(64)),
        sa.Column("procedure_version", sa.String(32)),
        sa.Column("plugin_version", sa.String(64)),
        sa.Column("municipality_code", sa.String(6)),
        sa.Column("application_kind", sa.String(16)),
        sa.Column("original_arrival_number", sa.String(32)),
        sa.Column("flags", JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("applied_at", TS),
        sa.Column("verified_at", TS),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("signer", JSON),
        sa.Column("evidence", JSON),
        sa.Column("error_code", sa.String(64)),
        sa.Column("error_detail", sa.Text),
        sa.Column("problems", JSON),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_applications"),
        sa.ForeignKeyConstraint(["package_sha256"], ["blobs.sha256"],
                                name="fk_applications_package_sha256_blobs"),
    )
    op.create_index("ix_applications_arrival_number", "applications", ["arrival_number"])
    op.create_index("ix_applications_state", "applications", ["state"])
    # One live application per 到達番号; refused ones (live = false) do not hold the number.
    op.create_index("uq_applications_live_arrival_number", "applications", ["arrival_number"],
                    unique=True, sqlite_where=sa.text("live"), postgresql_where=sa.text("live"))

    op.create_table(
        "transitions",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Integer, nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name="fk_transitions_application_id_applications"),
    )
    op.create_index("ix_transitions_application_id", "transitions", ["application_id"])

    op.create_table(
        "records",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Integer, nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("plugin", sa.String(128), nullable=False),
        sa.Column("plugin_version", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_records"),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name="fk_records_application_id_applications"),
        sa.ForeignKeyConstraint(["content_sha256"], ["blobs.sha256"],
                                name="fk_records_content_sha256_blobs"),
    )
    op.create_index("ix_records_application_id", "records", ["application_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("application_id", sa.Integer, nullable=False),
        sa.Column("record_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("lease_until", TS),
        sa.Column("lease_token", sa.String(32)),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("delivered_at", TS),
        sa.Column("receipt_id", sa.String(512)),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name="fk_outbox_application_id_applications"),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], name="fk_outbox_record_id_records"),
    )
    op.create_index("ix_outbox_application_id", "outbox", ["application_id"])
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("outbox_id", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("receipt_id", sa.String(512)),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
        sa.ForeignKeyConstraint(["outbox_id"], ["outbox.id"], name="fk_delivery_attempts_outbox_id_outbox"),
    )
    op.create_index("ix_delivery_attempts_outbox_id", "delivery_attempts", ["outbox_id"])

    op.create_table(
        "refusals_audit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("package_sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=False),
        sa.Column("error_detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refusals_audit"),
        sa.ForeignKeyConstraint(["package_sha256"], ["blobs.sha256"],
                                name="fk_refusals_audit_package_sha256_blobs"),
    )
    op.create_index("ix_refusals_audit_package_sha256", "refusals_audit", ["package_sha256"])


def downgrade() -> None:
    for table in ("refusals_audit", "delivery_attempts", "outbox", "records", "transitions",
                  "applications", "blobs"):
        op.drop_table(table)
