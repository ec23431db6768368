"""Plain factories for settlement tests: a small city with operators, and rides written straight to the table.

Rides are inserted directly (not through `rides.board`) so a test can place them at any instant, in any
state, without cards; their amounts follow the program's own formula so they satisfy the ride checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from settlement.statements import statement_number
from tests import factories as f
from voucher_api.clock import JST
from voucher_api.models import (
    Entitlement,
    Municipality,
    Operator,
    Program,
    Resident,
    Ride,
    RideStatus,
    Statement,
    StatementLine,
    StatementLineKind,
    StatementStatus,
    Vehicle,
)
from voucher_api.services.program_rules import split_fare

_seq = itertools.count(1)


def jst(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    """An instant given in Japan time, as aware UTC (how the database keeps it)."""
    return datetime(year, month, day, hour, minute, tzinfo=JST).astimezone(UTC)


@dataclass
class Fleet:
    operator: Operator
    vehicle: Vehicle
    terminal_id: int


@dataclass
class City:
    mun: Municipality
    program: Program
    resident: Resident
    entitlement: Entitlement
    fleets: list[Fleet] = field(default_factory=list)


def fleet(session: Session, mun: Municipality, code: str) -> Fleet:
    op = f.operator(session, mun, code=code)
    vehicle = f.vehicle(session, op)
    device = f.enrolled_terminal(session, mun, vehicle)
    return Fleet(op, vehicle, device.terminal_id)


def city(
    session: Session,
    *,
    operators: int = 2,
    rules: dict[str, Any] | None = None,
    code: str = "062120",
    name: str = "尾花沢市",
) -> City:
    mun = f.municipality(session, code=code, name=name)
    program = f.program(session, mun, rules=rules)
    person = f.resident(session, mun)
    ent = f.entitlement(session, person, program, balance=10_000 if rules else None)
    made = City(mun, program, person, ent)
    for n in range(1, operators + 1):
        made.fleets.append(fleet(session, mun, f"OP{n:02d}"))
    return made


def ride(
    session: Session,
    town: City,
    where: Fleet,
    *,
    boarded_at: datetime,
    fare: int | None = 2000,
    voided: bool = False,
    units_held: int = 1,
    offline: bool = False,
    review_code: str | None = None,
) -> Ride:
    """A ride boarded at `boarded_at`; completed with `fare`, still boarded when `fare` is None."""
    n = next(_seq)
    values: dict[str, Any] = {}
    status = RideStatus.BOARDED
    if fare is not None:
        split = split_fare(town.program.subsidy, town.entitlement.unit.value, units_held, fare)
        values = {
            "meter_fare": fare,
            "subsidy_amount": split.subsidy,
            "rider_share": split.rider_share,
            "units_used": split.units_used,
            "alighted_at": boarded_at + timedelta(minutes=20),
        }
        status = RideStatus.COMPLETED
    if voided:
        status = RideStatus.VOIDED
        values["voided_at"] = boarded_at + timedelta(minutes=5)
        values["void_reason"] = "誤操作"
    made = Ride(
        municipality_id=town.mun.id,
        entitlement_id=town.entitlement.id,
        program_id=town.program.id,
        resident_id=town.resident.id,
        operator_id=where.operator.id,
        vehicle_id=where.vehicle.id,
        terminal_id=where.terminal_id,
        terminal_sequence=n,
        idempotency_key=f"ride-{n}",
        auth_method="pin",
        offline=offline,
        status=status,
        boarded_at=boarded_at,
        recorded_at=boarded_at,
        units_held=units_held,
        review_code=review_code,
        **values,
    )
    session.add(made)
    session.flush()
    return made


def statement_with(
    session: Session,
    town: City,
    where: Fleet,
    lines: Sequence[StatementLine],
    *,
    period: date = date(2026, 9, 1),
) -> Statement:
    """A draft statement of `where`'s operator holding `lines` (numbered 1, 2, … in the order given),
    its totals added up from them."""
    ride_lines = [line for line in lines if line.kind != StatementLineKind.ADJUSTMENT]
    subsidy = sum(line.subsidy_amount for line in ride_lines)
    adjustment = sum(line.subsidy_amount for line in lines if line.kind == StatementLineKind.ADJUSTMENT)
    statement = Statement(
        municipality_id=town.mun.id,
        operator_id=where.operator.id,
        period=period,
        number=statement_number(town.mun.code, period, where.operator.code),
        status=StatementStatus.DRAFT,
        ride_count=len(ride_lines),
        fare_total=sum(line.meter_fare for line in ride_lines),
        rider_share_total=sum(line.rider_share for line in ride_lines),
        subsidy_total=subsidy,
        adjustment_total=adjustment,
        amount_due=subsidy + adjustment,
        generated_at=jst(2026, 10, 1, 2, 0),
    )
    session.add(statement)
    session.flush()
    for line_no, line in enumerate(lines, start=1):
        line.statement_id = statement.id
        line.line_no = line_no
    session.add_all(lines)
    session.flush()
    return statement
