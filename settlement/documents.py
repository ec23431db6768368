"""Map statements in the database onto the exports' plain data (settlement.exports.documents).

The exports never see the database; this module is the one place that reads statements, operators,
rides and staff names and turns them into StatementDoc / StatementLineDoc / Transfer / Remitter.

Memory never grows with the size of a month: lines are read from a server-side cursor and written out
as they come (`write_statement_csv`, `statement_csv_chunks`, `write_month_csv`, `month_csv_chunks`).
The PDF (`statement_pdf_doc`) lists every line of a statement of up to PDF_LINE_LIMIT lines; a larger
statement is printed as its totals, its breakdowns by kind, program and day, and the lines a person has
to look at (every line that is not an ordinary ride: prior-period, flagged offline, fare-less and
adjustment lines), up to PDF_ATTENTION_LIMIT of them; its full detail is the statement's CSV. A PDF of
200,000 lines would be 6,000 pages nobody reads, and would take minutes to lay out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, BinaryIO

from sqlalchemy import Integer, Select, String, and_, case, cast, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from settlement import bulk
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
from voucher_api.clock import japan_date
from voucher_api.models import (
    District,
    Municipality,
    Operator,
    Program,
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
PDF_ATTENTION_LIMIT = 300
"""The most lines to look at that a large statement's PDF lists (about ten pages); the breakdown by kind
counts all of them and the CSV holds every one."""


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


def write_month_csv(session: Session, *, municipality_id: int, period: date, stream: BinaryIO) -> int:
    """Write the month's line CSV (every line of every statement) to `stream`; returns how many lines."""
    _write(stream, month_csv_chunks(session, municipality_id=municipality_id, period=period))
    return _line_count(
        session, StatementLine.statement_id.in_(_month_statements(municipality_id, period).order_by(None))
    )


def month_csv_chunks(session: Session, *, municipality_id: int, period: date) -> Iterator[bytes]:
    """The month's line CSV as chunks of bytes, for a streamed download: the header, then each
    statement's lines (operators in code order), one row per line with the operator on each row."""
    statement_ids = session.scalars(_month_statements(municipality_id, period)).all()
    yield csv_export.BOM + csv_export.csv_rows([csv_export.LINE_HEADER])
    for statement_id in statement_ids:
        yield from line_csv_rows(session, statement_id)


def _month_statements(municipality_id: int, period: date) -> Select[int]:
    """The ids of the city's statements of the month, operators in code order."""
    return (
        select(Statement.id)
        .join(Operator, Operator.id == Statement.operator_id)
        .where(Statement.municipality_id == municipality_id, Statement.period == period.replace(day=1))
        .order_by(Operator.code)
    )


def write_statement_csv(session: Session, statement_id: int, stream: BinaryIO) -> int:
    """Write one statement's CSV (lines, then totals) to `stream`; returns how many lines.

    Raises NotFound statement.not_found.
    """
    _write(stream, statement_csv_chunks(session, statement_id))
    return _line_count(session, StatementLine.statement_id == statement_id)


def statement_csv_chunks(session: Session, statement_id: int) -> Iterator[bytes]:
    """One statement's CSV as chunks of bytes, for a streamed download: its lines, then a blank row and
    its totals. Raises NotFound at once."""
    doc = statement_doc(session, statement_id, with_lines=False)
    return _statement_csv_chunks(session, statement_id, doc)


def _statement_csv_chunks(session: Session, statement_id: int, doc: StatementDoc) -> Iterator[bytes]:
    yield csv_export.BOM + csv_export.csv_rows([csv_export.LINE_HEADER])
    yield from line_csv_rows(session, statement_id)
    yield csv_export.csv_rows([[], *csv_export.totals_rows(doc)])


def _write(stream: BinaryIO, chunks: Iterator[bytes]) -> None:
    for chunk in chunks:
        stream.write(chunk)


def _line_count(session: Session, *where: Any) -> int:
    return session.scalar(select(func.count()).select_from(StatementLine).where(*where)) or 0


class jst_minute(FunctionElement[str]):  # noqa: N801 -- a SQL function, named like one
    """`YYYY/MM/DD HH:MM` in Japan time, as the CSV shows a moment (NULL stays NULL)."""

    type = String()
    name = "jst_minute"
    inherit_cache = True


class jst_day(FunctionElement[int]):  # noqa: N801 -- a SQL function, named like one
    """The day of the month in Japan time (cheaper than formatting the whole moment)."""

    type = Integer()
    name = "jst_day"
    inherit_cache = True


# What each dialect computes: PostgreSQL in the Asia/Tokyo zone; SQLite, which keeps UTCDateTime as
# naive UTC text, by adding 9 hours (Japan has kept +9 without summer time since 1951).
_JAPAN_TIME_SQL = {
    ("postgresql", "jst_minute"): "to_char(({}) AT TIME ZONE 'Asia/Tokyo', 'YYYY/MM/DD HH24:MI')",
    ("postgresql", "jst_day"): "CAST(EXTRACT(DAY FROM ({}) AT TIME ZONE 'Asia/Tokyo') AS INTEGER)",
    ("sqlite", "jst_minute"): "strftime('%Y/%m/%d %H:%M', {}, '+9 hours')",
    ("sqlite", "jst_day"): "CAST(strftime('%d', {}, '+9 hours') AS INTEGER)",
}


