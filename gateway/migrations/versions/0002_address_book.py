"""The 宛名番号 table: signing-certificate (issuer key id, serial) → 宛名番号, and its imports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the types as they were at this revision (never import gateway.store here).
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "address_book_imports",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("imported_at", TS, nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_address_book_imports"),
    )
    op.create_table(
        "address_book",
        sa.Column("issuer_key_id", sa.String(64), nullable=False),
        sa.Column("serial", sa.String(40), nullable=False),
        sa.Column("address_number", sa.String(32), nullable=False),
        sa.Column("import_id", sa.Integer, nullable=False),
        # The lookup key: one indexed probe per package.
        sa.PrimaryKeyConstraint("issuer_key_id", "serial", name="pk_address_book"),
        sa.ForeignKeyConstraint(["import_id"], ["address_book_imports.id"],
                                name="fk_address_book_import_id_address_book_imports"),
    )


def downgrade() -> None:
    for table in ("address_book", "address_book_imports"):
        op.drop_table(table)
