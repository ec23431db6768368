"""Map statements in the database onto the exports' plain data (settlement.exports.documents).

The exports never see the database; this module is the one place that reads statements, operators,
rides and staff names and turns them into StatementDoc / StatementLineDoc / Transfer / Remitter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from settlement.exports.documents import (
    BankAccount,
    Remitter,
    StatementDoc,
    StatementLineDoc,
    Transfer,
)
from voucher_api.clock import japan_date
from voucher_api.models import (
    District,
    Municipality,
    Operator,
    Program,
    Resident,
    Ride,
    StaffUser,
    Statement,
    StatementLine,
    StatementStatus,
    Vehicle,
)
from voucher_api.services.errors import NotFound

LINE_FETCH_SIZE = 2_000


def statement_doc(session: Session, statement_id: int, *, with_lines: bool = True) -> StatementDoc:
    """The statement as the CSV and PDF exports print it. Raises NotFound statement.not_found."""
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound("statement.not_found")
    doc = _header(session, statement)
    if not with_lines:
        return doc
    return _with_lines(doc, list(_line_docs(session, statement.id)))


def period_docs(session: Session, *, municipality_id: int, period: date) -> list[StatementDoc]:
    """Every statement of the month (header fields only, no lines), ordered by operator code."""
    statements = session.scalars(
        select(Statement)
        .join(Operator, Operator.id == Statement.operator_id)
        .where(Statement.municipality_id == municipality_id, Statement.period == period.replace(day=1))
        .order_by(Operator.code)
    ).all()
    return [_header(session, statement) for statement in statements]


def month_rows(
    session: Session, *, municipality_id: int, period: date
) -> Iterator[tuple[StatementDoc, StatementLineDoc]]:
    """Every line of every statement of the month, paired with its statement, streamed from the database.

    Feed it to `csv_export.write_month_csv`; a month of 100k rides never sits in memory as a list.
    """
    for doc_statement in session.scalars(
        select(Statement.id)
        .join(Operator, Operator.id == Statement.operator_id)
        .where(Statement.municipality_id == municipality_id, Statement.period == period.replace(day=1))
        .order_by(Operator.code)
    ).all():
        doc = statement_doc(session, doc_statement, with_lines=False)
        for line in _line_docs(session, doc_statement):
            yield doc, line


def remitter_of(session: Session, municipality_id: int) -> Remitter:
    """The city as payer of the transfer file, from its `remitter` settings.

    Raises NotFound not_found when the municipality is unknown and ValueError when a field is missing.
    """
    municipality = session.get(Municipality, municipality_id)
    if municipality is None:
        raise NotFound("not_found")
    data = municipality.remitter or {}
    fields = (
        "requester_code",
        "requester_name_kana",
        "bank_code",
        "branch_code",
        "account_type",
        "account_number",
    )
    missing = [name for name in fields if not data.get(name)]
    if missing:
        raise ValueError(f"市の振込依頼人の設定が足りません: {', '.join(missing)}")
    return Remitter(**{name: str(data[name]) for name in fields})


def transfers_for(session: Session, *, municipality_id: int, period: date) -> list[Transfer]:
    """One transfer per approved statement of the month with something to pay, ordered by operator.

    The customer code is the statement id, so the bank's result file points back at the statement.
    """
    rows = session.execute(
        select(Statement.id, Statement.amount_due, Operator)
        .join(Operator, Operator.id == Statement.operator_id)
        .where(
            Statement.municipality_id == municipality_id,
            Statement.period == period.replace(day=1),
            Statement.status == StatementStatus.APPROVED,
            Statement.amount_due > 0,
        )
        .order_by(Operator.code)
    ).all()
    return [
        Transfer(payee=_bank(operator), amount=amount, customer_code=str(statement_id)[-10:])
        for statement_id, amount, operator in rows
    ]


def _bank(operator: Operator) -> BankAccount:
    return BankAccount(
        bank_code=operator.bank_code,
        branch_code=operator.branch_code,
        account_type=operator.account_type,
        account_number=operator.account_number,
        holder_kana=operator.account_holder_kana,
    )


def _staff_name(session: Session, staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    return session.scalar(select(StaffUser.display_name).where(StaffUser.id == staff_id))


def _header(session: Session, statement: Statement) -> StatementDoc:
    operator = session.get(Operator, statement.operator_id)
    municipality = session.get(Municipality, statement.municipality_id)
    # The foreign keys guarantee both.
    assert operator is not None
    assert municipality is not None
    issued = statement.confirmed_at or statement.generated_at
    return StatementDoc(
        statement_number=statement.number,
        municipality_code=municipality.code,
        municipality_name=municipality.name,
        operator_code=operator.code,
        operator_name=operator.name,
        period=statement.period,
        status=statement.status.value,
        issued_on=japan_date(issued),
        lines=(),
        ride_count=statement.ride_count,
        fare_total=statement.fare_total,
        rider_share_total=statement.rider_share_total,
        subsidy_total=statement.subsidy_total,
        adjustment_total=statement.adjustment_total,
        amount_due=statement.amount_due,
        bank=_bank(operator),
        prepared_by=_staff_name(session, statement.confirmed_by_id),
        approved_by=_staff_name(session, statement.approved_by_id),
        contact=municipality.contact,
    )


def _with_lines(doc: StatementDoc, lines: list[StatementLineDoc]) -> StatementDoc:
    return replace(doc, lines=lines)


def _line_docs(session: Session, statement_id: int) -> Iterator[StatementLineDoc]:
    ride = aliased(Ride)
    query = (
        select(
            StatementLine.line_no,
            StatementLine.kind,
            StatementLine.boarded_at,
            StatementLine.ride_id,
            Program.name,
            District.name,
            Vehicle.registration,
            StatementLine.meter_fare,
            StatementLine.rider_share,
            StatementLine.subsidy_amount,
            StatementLine.note,
        )
        .outerjoin(Program, Program.id == StatementLine.program_id)
        .outerjoin(Vehicle, Vehicle.id == StatementLine.vehicle_id)
        .outerjoin(ride, ride.id == StatementLine.ride_id)
        .outerjoin(Resident, Resident.id == ride.resident_id)
        .outerjoin(District, District.id == Resident.district_id)
        .where(StatementLine.statement_id == statement_id)
        .order_by(StatementLine.line_no)
        .execution_options(yield_per=LINE_FETCH_SIZE)
    )
    for row in session.execute(query):
        yield _line_doc(row)


def _line_doc(row: Any) -> StatementLineDoc:
    (line_no, kind, boarded_at, ride_id, program, district, vehicle, fare, share, subsidy, note) = row
    return StatementLineDoc(
        line_no=line_no,
        kind=str(kind.value if hasattr(kind, "value") else kind),
        boarded_at=boarded_at,
        ride_ref="" if ride_id is None else str(ride_id),
        program_name=str(program or ""),
        district_name=str(district or ""),
        vehicle=str(vehicle or ""),
        meter_fare=fare,
        rider_share=share,
        subsidy_amount=subsidy,
        note=note or "",
    )