@compiles(jst_minute, "postgresql")
@compiles(jst_minute, "sqlite")
@compiles(jst_day, "postgresql")
@compiles(jst_day, "sqlite")
def _japan_time(element: jst_minute | jst_day, compiler: Any, **kw: Any) -> str:
    moment = compiler.process(element.clauses, **kw)
    return _JAPAN_TIME_SQL[(compiler.dialect.name, element.name)].format(moment)


def _cell(text_value: Any) -> Any:
    """A text cell as the CSV writes it: guarded against Excel formulas (csv_export.FORMULA_TRIGGERS
    get a leading apostrophe), line breaks as LF (each becomes CRLF with the rows' ends, `_crlf`), and
    empty as NULL, which the database's CSV writes as nothing at all."""
    text_value = func.replace(text_value, "\r\n", "\n")
    guarded = case(
        (func.substr(text_value, 1, 1).in_(csv_export.FORMULA_TRIGGERS), literal("'") + text_value),
        else_=text_value,
    )
    return func.nullif(guarded, "")


def _line_csv_query(session: Session, statement_id: int) -> Select[*tuple[Any, ...]]:
    """One statement's line rows, every cell formatted as csv_export.LINE_HEADER says, in line order.

    What is the same on every row (the statement's own cells) and the few names lines refer to (the
    city's programs and districts, its operators' vehicles) are formatted here once, in Python, and
    handed to the database as values: per line it only looks up a name by id and formats the time,
    the note and the numbers.
    """
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise NotFound("statement.not_found")
    operator = session.get(Operator, statement.operator_id)
    municipality = session.get(Municipality, statement.municipality_id)
    assert operator is not None  # the foreign keys guarantee both
    assert municipality is not None
    operators = select(Operator.id).where(Operator.municipality_id == municipality.id)
    return (
        select(
            *(
                literal(csv_export.cell_text(value) or None, String)
                for value in (
                    csv_export.period_text(statement.period),
                    statement.number,
                    municipality.code,
                    operator.code,
                    operator.name,
                )
            ),
            StatementLine.line_no,
            case(
                {StatementLineKind(kind): label for kind, label in LINE_KIND_LABELS.items()},
                value=StatementLine.kind,
            ),
            jst_minute(StatementLine.boarded_at),
            cast(StatementLine.ride_id, String),
            _named(
                session,
                StatementLine.program_id,
                Program.id,
                Program.name,
                Program.municipality_id == municipality.id,
            ),
            _named(
                session,
                StatementLine.district_id,
                District.id,
                District.name,
                District.municipality_id == municipality.id,
            ),
            _named(
                session,
                StatementLine.vehicle_id,
                Vehicle.id,
                Vehicle.registration,
                Vehicle.operator_id.in_(operators),
            ),
            StatementLine.meter_fare,
            StatementLine.rider_share,
            StatementLine.subsidy_amount,
            _cell(StatementLine.note),
        )
        .where(StatementLine.statement_id == statement_id)
        .order_by(StatementLine.line_no)
    )


def _named(session: Session, reference: Any, key: Any, name: Any, among: Any) -> Any:
    """The cell naming what `reference` refers to: the names `among` are read and formatted once and
    looked up by id on every row; one outside them (never expected) is read from its table."""
    names = {
        row[0]: csv_export.cell_text(row[1]) or None
        for row in session.execute(select(key, name).where(among))
    }
    fallback = _cell(select(name).where(key == reference).scalar_subquery())
    if not names:
        return fallback
    return case(names, value=reference, else_=fallback)


def line_csv_rows(session: Session, statement_id: int) -> Iterator[bytes]:
    """One statement's line rows as CSV bytes (CRLF line ends), formatted by the database: on PostgreSQL
    streamed by COPY, elsewhere read a batch at a time and written by Python's csv module. Either way no
    line passes through Python one object at a time, and memory never grows with the statement."""
    query = _line_csv_query(session, statement_id)
    bulk.for_a_month_of_lines(session)
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        # render_postcompile: the IN of formula triggers is an expanding parameter, which COPY cannot take.
        compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        raw = connection.connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY ({compiled}) TO STDOUT (FORMAT csv)", compiled.params) as copy,
        ):
            for chunk in copy:
                yield _crlf(bytes(chunk))
        return
    for rows in connection.execute(query.execution_options(yield_per=LINE_FETCH_SIZE)).partitions():
        yield _crlf(csv_export.csv_rows(rows))


