"""What the database itself guarantees about statements and their lines, without per-row foreign keys
(migration 5e0c3a7b91d4): every line names rows that exist, a ride is on one statement at most, a ride
line has a ride, and rides and statements are never deleted. PostgreSQL when TEST_DATABASE_URL is set,
else SQLite; both refuse the same things."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.unit.settlement.factories import City, city, jst, ride
from tests.unit.settlement.test_service import SEPTEMBER, close_all, lines_of, statement_of
from voucher_api.models import Ride, Statement, StatementLine

MISSING = 987_654_321


@pytest.fixture
def closed(session: Session) -> tuple[City, Statement]:
    town = city(session, operators=1)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10))
    close_all(session, town)
    return town, statement_of(session, town, 0, SEPTEMBER)


def line(statement: Statement, made: Ride | None, **values: Any) -> dict[str, Any]:
    return {
        "statement_id": statement.id,
        "line_no": 99,
        "kind": "ride" if made is not None else "adjustment",
        "ride_id": made.id if made is not None else None,
        "boarded_at": made.boarded_at if made is not None else None,
        "program_id": made.program_id if made is not None else None,
        "vehicle_id": made.vehicle_id if made is not None else None,
        "meter_fare": 0,
        "rider_share": 0,
        "subsidy_amount": 100,
        "note": "",
        **values,
    }


def refused(session: Session, statement: Any) -> None:
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(statement)


def test_the_close_writes_lines_the_checks_accept(session: Session, closed: tuple[City, Statement]) -> None:
    town, statement = closed
    [only] = lines_of(session, statement)
    assert (only.ride_id, only.district_id) == (
        session.scalar(select(Ride.id)),
        town.resident.district_id,
    )


def test_the_line_the_refusals_below_start_from_is_accepted(
    session: Session, closed: tuple[City, Statement]
) -> None:
    # The control: each refusal below changes one column of exactly this line.
    town, statement = closed
    late = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 11))
    with session.begin_nested():
        session.execute(insert(StatementLine).values(**line(statement, late)))
    assert late.id in {kept.ride_id for kept in lines_of(session, statement)}


@pytest.mark.parametrize("column", ["ride_id", "statement_id", "program_id", "vehicle_id", "district_id"])
def test_a_line_naming_a_row_that_does_not_exist_is_refused(
    session: Session, closed: tuple[City, Statement], column: str
) -> None:
    town, statement = closed
    late = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 11))
    refused(session, insert(StatementLine).values(**line(statement, late, **{column: MISSING})))


def test_a_line_changed_to_name_a_missing_ride_is_refused(
    session: Session, closed: tuple[City, Statement]
) -> None:
    _town, statement = closed
    refused(
        session,
        update(StatementLine)
        .where(StatementLine.statement_id == statement.id)
        .values(ride_id=MISSING)
        .execution_options(synchronize_session=False),
    )


def test_a_ride_is_on_one_statement_at_most(session: Session, closed: tuple[City, Statement]) -> None:
    _town, statement = closed
    settled = session.get(Ride, session.scalar(select(Ride.id)))
    refused(session, insert(StatementLine).values(**line(statement, settled)))


def test_a_ride_line_without_a_ride_is_refused(session: Session, closed: tuple[City, Statement]) -> None:
    _town, statement = closed
    refused(session, insert(StatementLine).values(**line(statement, None, kind="ride")))


def test_an_adjustment_line_without_a_ride_is_accepted(
    session: Session, closed: tuple[City, Statement]
) -> None:
    _town, statement = closed
    session.execute(insert(StatementLine).values(**line(statement, None)))
    assert [item.kind.value for item in lines_of(session, statement)] == ["ride", "adjustment"]


@pytest.mark.parametrize("model", [Ride, Statement], ids=["rides", "statements"])
def test_rides_and_statements_are_never_deleted(
    session: Session, closed: tuple[City, Statement], model: type[Ride] | type[Statement]
) -> None:
    refused(session, delete(model).execution_options(synchronize_session=False))
    assert session.scalar(select(model.id)) is not None


def test_a_statement_holds_sums_past_two_billion_yen(
    session: Session, closed: tuple[City, Statement]
) -> None:
    # A month of 10 million rides gives a big operator ¥9.4 billion of fares: past a 32-bit integer.
    _town, statement = closed
    fares, shares, subsidies = 9_385_939_500, 5_346_871_450, 4_039_068_050
    statement.fare_total, statement.rider_share_total = fares, shares
    statement.subsidy_total = statement.amount_due = subsidies
    session.flush()
    session.expire(statement)
    assert (statement.fare_total, statement.rider_share_total, statement.amount_due) == (
        fares,
        shares,
        subsidies,
    )
