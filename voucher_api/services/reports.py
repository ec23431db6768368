"""Reports for finance staff: monthly rides and subsidy by operator, district or program; a run's progress.

Every figure comes from one aggregate SQL statement run by the database (SQLite or PostgreSQL), never
from a Python loop over rides, so a year of a city's rides costs one query.

Rules: a ride belongs to the month it boarded, in Japan time; voided rides are not counted; a ride still
on board (no fare yet) counts as a ride with no subsidy yet; the district of a ride is the resident's
registered district (rides of residents without one are reported under the key None).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import String, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import Label
from sqlalchemy.sql.functions import FunctionElement

from voucher_api.clock import japan_midnight, next_month
from voucher_api.models import (
    District,
    Operator,
    Program,
    Resident,
    Ride,
    RideStatus,
    SettlementRun,
    Statement,
    StatementStatus,
)
from voucher_api.services.errors import Refused

MAX_MONTHS = 36
"""The longest range one report covers (three fiscal years); longer asks are refused."""


class ReportAxis(enum.StrEnum):
    OPERATOR = "operator"
    DISTRICT = "district"
    PROGRAM = "program"


@dataclass(frozen=True, slots=True)
class MonthlyRow:
    period: str  # YYYY-MM, Japan time
    key: str | None  # operator code, district code or program code; None: no registered district
    label: str
    rides: int
    subsidy: int  # yen


class japan_month(FunctionElement[str]):  # noqa: N801 - reads like the SQL function it stands for
    """`YYYY-MM` of an aware-UTC timestamp column, in Japan time, computed by the database."""

    type = String()
    inherit_cache = True


@compiles(japan_month, "sqlite")
def _japan_month_sqlite(element: japan_month, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC as naive text; Japan has had no daylight saving time since 1951, so +9 hours is exact.
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)}, '+9 hours')"


@compiles(japan_month, "postgresql")
def _japan_month_postgresql(element: japan_month, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM')"


def parse_month(text: str) -> date:
    """`"2026-09"` → `date(2026, 9, 1)`. Raises ValueError for anything but YYYY-MM."""
    year, _, month = text.strip().partition("-")
    if len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
        raise ValueError(f"a month is written YYYY-MM, got {text!r}")
    return date(int(year), int(month), 1)


def months_between(first: date, last: date) -> int:
    """How many calendar months `first`..`last` covers, both included (1 for the same month)."""
    return (last.year - first.year) * 12 + last.month - first.month + 1


def monthly(
    session: Session, *, municipality_id: int, first: date, last: date, by: ReportAxis
) -> list[MonthlyRow]:
    """Rides and subsidy of each month from `first` to `last` (any day of each; both included), per key.

    Only the municipality's rides are counted. Months or keys without a ride have no row. Rows are ordered
    by month, then key (None last). Raises Refused report.range_reversed when `last` is before `first`
    and Refused report.range_too_long beyond MAX_MONTHS months.
    """
    first, last = first.replace(day=1), last.replace(day=1)
    if last < first:
        raise Refused("report.range_reversed", errors={"to": ["must not be before 'from'"]})
    if months_between(first, last) > MAX_MONTHS:
        raise Refused(
            "report.range_too_long",
            max_months=MAX_MONTHS,
            errors={"to": [f"at most {MAX_MONTHS} months after 'from'"]},
        )
    month = japan_month(Ride.boarded_at).label("period")
    key: Label[str]  # NULL for a resident without a registered district (outer join)
    label: Label[str]
    query = select(month)
    if by is ReportAxis.OPERATOR:
        key, label = Operator.code.label("key"), Operator.name.label("label")
        query = query.join_from(Ride, Operator, Operator.id == Ride.operator_id)
    elif by is ReportAxis.PROGRAM:
        key, label = Program.code.label("key"), Program.name.label("label")
        query = query.join_from(Ride, Program, Program.id == Ride.program_id)
    else:
        key, label = District.code.label("key"), func.coalesce(District.name, literal("")).label("label")
        query = query.join_from(Ride, Resident, Resident.id == Ride.resident_id).outerjoin(
            District, District.id == Resident.district_id
        )
    query = (
        query.add_columns(
            key,
            label,
            func.count(Ride.id).label("rides"),
            func.coalesce(func.sum(Ride.subsidy_amount), 0).label("subsidy"),
        )
        .where(
            Ride.municipality_id == municipality_id,
            Ride.status != RideStatus.VOIDED,
            Ride.boarded_at >= japan_midnight(first),
            Ride.boarded_at < japan_midnight(next_month(last)),
        )
        .group_by(month, key, label)
        .order_by(month, key.is_(None), key)  # no registered district last, on every database
    )
    return [
        MonthlyRow(
            period=row.period,
            key=row.key,
            label=row.label,
            rides=int(row.rides),
            subsidy=int(row.subsidy),
        )
        for row in session.execute(query)
    ]


# --- a settlement run, operator by operator --------------------------------------------------------


class OperatorProgress(enum.StrEnum):
    GENERATED = "generated"  # this run built the operator's statement
    KEPT = "kept"  # the statement was already confirmed (or later): never rebuilt, counted as done
    WAITING = "waiting"  # not reached yet (or never, when the run failed)


@dataclass(frozen=True, slots=True)
class RunOperator:
    operator_id: int
    operator_code: str
    operator_name: str
    state: OperatorProgress
    statement_id: int | None
    statement_status: str | None


def run_progress(session: Session, run: SettlementRun) -> list[RunOperator]:
    """Each operator of the run's city with where the run stands for it, in one query.

    An operator is `generated` when its statement of the period was built by this run, `kept` when that
    statement is past draft (a confirmed statement never changes) and the run has started, else `waiting`.
    """
    query = (
        select(
            Operator.id,
            Operator.code,
            Operator.name,
            Statement.id,
            Statement.run_id,
            Statement.status,
        )
        .outerjoin(Statement, (Statement.operator_id == Operator.id) & (Statement.period == run.period))
        .where(Operator.municipality_id == run.municipality_id)
        .order_by(Operator.code)
    )
    started = run.started_at is not None
    progress: list[RunOperator] = []
    for operator_id, code, name, statement_id, statement_run, status in session.execute(query):
        if statement_id is not None and statement_run == run.id:
            state = OperatorProgress.GENERATED
        elif statement_id is not None and status is not StatementStatus.DRAFT and started:
            state = OperatorProgress.KEPT
        else:
            state = OperatorProgress.WAITING
        progress.append(
            RunOperator(
                operator_id=operator_id,
                operator_code=code,
                operator_name=name,
                state=state,
                statement_id=statement_id,
                statement_status=status.value if status is not None else None,
            )
        )
    return progress
