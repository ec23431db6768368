"""mobile office stops and queue tickets

Revision ID: 4863446107c8
Revises: 342ccf93d6f8
Create Date: 2026-11-22 08:13:15.809836
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voucher_api.db

revision: str = "4863446107c8"
down_revision: str | None = "342ccf93d6f8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reviewed by hand: three new tables, nothing existing changes; constraints named by convention.
    op.create_table(
        "mobile_rounds",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_mobile_rounds_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_rounds")),
    )
    with op.batch_alter_table("mobile_rounds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mobile_rounds_municipality_id"), ["municipality_id"], unique=False
        )

    op.create_table(
        "mobile_stops",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("round_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("place", sa.String(length=100), nullable=False),
        sa.Column("district_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("starts_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "planned",
                "open",
                "closed",
                name="stop_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("opened_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("starts_at < ends_at", name=op.f("ck_mobile_stops_window_in_order")),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_mobile_stops_district_id_districts")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_mobile_stops_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["mobile_rounds.id"], name=op.f("fk_mobile_stops_round_id_mobile_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mobile_stops")),
        sa.UniqueConstraint("municipality_id", "code", name=op.f("uq_mobile_stops_municipality_id_code")),
        sa.UniqueConstraint("round_id", "position", name=op.f("uq_mobile_stops_round_id_position")),
    )
    with op.batch_alter_table("mobile_stops", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mobile_stops_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_mobile_stops_round_id"), ["round_id"], unique=False)

    op.create_table(
        "queue_tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("stop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "waiting",
                "called",
                "done",
                "skipped",
                name="ticket_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("issued_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("called_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("called_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint("number > 0", name=op.f("ck_queue_tickets_number_positive")),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_queue_tickets_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["stop_id"], ["mobile_stops.id"], name=op.f("fk_queue_tickets_stop_id_mobile_stops")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_tickets")),
        sa.UniqueConstraint("stop_id", "number", name=op.f("uq_queue_tickets_stop_id_number")),
    )
    with op.batch_alter_table("queue_tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queue_tickets_stop_id"), ["stop_id"], unique=False)


def downgrade() -> None:
    # Drops in reverse order of the foreign keys.
    with op.batch_alter_table("queue_tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_tickets_stop_id"))

    op.drop_table("queue_tickets")
    with op.batch_alter_table("mobile_stops", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mobile_stops_round_id"))
        batch_op.drop_index(batch_op.f("ix_mobile_stops_municipality_id"))

    op.drop_table("mobile_stops")
    with op.batch_alter_table("mobile_rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mobile_rounds_municipality_id"))

    op.drop_table("mobile_rounds")
