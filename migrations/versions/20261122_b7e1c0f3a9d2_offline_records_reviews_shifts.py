"""offline terminal records, ride review codes, driver shifts

Revision ID: b7e1c0f3a9d2
Revises: 4863446107c8
Create Date: 2026-11-22 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import voucher_api.db

revision: str = "b7e1c0f3a9d2"
down_revision: str | None = "4863446107c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # Reviewed by hand. rides.review_code is nullable (no backfill needed); the units_held CHECK is
    # relaxed only for rides under review, which hold nothing because the balance was already used.
    with op.batch_alter_table("rides") as batch:
        batch.add_column(sa.Column("review_code", sa.String(length=64), nullable=True))
        batch.drop_constraint(op.f("ck_rides_units_held_positive"), type_="check")
        batch.create_check_constraint("units_held_positive", "units_held > 0 OR review_code IS NOT NULL")
    op.create_table(
        "terminal_records",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("terminal_id", BIG_ID, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("recorded_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payload", JSON_DOC, nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "accepted",
                "conflict",
                "rejected",
                name="record_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("ride_id", BIG_ID, nullable=True),
        sa.ForeignKeyConstraint(["ride_id"], ["rides.id"], name=op.f("fk_terminal_records_ride_id_rides")),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_terminal_records_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminal_records")),
        sa.UniqueConstraint(
            "terminal_id", "idempotency_key", name="uq_terminal_records_terminal_id_idempotency_key"
        ),
        sa.UniqueConstraint("terminal_id", "sequence", name="uq_terminal_records_terminal_id_sequence"),
    )
    op.create_index("ix_terminal_records_status", "terminal_records", ["status"], unique=False)
    op.create_table(
        "driver_shifts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("terminal_id", BIG_ID, nullable=False),
        sa.Column("driver_id", BIG_ID, nullable=False),
        sa.Column("started_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["driver_id"], ["drivers.id"], name=op.f("fk_driver_shifts_driver_id_drivers")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_driver_shifts_terminal_id_terminals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_driver_shifts")),
    )
    op.create_index(op.f("ix_driver_shifts_driver_id"), "driver_shifts", ["driver_id"], unique=False)
    op.create_index(op.f("ix_driver_shifts_terminal_id"), "driver_shifts", ["terminal_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_driver_shifts_terminal_id"), table_name="driver_shifts")
    op.drop_index(op.f("ix_driver_shifts_driver_id"), table_name="driver_shifts")
    op.drop_table("driver_shifts")
    op.drop_index("ix_terminal_records_status", table_name="terminal_records")
    op.drop_table("terminal_records")
    with op.batch_alter_table("rides") as batch:
        batch.drop_constraint(op.f("ck_rides_units_held_positive"), type_="check")
        batch.create_check_constraint("units_held_positive", "units_held > 0")
        batch.drop_column("review_code")
