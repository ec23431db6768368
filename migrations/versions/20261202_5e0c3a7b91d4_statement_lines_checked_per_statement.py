"""statement lines: references checked once per statement, not once per row; each line keeps its district

Revision ID: 5e0c3a7b91d4
Revises: d15b07e5a1c0
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e0c3a7b91d4"
down_revision: str | None = "d15b07e5a1c0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Reviewed by hand.
#
# Why: a month's close writes one line per ride (a million in a big month) with a single INSERT … SELECT.
# PostgreSQL checks a foreign key with one locking look-up per row (SELECT … FOR KEY SHARE of the ride,
# which also rewrites the ride's tuple); the four of statement_lines cost ≈ 7 µs each per line, six
# times the insert itself. So on PostgreSQL the same rule is checked once per statement instead: an
# AFTER INSERT / AFTER UPDATE trigger with a transition table refuses (foreign_key_violation) a
# statement whose new lines name a statement, ride, program, vehicle or district that does not exist.
# What a foreign key also guarantees, that the row referred to is not deleted later, holds because
# rides and statements can never be deleted (a trigger refuses it: they are records of money), and
# programs, vehicles and districts stay referenced by the rides (and residents) the lines copy them from.
# SQLite checks the same per row with a BEFORE trigger (cheap there). The redundant index on
# statement_id goes too: the unique (statement_id, line_no) serves every look-up by statement.
#
# The surrogate id goes: a line is (statement_id, line_no), now the primary key, and the ride it pays
# stays unique. One B-tree fewer to fill per line (≈ 2 µs each).
#
# ix_statement_lines_to_look_at: the lines that are not ordinary rides, which a big statement's PDF
# lists; partial, so the ordinary lines (nearly all) cost it nothing.
#
# statements' sums of yen become BIGINT on PostgreSQL: a month of 10 million rides gives one operator
# ¥9.4 billion of fares, past INTEGER's ¥2.1 billion (SQLite's INTEGER is 64-bit already).
#
# district_id: the district of the resident at the close, kept on the line like the program and the
# vehicle, so the statement says what it said when it was made and its exports need not join the rides.
LINE_REFERENCES = (
    ("statement_id", "statements"),
    ("ride_id", "rides"),
    ("program_id", "programs"),
    ("vehicle_id", "vehicles"),
    ("district_id", "districts"),
)
OLD_FOREIGN_KEYS = LINE_REFERENCES[:4]
RIDE_UNLESS_ADJUSTMENT = "(kind = 'adjustment') = (ride_id IS NULL)"
RIDE_CHECK_NAME = "ck_statement_lines_ride_unless_adjustment"
TO_LOOK_AT = "ix_statement_lines_to_look_at"
NOT_A_RIDE_LINE = sa.text("kind <> 'ride'")
NEVER_DELETED = ("rides", "statements")
YEN_TOTALS = ("fare_total", "rider_share_total", "subsidy_total", "adjustment_total", "amount_due")
# Lines written before this revision get the district their export showed until now: the resident's.
BACKFILL_DISTRICT = (
    "UPDATE statement_lines SET district_id = (SELECT residents.district_id FROM rides"
    " JOIN residents ON residents.id = rides.resident_id WHERE rides.id = statement_lines.ride_id)"
    " WHERE ride_id IS NOT NULL"
)

# The SQL below is built from the constant table and column names above, never from input. One pass
# over the new lines, one hash join per table referred to.
PG_CHECK_FUNCTION = (
    "CREATE FUNCTION statement_lines_references_exist() RETURNS trigger LANGUAGE plpgsql AS $$\n"  # noqa: S608
    "DECLARE missing text;\n"
    "BEGIN\n"
    "  SELECT CASE "
    + " ".join(
        f"WHEN n.{column} IS NOT NULL AND t{index}.id IS NULL THEN '{column}'"
        for index, (column, _table) in enumerate(LINE_REFERENCES)
    )
    + " END INTO missing FROM new_lines n "
    + " ".join(
        f"LEFT JOIN {table} t{index} ON t{index}.id = n.{column}"
        for index, (column, table) in enumerate(LINE_REFERENCES)
    )
    + " WHERE "
    + " OR ".join(
        f"(n.{column} IS NOT NULL AND t{index}.id IS NULL)"
        for index, (column, _table) in enumerate(LINE_REFERENCES)
    )
    + " LIMIT 1;\n"
    "  IF missing IS NOT NULL THEN\n"
    "    RAISE foreign_key_violation USING MESSAGE = 'statement_lines.' || missing || ' names a row that does not exist';\n"
    "  END IF;\n"
    "  RETURN NULL;\n"
    "END $$"
)
PG_REFUSE_DELETE_FUNCTION = (
    "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  RAISE restrict_violation USING MESSAGE = TG_TABLE_NAME || ' are records of money and are never deleted';\n"
    "END $$"
)


def _sqlite_missing(prefix: str) -> str:
    return " OR ".join(
        f"({prefix}.{column} IS NOT NULL"  # noqa: S608
        f" AND NOT EXISTS (SELECT 1 FROM {table} WHERE id = {prefix}.{column}))"
        for column, table in LINE_REFERENCES
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # Nothing refers to statement_lines, so SQLite may rebuild it without its foreign keys.
        with op.batch_alter_table("statement_lines", recreate="always") as batch:
            for column, table in OLD_FOREIGN_KEYS:
                batch.drop_constraint(f"fk_statement_lines_{column}_{table}", type_="foreignkey")
            batch.drop_index("ix_statement_lines_statement_id")
            batch.drop_constraint("uq_statement_lines_statement_id_line_no", type_="unique")
            batch.drop_column("id")
            batch.create_primary_key("pk_statement_lines", ["statement_id", "line_no"])
            batch.add_column(sa.Column("district_id", BIG_ID, nullable=True))
            batch.create_check_constraint(op.f(RIDE_CHECK_NAME), RIDE_UNLESS_ADJUSTMENT)
        op.execute(BACKFILL_DISTRICT)
        op.create_index(
            TO_LOOK_AT, "statement_lines", ["statement_id", "line_no"], sqlite_where=NOT_A_RIDE_LINE
        )
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER statement_lines_references_exist_{event.lower()}"
                f" BEFORE {event} ON statement_lines WHEN {_sqlite_missing('NEW')}"
                " BEGIN SELECT RAISE(ABORT, 'a statement line names a missing row'); END"
            )
        for table in NEVER_DELETED:
            op.execute(
                f"CREATE TRIGGER {table}_never_deleted BEFORE DELETE ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{table} are records of money and are never deleted'); END"
            )
        return
    for column in YEN_TOTALS:
        op.alter_column("statements", column, type_=sa.BigInteger(), existing_nullable=False)
    for column, table in OLD_FOREIGN_KEYS:
        op.drop_constraint(f"fk_statement_lines_{column}_{table}", "statement_lines", type_="foreignkey")
    op.drop_index("ix_statement_lines_statement_id", table_name="statement_lines")
    op.drop_constraint("pk_statement_lines", "statement_lines", type_="primary")
    op.drop_column("statement_lines", "id")
    op.drop_constraint("uq_statement_lines_statement_id_line_no", "statement_lines", type_="unique")
    op.create_primary_key("pk_statement_lines", "statement_lines", ["statement_id", "line_no"])
    op.add_column("statement_lines", sa.Column("district_id", BIG_ID, nullable=True))
    op.execute(BACKFILL_DISTRICT)
    op.create_check_constraint(op.f(RIDE_CHECK_NAME), "statement_lines", RIDE_UNLESS_ADJUSTMENT)
    op.create_index(
        TO_LOOK_AT, "statement_lines", ["statement_id", "line_no"], postgresql_where=NOT_A_RIDE_LINE
    )
    op.execute(PG_CHECK_FUNCTION)
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER statement_lines_references_exist_{event.lower()} AFTER {event} ON statement_lines"
            " REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT"
            " EXECUTE FUNCTION statement_lines_references_exist()"
        )
    op.execute(PG_REFUSE_DELETE_FUNCTION)
    for table in NEVER_DELETED:
        op.execute(
            f"CREATE TRIGGER {table}_never_deleted BEFORE DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in NEVER_DELETED:
        op.execute(f"DROP TRIGGER {table}_never_deleted" + ("" if dialect == "sqlite" else f" ON {table}"))
    for event in ("insert", "update"):
        op.execute(
            f"DROP TRIGGER statement_lines_references_exist_{event}"
            + ("" if dialect == "sqlite" else " ON statement_lines")
        )
    op.drop_index(TO_LOOK_AT, table_name="statement_lines")
    if dialect == "sqlite":
        with op.batch_alter_table("statement_lines", recreate="always") as batch:
            batch.drop_constraint(RIDE_CHECK_NAME, type_="check")
            batch.drop_column("district_id")
            batch.drop_constraint("pk_statement_lines", type_="primary")
            batch.add_column(sa.Column("id", sa.Integer(), primary_key=True))
            batch.create_unique_constraint(
                "uq_statement_lines_statement_id_line_no", ["statement_id", "line_no"]
            )
            batch.create_index("ix_statement_lines_statement_id", ["statement_id"])
            for column, table in OLD_FOREIGN_KEYS:
                batch.create_foreign_key(f"fk_statement_lines_{column}_{table}", table, [column], ["id"])
        return
    for column in YEN_TOTALS:
        op.alter_column("statements", column, type_=sa.Integer(), existing_nullable=False)
    op.execute("DROP FUNCTION refuse_delete()")
    op.execute("DROP FUNCTION statement_lines_references_exist()")
    op.drop_constraint(RIDE_CHECK_NAME, "statement_lines", type_="check")
    op.drop_column("statement_lines", "district_id")
    op.drop_constraint("pk_statement_lines", "statement_lines", type_="primary")
    op.execute("ALTER TABLE statement_lines ADD COLUMN id BIGSERIAL")
    op.create_primary_key("pk_statement_lines", "statement_lines", ["id"])
    op.create_unique_constraint(
        "uq_statement_lines_statement_id_line_no", "statement_lines", ["statement_id", "line_no"]
    )
    op.create_index("ix_statement_lines_statement_id", "statement_lines", ["statement_id"])
    for column, table in OLD_FOREIGN_KEYS:
        op.create_foreign_key(
            f"fk_statement_lines_{column}_{table}", "statement_lines", table, [column], ["id"]
        )