def _crlf(data: bytes) -> bytes:
    """Every line end CRLF, as Excel and RFC 4180 want: COPY ends rows with LF, Python's csv with CRLF,
    and a line break inside a quoted note (LF, see `_cell`) becomes CRLF too, so both databases write
    the same bytes."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def statement_pdf_doc(
    session: Session,
    statement_id: int,
    *,
    line_limit: int = PDF_LINE_LIMIT,
    attention_limit: int = PDF_ATTENTION_LIMIT,
) -> StatementDoc:
    """The statement as the PDF prints it: totals, breakdowns by kind and program, and its lines, all of
    them up to `line_limit`; beyond that, the breakdown by day and only the lines that are not ordinary
    rides (at most `attention_limit`), with `line_count` saying how many lines the statement has.

    Raises NotFound statement.not_found.
    """
    doc = statement_doc(session, statement_id, with_lines=False)
    count, by_kind, by_program, by_day = _breakdowns(session, statement_id, doc.period)
    doc = replace(doc, kind_summary=by_kind, program_summary=by_program)
    if count <= line_limit:
        return replace(doc, lines=list(line_docs(session, statement_id)))
    exceptions = list(
        line_docs(session, statement_id, not_kind=StatementLineKind.RIDE, limit=attention_limit)
    )
    return replace(doc, lines=exceptions, line_count=count, day_summary=by_day)


@dataclass
class _Sums:
    lines: int = 0
    meter_fare: int = 0
    rider_share: int = 0
    subsidy_amount: int = 0

    def add(self, lines: int, meter_fare: int, rider_share: int, subsidy_amount: int) -> None:
        self.lines += lines
        self.meter_fare += meter_fare
        self.rider_share += rider_share
        self.subsidy_amount += subsidy_amount

    def row(self, label: str) -> SummaryRow:
        return SummaryRow(label, self.lines, self.meter_fare, self.rider_share, self.subsidy_amount)


def _breakdowns(
    session: Session, statement_id: int, period: date
) -> tuple[int, list[SummaryRow], list[SummaryRow], list[SummaryRow]]:
    """The statement's line count and its breakdowns by kind, by program (adjustments apart) and by
    day of boarding in Japan time (ride lines of the period only; prior-period lines are in the kind
    breakdown), from one pass over its lines grouped by all three at once."""
    start, end = period_bounds(period)
    of_the_period = and_(
        StatementLine.ride_id.is_not(None), StatementLine.boarded_at >= start, StatementLine.boarded_at < end
    )
    rows = session.execute(
        select(
            StatementLine.kind.label("kind"),
            StatementLine.program_id.label("program"),
            case((of_the_period, jst_day(StatementLine.boarded_at)), else_=0).label("day"),
            func.count(),
            func.coalesce(func.sum(StatementLine.meter_fare), 0),
            func.coalesce(func.sum(StatementLine.rider_share), 0),
            func.coalesce(func.sum(StatementLine.subsidy_amount), 0),
        )
        .where(StatementLine.statement_id == statement_id)
        .group_by("kind", "program", "day")
    ).all()
    program_ids = {row[1] for row in rows if row[1] is not None}
    names = dict(session.execute(select(Program.id, Program.name).where(Program.id.in_(program_ids))).all())
    count = 0
    kinds: dict[str, _Sums] = {}
    programs: dict[str, _Sums] = {}
    days: dict[int, _Sums] = {}
    for kind, program_id, day, *sums in rows:
        amounts = tuple(int(value) for value in sums)
        count += amounts[0]
        kind = StatementLineKind(kind).value
        kinds.setdefault(kind, _Sums()).add(*amounts)
        if kind != StatementLineKind.ADJUSTMENT.value:
            programs.setdefault(str(names.get(program_id, "")), _Sums()).add(*amounts)
        if day:
            days.setdefault(int(day), _Sums()).add(*amounts)
    return (
        count,
        [kinds[kind].row(LINE_KIND_LABELS[kind]) for kind in LINE_KIND_LABELS if kind in kinds],
        [programs[name].row(name) for name in sorted(programs)],
        [days[day].row(f"{period.month}月{day}日") for day in sorted(days)],
    )


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


@dataclass(frozen=True)
class SignOffNames:
    """Who signed a statement off, by display name (None: not yet, or not recorded)."""

    confirmed_by: str | None
    approved_by: str | None
    paid_by: str | None


def sign_off_names(session: Session, statement: Statement) -> SignOffNames:
    """The display names of the staff who confirmed, approved and paid the statement, in one query."""
    ids = (statement.confirmed_by_id, statement.approved_by_id, statement.paid_by_id)
    wanted = {staff_id for staff_id in ids if staff_id is not None}
    names: dict[int, str] = (
        dict(
            session.execute(
                select(StaffUser.id, StaffUser.display_name).where(StaffUser.id.in_(wanted))
            ).all()
        )
        if wanted
        else {}
    )
    confirmed, approved, paid = (names.get(staff_id) if staff_id is not None else None for staff_id in ids)
    return SignOffNames(confirmed_by=confirmed, approved_by=approved, paid_by=paid)


def _header(session: Session, statement: Statement) -> StatementDoc:
    operator = session.get(Operator, statement.operator_id)
    municipality = session.get(Municipality, statement.municipality_id)
    # The foreign keys guarantee both.
    assert operator is not None
    assert municipality is not None
    issued = statement.confirmed_at or statement.generated_at
    signed = sign_off_names(session, statement)
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
        prepared_by=signed.confirmed_by,
        approved_by=signed.approved_by,
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
        .outerjoin(District, District.id == StatementLine.district_id)
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
