"""Migration d15b07e5a1c0 (operator responses, statement adjustments) on a database that already has
statements with lines, upgraded, downgraded and upgraded again. PostgreSQL when TEST_DATABASE_URL is set,
else a SQLite file (with foreign keys on, as the application runs it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests import factories as f
from tests.conftest import create_postgres_database, drop_postgres_database, postgres_admin_url
from voucher_api import migrate
from voucher_api.db import UTCDateTime, make_engine

BEFORE, THIS = "b7e1c0f3a9d2", "d15b07e5a1c0"
GENERATED = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)

STATEMENTS = sa.table(
    "statements",
    sa.column("id", sa.Integer()),
    sa.column("municipality_id", sa.Integer()),
    sa.column("operator_id", sa.Integer()),
    sa.column("period", sa.Date()),
    sa.column("number", sa.String()),
    sa.column("status", sa.String()),
    sa.column("ride_count", sa.Integer()),
    sa.column("fare_total", sa.Integer()),
    sa.column("rider_share_total", sa.Integer()),
    sa.column("subsidy_total", sa.Integer()),
    sa.column("adjustment_total", sa.Integer()),
    sa.column("amount_due", sa.Integer()),
    sa.column("generated_at", UTCDateTime()),
)
LINES = sa.table(
    "statement_lines",
    sa.column("statement_id", sa.Integer()),
    sa.column("line_no", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("meter_fare", sa.Integer()),
    sa.column("rider_share", sa.Integer()),
    sa.column("subsidy_amount", sa.Integer()),
    sa.column("note", sa.String()),
)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    admin = postgres_admin_url()
    if admin:
        url = create_postgres_database(admin, "voucher_migration")
        yield url
        drop_postgres_database(admin, url)
    else:
        yield f"sqlite:///{tmp_path / 'migration.sqlite3'}"


def statement_columns(engine: sa.Engine) -> set[str]:
    return {column["name"] for column in sa.inspect(engine).get_columns("statements")}


def test_dispute_migration_upgrades_a_database_with_statements_and_downgrades_again(database: str) -> None:
    migrate.upgrade(database, revision=BEFORE)
    engine = make_engine(database)
    with Session(engine) as session:
        mun = f.municipality(session)
        operator = f.operator(session, mun, code="OP01")
        statement_id = session.execute(
            sa.insert(STATEMENTS)
            .values(
                municipality_id=mun.id,
                operator_id=operator.id,
                period=date(2026, 9, 1),
                number="062120-202609-OP01",
                status="confirmed",
                ride_count=1,
                fare_total=1800,
                rider_share_total=900,
                subsidy_total=900,
                adjustment_total=0,
                amount_due=900,
                generated_at=GENERATED,
            )
            .returning(STATEMENTS.c.id)
        ).scalar_one()
        session.execute(
            sa.insert(LINES).values(
                statement_id=statement_id,
                line_no=1,
                kind="adjustment",  # a line with no ride, so no rides need seeding
                meter_fare=1800,
                rider_share=900,
                subsidy_amount=900,
                note="",
            )
        )
        session.commit()
    engine.dispose()

    migrate.upgrade(database, revision=THIS)
    engine = make_engine(database)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT operator_response, dispute_reason, operator_response_by_id FROM statements")
        ).one()
        assert tuple(row) == ("none", "", None)
        with pytest.raises(IntegrityError):  # the enum's CHECK came with the column
            conn.execute(sa.text("UPDATE statements SET operator_response = 'maybe'"))
        conn.rollback()
        with pytest.raises(IntegrityError):  # and so did the foreign key to staff_users
            conn.execute(sa.text("UPDATE statements SET operator_response_by_id = 999999"))
        conn.rollback()
    assert "statement_adjustments" in sa.inspect(engine).get_table_names()
    engine.dispose()

    migrate.downgrade(database, revision=BEFORE)
    engine = make_engine(database)
    assert "statement_adjustments" not in sa.inspect(engine).get_table_names()
    assert not statement_columns(engine) & {"operator_response", "dispute_reason", "dispute_answered_at"}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM statement_lines")).scalar_one() == 1
    engine.dispose()

    migrate.upgrade(database)
    engine = make_engine(database)
    assert {"operator_response", "operator_response_by_id", "operator_response_at"} <= statement_columns(
        engine
    )
    engine.dispose()
