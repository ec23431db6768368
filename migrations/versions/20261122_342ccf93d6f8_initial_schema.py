"""initial schema

Revision ID: 342ccf93d6f8
Revises:
Create Date: 2026-11-22 07:51:16.375286
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import voucher_api.db

revision: str = "342ccf93d6f8"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Reviewed by hand: every table of the first release, constraints named by convention.
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("request_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "response_body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_idempotency_records_scope_key")),
    )
    op.create_table(
        "municipalities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_kana", sa.String(length=100), nullable=False),
        sa.Column("prefecture", sa.String(length=10), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("remitter", sa.JSON(), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(code) = 6", name=op.f("ck_municipalities_code_six_digits")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_municipalities")),
        sa.UniqueConstraint("code", name=op.f("uq_municipalities_code")),
    )
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=40), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_audit_entries_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index("ix_audit_entries_entity", ["entity_type", "entity_id"], unique=False)
        batch_op.create_index("ix_audit_entries_municipality_at", ["municipality_id", "at"], unique=False)

    op.create_table(
        "card_challenges",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("context", sa.String(length=200), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_card_challenges_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_challenges")),
        sa.UniqueConstraint("nonce", name=op.f("uq_card_challenges_nonce")),
    )
    with op.batch_alter_table("card_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_card_challenges_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "districts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("name_kana", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_districts_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_districts")),
        sa.UniqueConstraint("municipality_id", "code", name=op.f("uq_districts_municipality_id_code")),
    )
    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_districts_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "operators",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_kana", sa.String(length=100), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("bank_code", sa.String(length=4), nullable=False),
        sa.Column("branch_code", sa.String(length=3), nullable=False),
        sa.Column("account_type", sa.String(length=10), nullable=False),
        sa.Column("account_number", sa.String(length=7), nullable=False),
        sa.Column("account_holder_kana", sa.String(length=100), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("account_type IN ('ordinary', 'current')", name=op.f("ck_operators_account_type")),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_operators_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("municipality_id", "code", name=op.f("uq_operators_municipality_id_code")),
    )
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operators_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "programs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=100), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column(
            "eligibility",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "subsidy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "grant",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "limits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "options",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("valid_from <= valid_to", name=op.f("ck_programs_valid_period")),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_programs_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint(
            "municipality_id",
            "code",
            "fiscal_year",
            name=op.f("uq_programs_municipality_id_code_fiscal_year"),
        ),
    )
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_programs_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "settlement_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "succeeded",
                "failed",
                name="run_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("operators_total", sa.Integer(), nullable=False),
        sa.Column("operators_done", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_settlement_runs_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_runs")),
    )
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_runs_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index(
            "uq_settlement_runs_active_period",
            ["municipality_id", "period"],
            unique=True,
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        )

    op.create_table(
        "drivers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_drivers_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drivers")),
        sa.UniqueConstraint("operator_id", "code", name=op.f("uq_drivers_operator_id_code")),
    )
    with op.batch_alter_table("drivers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_drivers_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "program_exclusions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "excluded_program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.CheckConstraint("program_id <> excluded_program_id", name=op.f("ck_program_exclusions_not_self")),
        sa.ForeignKeyConstraint(
            ["excluded_program_id"],
            ["programs.id"],
            name=op.f("fk_program_exclusions_excluded_program_id_programs"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_program_exclusions_program_id_programs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_exclusions")),
        sa.UniqueConstraint(
            "program_id",
            "excluded_program_id",
            name=op.f("uq_program_exclusions_program_id_excluded_program_id"),
        ),
    )
    with op.batch_alter_table("program_exclusions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_program_exclusions_program_id"), ["program_id"], unique=False)

    op.create_table(
        "residents",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("registry_id", sa.String(length=32), nullable=False),
        sa.Column("household_id", sa.String(length=32), nullable=False),
        sa.Column("family_name", sa.String(length=50), nullable=False),
        sa.Column("given_name", sa.String(length=50), nullable=False),
        sa.Column("family_name_kana", sa.String(length=100), nullable=False),
        sa.Column("given_name_kana", sa.String(length=100), nullable=False),
        sa.Column("sex", sa.String(length=8), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("district_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("car_licence", sa.String(length=10), nullable=False),
        sa.Column("licence_returned_on", sa.Date(), nullable=True),
        sa.Column(
            "disability_certificates",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "resident",
                "moved_out",
                "deceased",
                name="resident_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("status_since", sa.Date(), nullable=True),
        sa.Column("synced_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"], ["districts.id"], name=op.f("fk_residents_district_id_districts")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_residents_municipality_id_municipalities"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint(
            "municipality_id", "registry_id", name=op.f("uq_residents_municipality_id_registry_id")
        ),
    )
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residents_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "staff_users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_staff_users_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_staff_users_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_users_username")),
    )
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_users_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "vehicles",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("registration", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_vehicles_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vehicles")),
        sa.UniqueConstraint("registration", name=op.f("uq_vehicles_registration")),
    )
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vehicles_operator_id"), ["operator_id"], unique=False)

    op.create_table(
        "applications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "counter",
                "mobile_office",
                "online",
                name="application_channel",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "approved",
                "rejected",
                name="application_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("identity_method", sa.String(length=32), nullable=False),
        sa.Column("mobile_stop", sa.String(length=100), nullable=True),
        sa.Column("decided_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("decided_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["staff_users.id"], name=op.f("fk_applications_decided_by_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_applications_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_applications_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_applications_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_applications_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_applications_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_applications_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "card_bindings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("cert_serial", sa.String(length=64), nullable=False),
        sa.Column("subject_serial", sa.String(length=64), nullable=False),
        sa.Column("not_after", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "signature_certificate",
                "staff_attested",
                "pin_signature",
                name="binding_method",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "replaced",
                "ended",
                name="binding_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("bound_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bound_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["bound_by_id"], ["staff_users.id"], name=op.f("fk_card_bindings_bound_by_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_card_bindings_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_card_bindings_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_bindings")),
    )
    with op.batch_alter_table("card_bindings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_card_bindings_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_card_bindings_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(
            "uq_card_bindings_active_certificate",
            ["cert_fingerprint"],
            unique=True,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.create_index(
            "uq_card_bindings_active_resident",
            ["resident_id"],
            unique=True,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "statements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "draft",
                "confirmed",
                "approved",
                "paid",
                name="statement_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("ride_count", sa.Integer(), nullable=False),
        sa.Column("fare_total", sa.Integer(), nullable=False),
        sa.Column("rider_share_total", sa.Integer(), nullable=False),
        sa.Column("subsidy_total", sa.Integer(), nullable=False),
        sa.Column("adjustment_total", sa.Integer(), nullable=False),
        sa.Column("amount_due", sa.Integer(), nullable=False),
        sa.Column("generated_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("confirmed_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("approved_by_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("approved_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paid_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "amount_due = subsidy_total + adjustment_total", name=op.f("ck_statements_amount_due_adds_up")
        ),
        sa.CheckConstraint(
            "approved_by_id IS NULL OR approved_by_id <> confirmed_by_id",
            name=op.f("ck_statements_four_eyes"),
        ),
        sa.ForeignKeyConstraint(
            ["approved_by_id"], ["staff_users.id"], name=op.f("fk_statements_approved_by_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["confirmed_by_id"], ["staff_users.id"], name=op.f("fk_statements_confirmed_by_id_staff_users")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_statements_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_statements_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["settlement_runs.id"], name=op.f("fk_statements_run_id_settlement_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statements")),
        sa.UniqueConstraint("number", name=op.f("uq_statements_number")),
        sa.UniqueConstraint("operator_id", "period", name=op.f("uq_statements_operator_id_period")),
    )
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statements_municipality_id"), ["municipality_id"], unique=False)

    op.create_table(
        "terminals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "active",
                "revoked",
                name="terminal_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("enrolment_code_hash", sa.String(length=64), nullable=True),
        sa.Column("enrolment_expires_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("public_key", sa.String(length=64), nullable=True),
        sa.Column("enrolled_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_terminals_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("fk_terminals_vehicle_id_vehicles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminals")),
        sa.UniqueConstraint("enrolment_code_hash", name=op.f("uq_terminals_enrolment_code_hash")),
        sa.UniqueConstraint("public_key", name=op.f("uq_terminals_public_key")),
    )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_terminals_operator_id"), ["operator_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_terminals_vehicle_id"), ["vehicle_id"], unique=False)

    op.create_table(
        "entitlements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "unit",
            sa.Enum(
                "ride",
                "ticket",
                "yen",
                name="entitlement_unit",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("balance", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "suspended",
                "ended",
                "expired",
                name="entitlement_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("status_reason", sa.String(length=200), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_entitlements_balance_not_negative")),
        sa.CheckConstraint("granted >= 0", name=op.f("ck_entitlements_granted_not_negative")),
        sa.ForeignKeyConstraint(
            ["application_id"], ["applications.id"], name=op.f("fk_entitlements_application_id_applications")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_entitlements_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_entitlements_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_entitlements_resident_id_residents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entitlements")),
        sa.UniqueConstraint("resident_id", "program_id", name=op.f("uq_entitlements_resident_id_program_id")),
    )
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_entitlements_municipality_id"), ["municipality_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_entitlements_program_id"), ["program_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_entitlements_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "rides",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("municipality_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entitlement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("resident_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("terminal_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("driver_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("binding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("terminal_sequence", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("trip_ref", sa.String(length=64), nullable=True),
        sa.Column("auth_method", sa.String(length=10), nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "boarded",
                "completed",
                "voided",
                name="ride_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("boarded_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("units_held", sa.Integer(), nullable=False),
        sa.Column("units_used", sa.Integer(), nullable=True),
        sa.Column("alighted_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("meter_fare", sa.Integer(), nullable=True),
        sa.Column("subsidy_amount", sa.Integer(), nullable=True),
        sa.Column("rider_share", sa.Integer(), nullable=True),
        sa.Column("voided_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status <> 'completed' OR (meter_fare IS NOT NULL AND subsidy_amount >= 0 AND rider_share >= 0 AND subsidy_amount + rider_share = meter_fare)",
            name=op.f("ck_rides_completed_amounts_add_up"),
        ),
        sa.CheckConstraint("meter_fare IS NULL OR meter_fare >= 0", name=op.f("ck_rides_fare_not_negative")),
        sa.CheckConstraint("units_held > 0", name=op.f("ck_rides_units_held_positive")),
        sa.ForeignKeyConstraint(
            ["binding_id"], ["card_bindings.id"], name=op.f("fk_rides_binding_id_card_bindings")
        ),
        sa.ForeignKeyConstraint(["driver_id"], ["drivers.id"], name=op.f("fk_rides_driver_id_drivers")),
        sa.ForeignKeyConstraint(
            ["entitlement_id"], ["entitlements.id"], name=op.f("fk_rides_entitlement_id_entitlements")
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"], ["municipalities.id"], name=op.f("fk_rides_municipality_id_municipalities")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_rides_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_rides_program_id_programs")),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_rides_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["terminal_id"], ["terminals.id"], name=op.f("fk_rides_terminal_id_terminals")
        ),
        sa.ForeignKeyConstraint(["vehicle_id"], ["vehicles.id"], name=op.f("fk_rides_vehicle_id_vehicles")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rides")),
        sa.UniqueConstraint(
            "terminal_id", "idempotency_key", name=op.f("uq_rides_terminal_id_idempotency_key")
        ),
        sa.UniqueConstraint(
            "terminal_id", "terminal_sequence", name=op.f("uq_rides_terminal_id_terminal_sequence")
        ),
    )
    with op.batch_alter_table("rides", schema=None) as batch_op:
        batch_op.create_index("ix_rides_entitlement_boarded", ["entitlement_id", "boarded_at"], unique=False)
        batch_op.create_index("ix_rides_operator_boarded", ["operator_id", "boarded_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rides_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entitlement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "grant",
                "ride",
                "void",
                "adjustment",
                "expiry",
                name="ledger_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("ride_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("created_at", voucher_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("balance_after >= 0", name=op.f("ck_ledger_entries_balance_after_not_negative")),
        sa.ForeignKeyConstraint(
            ["entitlement_id"],
            ["entitlements.id"],
            name=op.f("fk_ledger_entries_entitlement_id_entitlements"),
        ),
        sa.ForeignKeyConstraint(["ride_id"], ["rides.id"], name=op.f("fk_ledger_entries_ride_id_rides")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_entries_entitlement_id"), ["entitlement_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ledger_entries_ride_id"), ["ride_id"], unique=False)

    op.create_table(
        "statement_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("statement_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "ride",
                "prior_period",
                "offline_conflict",
                "fareless",
                "adjustment",
                name="statement_line_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("ride_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("boarded_at", voucher_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("program_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("vehicle_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("meter_fare", sa.Integer(), nullable=False),
        sa.Column("rider_share", sa.Integer(), nullable=False),
        sa.Column("subsidy_amount", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_statement_lines_program_id_programs")
        ),
        sa.ForeignKeyConstraint(["ride_id"], ["rides.id"], name=op.f("fk_statement_lines_ride_id_rides")),
        sa.ForeignKeyConstraint(
            ["statement_id"], ["statements.id"], name=op.f("fk_statement_lines_statement_id_statements")
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("fk_statement_lines_vehicle_id_vehicles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_lines")),
        sa.UniqueConstraint("ride_id", name=op.f("uq_statement_lines_ride_id")),
        sa.UniqueConstraint("statement_id", "line_no", name=op.f("uq_statement_lines_statement_id_line_no")),
    )
    with op.batch_alter_table("statement_lines", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_statement_lines_statement_id"), ["statement_id"], unique=False)


def downgrade() -> None:
    # Reviewed by hand: every table of the first release, constraints named by convention.
    with op.batch_alter_table("statement_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statement_lines_statement_id"))

    op.drop_table("statement_lines")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_ride_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_entitlement_id"))

    op.drop_table("ledger_entries")
    with op.batch_alter_table("rides", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rides_resident_id"))
        batch_op.drop_index("ix_rides_operator_boarded")
        batch_op.drop_index("ix_rides_entitlement_boarded")

    op.drop_table("rides")
    with op.batch_alter_table("entitlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_entitlements_resident_id"))
        batch_op.drop_index(batch_op.f("ix_entitlements_program_id"))
        batch_op.drop_index(batch_op.f("ix_entitlements_municipality_id"))

    op.drop_table("entitlements")
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_terminals_vehicle_id"))
        batch_op.drop_index(batch_op.f("ix_terminals_operator_id"))

    op.drop_table("terminals")
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_statements_municipality_id"))

    op.drop_table("statements")
    with op.batch_alter_table("card_bindings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_card_bindings_active_resident",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(
            "uq_card_bindings_active_certificate",
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(batch_op.f("ix_card_bindings_resident_id"))
        batch_op.drop_index(batch_op.f("ix_card_bindings_municipality_id"))

    op.drop_table("card_bindings")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_resident_id"))
        batch_op.drop_index(batch_op.f("ix_applications_program_id"))
        batch_op.drop_index(batch_op.f("ix_applications_municipality_id"))

    op.drop_table("applications")
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vehicles_operator_id"))

    op.drop_table("vehicles")
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_users_municipality_id"))

    op.drop_table("staff_users")
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residents_municipality_id"))

    op.drop_table("residents")
    with op.batch_alter_table("program_exclusions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_program_exclusions_program_id"))

    op.drop_table("program_exclusions")
    with op.batch_alter_table("drivers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drivers_operator_id"))

    op.drop_table("drivers")
    with op.batch_alter_table("settlement_runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_settlement_runs_active_period",
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        )
        batch_op.drop_index(batch_op.f("ix_settlement_runs_municipality_id"))

    op.drop_table("settlement_runs")
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_programs_municipality_id"))

    op.drop_table("programs")
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operators_municipality_id"))

    op.drop_table("operators")
    with op.batch_alter_table("districts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_districts_municipality_id"))

    op.drop_table("districts")
    with op.batch_alter_table("card_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_card_challenges_expires_at"))

    op.drop_table("card_challenges")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_municipality_at")
        batch_op.drop_index("ix_audit_entries_entity")

    op.drop_table("audit_entries")
    op.drop_table("municipalities")
    op.drop_table("idempotency_records")
