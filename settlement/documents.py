"""Map statements in the database onto the exports' plain data (settlement.exports.documents).

The exports never see the database; this module is the one place that reads statements, operators,
rides and staff names and turns them into StatementDoc / StatementLineDoc / Transfer / Remitter.

Memory never grows with the size of a month: lines are read from a server-side cursor and written out
as they come (`write_statement_csv`, `statement_csv_chunks`, `write_month_csv`, `month_csv_chunks`).
The PDF (`statement_pdf_doc`) lists every line of a statement of up to PDF_LINE_LIMIT lines; a larger
statement is printed as its totals, its breakdowns by kind, program and day, and the lines a person has
to look at (every line that is not an ordinary ride: prior-period, flagged offline, fare-less and
adjustment lines), up to PDF_LINE_LIMIT of them; its full detail is the statement's CSV. A PDF of
200,000 lines would be 6,000 pages nobody reads, and would take minutes to lay out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, BinaryIO

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from settlement.exports import csv_export
from settlement.exports.documents import (
    LINE_KIND_LABELS,
    BankAccount,
    Remitter,
    StatementDoc,
    StatementLineDoc,
    SummaryRow,
    Transfer,
)
from settlement.statements import period_bounds
from voucher_api.clock import japan_date, japan_midnight
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
    StatementLineKind,
    StatementStatus,
    Vehicle,
)
from voucher_api.services.errors import NotFound

LINE_FETCH_SIZE = 5_000
PDF_LINE_LIMIT = 2_000
"""The most lines a statement PDF lists; a larger statement's PDF lists only the lines to look at."""


def statement_doc(session: Session, statement_id: int, *, with_lines: bool = True) -> StatementDoc:
    """The statement as the CSV and PDF exports print it. Raises NotFound statement.not_found."""
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound("statement.not_found")
    doc = _header(session, statement)
    if not with_lines:
        return doc
    return _with_lines(doc, list(line_docs(session, statement.id)))


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
        for line in line_docs(session, doc_statement):
            yield doc, line


def write_month_csv(session: Session, *, municipality_id: int, period: date, stream: BinaryIO) -> int:
    """Write the month's line CSV (every line of every statement) to `stream`; returns how many lines."""
    return csv_export.write_month_csv(
        stream, month_rows(session, municipality_id=municipality_id, period=period)
    )


def month_csv_chunks(session: Session, *, municipality_id: int, period: date) -> Iterator[bytes]:
    """The month's line CSV as chunks of bytes, for a streamed download."""
    return csv_export.iter_line_csv(month_rows(session, municipality_id=municipality_id, period=period))


def write_statement_csv(session: Session, statement_id: int, stream: BinaryIO) -> int:
    """Write one statement's CSV (lines, then totals) to `stream`; returns how many lines.

    Raises NotFound statement.not_found.
    """
    doc = statement_doc(session, statement_id, with_lines=False)
    return csv_export.write_statement_csv(stream, doc, line_docs(session, statement_id))


def statement_csv_chunks(session: Session, statement_id: int) -> Iterator[bytes]:
    """One statement's CSV as chunks of bytes, for a streamed download. Raises NotFound at once."""
    doc = statement_doc(session, statement_id, with_lines=False)
    return csv_export.iter_statement_csv(doc, line_docs(session, statement_id))


def statement_pdf_doc(
    session: Session, statement_id: int, *, line_limit: int = PDF_LINE_LIMIT
) -> StatementDoc:
    """The statement as the PDF prints it: totals, breakdowns by kind and program, and its lines, all of
    them up to `line_limit`; beyond that, the breakdown by day and only the lines that are not ordinary
    rides (at most `line_limit`), with `line_count` saying how many lines the statement has.

    Raises NotFound statement.not_found.
    """
    doc = statement_doc(session, statement_id, with_lines=False)
    count = (
        session.scalar(
            select(func.count()).select_from(StatementLine).where(StatementLine.statement_id == statement_id)
        )
        or 0
    )
    doc = replace(
        doc,
        kind_summary=_kind_summary(session, statement_id),
        program_summary=_program_summary(session, statement_id),
    )
    if count <= line_limit:
        return replace(doc, lines=list(line_docs(session, statement_id)))
    exceptions = list(line_docs(session, statement_id, not_kind=StatementLineKind.RIDE, limit=line_limit))
    return replace(
        doc, lines=exceptions, line_count=count, day_summary=_day_summary(session, statement_id, doc.period)
    )


def _summary_columns() -> tuple[Any, ...]:
    return (
        func.count(),
        func.coalesce(func.sum(StatementLine.meter_fare), 0),
        func.coalesce(func.sum(StatementLine.rider_share), 0),
        func.coalesce(func.sum(StatementLine.subsidy_amount), 0),
    )


def _kind_summary(session: Session, statement_id: int) -> list[SummaryRow]:
    rows = session.execute(
        select(StatementLine.kind, *_summary_columns())
        .where(StatementLine.statement_id == statement_id)
        .group_by(StatementLine.kind)
    ).all()
    by_kind = {StatementLineKind(row[0]).value: row for row in rows}
    return [
        SummaryRow(LINE_KIND_LABELS[kind], int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for kind in LINE_KIND_LABELS
        if (row := by_kind.get(kind)) is not None
    ]


def _program_summary(session: Session, statement_id: int) -> list[SummaryRow]:
    rows = session.execute(
        select(func.coalesce(Program.name, ""), *_summary_columns())
        .select_from(StatementLine)
        .outerjoin(Program, Program.id == StatementLine.program_id)
        .where(
            StatementLine.statement_id == statement_id,
            StatementLine.kind != StatementLineKind.ADJUSTMENT,
        )
        .group_by(Program.name)
        .order_by(Program.name)
    ).all()
    return [SummaryRow(str(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows]


def _day_summary(session: Session, statement_id: int, period: date) -> list[SummaryRow]:
    """Ride lines of the period by day of boarding in Japan time (prior-period lines are in the kind
    breakdown). The day is found by comparing with each Japan midnight, which any database can do."""
    start, end = period_bounds(period)
    days: list[date] = []
    day = period.replace(day=1)
    while japan_midnight(day) < end:
        days.append(day)
        day += timedelta(days=1)
    day_of = case(
        *((StatementLine.boarded_at < japan_midnight(d + timedelta(days=1)), d.day) for d in days),
        else_=0,
    )
    rows = session.execute(
        select(day_of.label("day"), *_summary_columns())
        .where(
            StatementLine.statement_id == statement_id,
            StatementLine.ride_id.is_not(None),
            StatementLine.boarded_at >= start,
            StatementLine.boarded_at < end,
        )
        .group_by(day_of)
        .order_by(day_of)
    ).all()
    return [
        SummaryRow(f"{period.month}月{int(row[0])}日", int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for row in rows
    ]


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
        operator_response=statement.operator_response.value,
    )


def _with_lines(doc: StatementDoc, lines: list[StatementLineDoc]) -> StatementDoc:
    return replace(doc, lines=lines)


def line_docs(
    session: Session,
    statement_id: int,
    *,
    not_kind: StatementLineKind | None = None,
    limit: int | None = None,
) -> Iterator[StatementLineDoc]:
    """The statement's lines in order, read from a server-side cursor LINE_FETCH_SIZE at a time
    (optionally leaving out one kind, at most `limit` of them)."""
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
    if not_kind is not None:
        query = query.where(StatementLine.kind != not_kind)
    if limit is not None:
        query = query.limit(limit)
    # Core rows, a batch at a time: the ORM's row processing would cost more than writing the line.
    for rows in session.connection().execute(query).partitions():
        yield from map(_line_doc, rows)


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
