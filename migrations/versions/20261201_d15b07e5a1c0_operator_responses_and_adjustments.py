"""operator responses on statements (acknowledge / dispute) and the adjustments that answer them

Revision ID: d15b07e5a1c0
Revises: b7e1c0f3a9d2
Create Date: 2026-12-01 20:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voucher_api.db

revision: str = "d15b07e5a1c0"
down_revision: str | None = "b7e1c0f3a9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RESPONSES = ("none", "acknowledged", "disputed")
RESPONSE_CHECK = "operator_response IN ({})".format(", ".join(f"'{value}'" for value in RESPONSES))

# Reviewed by hand.
#
# statements already holds rows (and statement_lines point at it), so its new columns are added in
# place, never by copying the table: on SQLite a batch "move and copy" must DROP the old table, which
# fails with foreign keys on as soon as a line references a statement. SQLite's ALTER TABLE ADD COLUMN
# takes the CHECK and the REFERENCES as column constraints, so it gets them inline; PostgreSQL adds
# them as named table constraints. Both get the same names as the models' naming convention gives.
# The NOT NULL columns carry a server default, so existing statements read "no response yet".
SQLITE_COLUMNS = (
    "operator_response VARCHAR(32) DEFAULT 'none' NOT NULL"
    f" CONSTRAINT ck_statements_operator_response CHECK ({RESPONSE_CHECK})",
    "operator_response_by_id INTEGER"
    " CONSTRAINT fk_statements_operator_response_by_id_staff_users REFERENCES staff_users (id)",
    "operator_response_at DATETIME",
    "dispute_reason VARCHAR(500) DEFAULT '' NOT NULL",
    "dispute_answered_at DATETIME",
)
NEW_COLUMNS = (
    "dispute_answered_at",
    "dispute_reason",
    "operator_response_at",
    "operator_response_by_id",
    "operator_response",
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for column in SQLITE_COLUMNS:
            op.execute(f"ALTER TABLE statements ADD COLUMN {column}")
    else:
        op.add_column(
            "statements",
            sa.Column("operator_response", sa.String(length=32), server_default="none", nullable=False),
        )
        op.create_check_constraint(op.f("ck_statements_operator_response"), "statements", RESPONSE_CHECK)
        op.add_column("statements", sa.Column("operator_response_by_id", BIG_ID, nullable=True))
        op.create_foreign_key(
            op.f("fk_statements_operator_response_by_id_staff_users"),
            "statements",
            "staff_users",
            ["operator_response_by_id"],
            ["id"],
        )
        op.add_column(
            "statements",
            sa.Column("operator_response_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        )
        op.add_column(
            "statements",
            sa.Column("dispute_reason", sa.String(length=500), server_default="", nullable=False),
        )
        op.add_column(
            "statements",
            sa.Column("dispute_answered_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        )

    op.create_table(
        "statement_adjustments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("municipality_id", BIG_ID, nullable=False),
        sa.Column("disputed_statement_id", BIG_ID, nullable=False),
        sa.Column("target_statement_id", BIG_ID, nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_by_id", BIG_ID, nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=True),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_statement_adjustments_amount_not_zero")),
        sa.CheckConstraint(
            "target_statement_id <> disputed_statement_id",
            name=op.f("ck_statement_adjustments_target_is_another_statement"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["staff_users.id"],
            name=op.f("fk_statement_adjustments_created_by_id_staff_users"),
        ),
        sa.ForeignKeyConstraint(
            ["disputed_statement_id"],
            ["statements.id"],
            name=op.f("fk_statement_adjustments_disputed_statement_id_statements"),
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_statement_adjustments_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["target_statement_id"],
            ["statements.id"],
            name=op.f("fk_statement_adjustments_target_statement_id_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_adjustments")),
        sa.UniqueConstraint(
            "created_by_id",
            "idempotency_key",
            name=op.f("uq_statement_adjustments_created_by_id_idempotency_key"),
        ),
    )
    op.create_index(
        op.f("ix_statement_adjustments_municipality_id"), "statement_adjustments", ["municipality_id"]
    )
    op.create_index(
        op.f("ix_statement_adjustments_disputed_statement_id"),
        "statement_adjustments",
        ["disputed_statement_id"],
    )
    op.create_index(
        op.f("ix_statement_adjustments_target_statement_id"), "statement_adjustments", ["target_statement_id"]
    )


def downgrade() -> None:
    # The adjustment lines already written on statements stay (they are ordinary statement lines); only
    # the record of which statement each one answered goes away.
    op.drop_index(op.f("ix_statement_adjustments_target_statement_id"), table_name="statement_adjustments")
    op.drop_index(op.f("ix_statement_adjustments_disputed_statement_id"), table_name="statement_adjustments")
    op.drop_index(op.f("ix_statement_adjustments_municipality_id"), table_name="statement_adjustments")
    op.drop_table("statement_adjustments")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops a column together with its own column constraints, in place.
        for column in NEW_COLUMNS:
            op.execute(f"ALTER TABLE statements DROP COLUMN {column}")
    else:
        op.drop_constraint(
            op.f("fk_statements_operator_response_by_id_staff_users"), "statements", type_="foreignkey"
        )
        op.drop_constraint(op.f("ck_statements_operator_response"), "statements", type_="check")
        for column in NEW_COLUMNS:
            op.drop_column("statements", column)
