"""Closing a month: settlement runs, one statement per operator, and the statement's life.

Every function takes the caller's Session and `now`, and only flushes: the task, the request or the CLI
owns the transaction. Closing one operator is one transaction, so a crash mid-run leaves that operator's
statement either as it was or fully rebuilt, never half written; and it is idempotent, so running a
period again never duplicates a statement (unique operator + period) or a line (unique ride).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from settlement import bulk
from settlement.statements import (
    LineRules,
    ProgramTerms,
    Totals,
    format_period,
    period_bounds,
    statement_number,
)
from voucher_api.clock import japan_date, japan_midnight, next_month, previous_month
from voucher_api.models import (
    Municipality,
    Operator,
    Program,
    Resident,
    Ride,
    RunStatus,
    SettlementRun,
    Statement,
    StatementLine,
    StatementLineKind,
    StatementStatus,
)
from voucher_api.services import audit
from voucher_api.services.errors import Conflict, NotFound, Refused

ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
STALE_RUN_AFTER = timedelta(hours=6)
"""A run still queued or running this long after it was requested is taken as abandoned (its worker
died with the broker message lost); a new run of the period may then start. Closing is idempotent, so
a late task of the abandoned run can do no harm."""

TRIGGERS = ("api", "cli", "beat")


# --- runs ----------------------------------------------------------------------------------------


def start_run(
    session: Session,
    *,
    municipality_id: int,
    period: date,
    trigger: str,
    requested_by: str,
    now: datetime,
    stale_after: timedelta = STALE_RUN_AFTER,
) -> SettlementRun:
    """Queue a run that closes `period` (any day of the month) for the municipality.

    Refuses a month that has not ended yet in Japan time (Refused settlement.period_open) and a second
    run while one of the period is queued or running (Conflict settlement.already_running; the partial
    unique index enforces the same under concurrency). A run left active longer than `stale_after` is
    marked failed first. Raises ValueError for an unknown trigger.
    """
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {TRIGGERS}, got {trigger!r}")
    period = period.replace(day=1)
    if now < japan_midnight(next_month(period)):
        raise Refused("settlement.period_open", period=format_period(period))
    active = session.scalars(
        select(SettlementRun).where(
            SettlementRun.municipality_id == municipality_id,
            SettlementRun.period == period,
            SettlementRun.status.in_(ACTIVE_STATUSES),
        )
    ).first()
    if active is not None:
        if now - active.created_at < stale_after:
            raise Conflict("settlement.already_running", run_id=active.id)
        _mark_failed(session, active, "放棄されました(長時間完了しなかったため)", now)
    run = SettlementRun(
        municipality_id=municipality_id,
        period=period,
        status=RunStatus.QUEUED,
        trigger=trigger,
        requested_by=requested_by,
        operators_total=0,
        operators_done=0,
        error="",
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError as exc:
        raise Conflict("settlement.already_running") from exc
    audit.record(
        session,
        at=now,
        actor=requested_by,
        action="settlement.run_requested",
        entity_type="settlement_run",
        entity_id=run.id,
        municipality_id=municipality_id,
        details={"period": format_period(period), "trigger": trigger},
    )
    return run


@dataclass(frozen=True)
class RunPlan:
    """What a run has to do: close these operators, then finish. `proceed` is False for a run that
    already finished or failed (a redelivered task), which must then do nothing."""

    run_id: int
    period: date
    operator_ids: list[int]
    proceed: bool


def running_run_ids(session: Session) -> list[int]:
    """Every run marked running, of every municipality, oldest first."""
    return list(
        session.scalars(
            select(SettlementRun.id)
            .where(SettlementRun.status == RunStatus.RUNNING)
            .order_by(SettlementRun.id)
        )
    )


def begin_run(session: Session, *, run_id: int, now: datetime) -> RunPlan:
    """Mark a queued run running and list the municipality's operators (one statement each).

    A run already running (a redelivered task) is planned again; closing is idempotent. Raises NotFound.
    """
    run = _load_run(session, run_id, lock=True)
    if run.status not in ACTIVE_STATUSES:
        return RunPlan(run.id, run.period, [], proceed=False)
    operator_ids = list(
        session.scalars(
            select(Operator.id).where(Operator.municipality_id == run.municipality_id).order_by(Operator.id)
        )
    )
    if run.status is RunStatus.QUEUED:
        run.started_at = now
        run.operators_done = 0
    run.status = RunStatus.RUNNING
    run.operators_total = len(operator_ids)
    session.flush()
    return RunPlan(run.id, run.period, operator_ids, proceed=True)


def finish_run(session: Session, *, run_id: int, now: datetime) -> SettlementRun:
    """Mark a running run succeeded. A run already finished or failed is returned unchanged.

    On PostgreSQL it also refreshes the planner's statistics of statement_lines: the run has just
    rewritten a month of lines, and the exports finance downloads next must not be planned as if the
    table were still as small as before (a nested loop and an on-disk sort instead of a hash join).
    """
    run = _load_run(session, run_id, lock=True)
    if run.status not in ACTIVE_STATUSES:
        return run
    run.status = RunStatus.SUCCEEDED
    run.finished_at = now
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE statement_lines"))
    audit.record(
        session,
        at=now,
        actor="system:settlement",
        action="settlement.run_succeeded",
        entity_type="settlement_run",
        entity_id=run.id,
        municipality_id=run.municipality_id,
        details={"period": format_period(run.period), "operators": run.operators_total},
    )
    return run


NOT_SENT = "ワーカーに依頼できませんでした"
"""The error of a run whose close could not be handed to the broker (API and CLI alike)."""


def fail_run(session: Session, *, run_id: int, error: str, now: datetime) -> SettlementRun:
    """Mark an active run failed with a reason a person can read; the period may then be run again.

    A run already finished is returned unchanged. Raises NotFound.
    """
    run = _load_run(session, run_id, lock=True)
    if run.status in ACTIVE_STATUSES:
        _mark_failed(session, run, error, now)
    return run


def close_previous_month(
    session: Session, *, now: datetime, requested_by: str = "system:beat"
) -> list[SettlementRun]:
    """Queue a run of the month before `now` (Japan time) for every municipality.

    A municipality whose run of that month is already active is skipped (beat may fire twice).
    """
    period = previous_month(japan_date(now))
    runs: list[SettlementRun] = []
    for municipality_id in session.scalars(select(Municipality.id).order_by(Municipality.id)):
        try:
            runs.append(
                start_run(
                    session,
                    municipality_id=municipality_id,
                    period=period,
                    trigger="beat",
                    requested_by=requested_by,
                    now=now,
                )
            )
        except Conflict:
            continue
    return runs


def _load_run(session: Session, run_id: int, *, lock: bool = False) -> SettlementRun:
    query = select(SettlementRun).where(SettlementRun.id == run_id)
    if lock:
        query = query.with_for_update()
    run = session.scalars(query.execution_options(populate_existing=True)).first()
    if run is None:
        raise NotFound("not_found", run_id=run_id)
    return run


def _mark_failed(session: Session, run: SettlementRun, error: str, now: datetime) -> None:
    run.status = RunStatus.FAILED
    run.error = error[:2000]
    run.finished_at = now
    session.flush()
    audit.record(
        session,
        at=now,
        actor="system:settlement",
        action="settlement.run_failed",
        entity_type="settlement_run",
        entity_id=run.id,
        municipality_id=run.municipality_id,
        details={"period": format_period(run.period), "error": run.error[:200]},
    )


# --- one operator --------------------------------------------------------------------------------


def close_operator(session: Session, *, run_id: int, operator_id: int, now: datetime) -> Statement:
    """Build (or rebuild) one operator's statement for the run's period, and count it on the run.

    A draft statement is rebuilt in place: its ride lines are recomputed, its adjustment lines kept.
    A confirmed, approved or paid statement is never touched; rides found later go to the next period's
    statement as prior-period lines. Raises NotFound for an unknown run or an operator of another city.
    """
    run = _load_run(session, run_id)
    operator = session.get(Operator, operator_id)
    if operator is None or operator.municipality_id != run.municipality_id:
        raise NotFound("not_found", operator_id=operator_id)
    statement = _statement_for(session, run, operator, now)
    if statement.status is StatementStatus.DRAFT:
        _rebuild(session, statement, run, now)
    _count_progress(session, run.id)
    return statement


def empty_draft(
    session: Session,
    *,
    municipality_id: int,
    operator_id: int,
    operator_code: str,
    period: date,
    run_id: int | None,
    now: datetime,
) -> Statement:
    """A new draft statement with nothing on it, numbered by city, month and operator (not yet added)."""
    code = session.scalar(select(Municipality.code).where(Municipality.id == municipality_id))
    assert code is not None  # the operator's and the run's foreign keys guarantee it
    return Statement(
        municipality_id=municipality_id,
        operator_id=operator_id,
        period=period,
        number=statement_number(code, period, operator_code),
        status=StatementStatus.DRAFT,
        run_id=run_id,
        ride_count=0,
        fare_total=0,
        rider_share_total=0,
        subsidy_total=0,
        adjustment_total=0,
        amount_due=0,
        generated_at=now,
    )


def _statement_for(session: Session, run: SettlementRun, operator: Operator, now: datetime) -> Statement:
    """The operator's statement of the period, locked for this transaction; created as a draft if none."""
    query = (
        select(Statement)
        .where(Statement.operator_id == operator.id, Statement.period == run.period)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = session.scalars(query).first()
    if found is not None:
        return found
    statement = empty_draft(
        session,
        municipality_id=run.municipality_id,
        operator_id=operator.id,
        operator_code=operator.code,
        period=run.period,
        run_id=run.id,
        now=now,
    )
    try:
        with session.begin_nested():
            session.add(statement)
            session.flush()
    except IntegrityError:
        # Another worker created it first (a redelivered task racing its original): use theirs.
        found = session.scalars(query).first()
        if found is None:
            raise
        return found
    return statement


def _rebuild(session: Session, statement: Statement, run: SettlementRun, now: datetime) -> None:
    """Rewrite a draft's lines and totals from the rides, inside the database: one INSERT … SELECT
    writes every ride line (settlement.statements.LineRules), numbered in boarding order; the draft's
    adjustment lines are kept and follow them; the totals are summed over the lines written. Memory
    does not grow with the month, and no ride passes through Python.
    """
    session.flush()  # the Core statements below go around the Session's autoflush
    bulk.for_a_month_of_lines(session)
    adjustments = [
        dict(row._mapping)
        # Plain rows, not ORM objects: the lines are deleted and rewritten below with Core statements.
        for row in session.execute(
            select(*(getattr(StatementLine, column) for column in _ADJUSTMENT_COLUMNS))
            .where(
                StatementLine.statement_id == statement.id,
                StatementLine.kind == StatementLineKind.ADJUSTMENT,
            )
            .order_by(StatementLine.line_no)
        )
    ]
    session.execute(
        delete(StatementLine)
        .where(StatementLine.statement_id == statement.id)
        .execution_options(synchronize_session=False)
    )
    rules = LineRules(
        _program_terms(session, statement.municipality_id),
        period=run.period,
        now=now,
        earlier_months=session.scalars(
            select(Statement.period).where(
                Statement.operator_id == statement.operator_id, Statement.period < run.period
            )
        ).all(),
    )
    written = cast(CursorResult[Any], session.execute(_ride_lines_insert(statement, rules)))
    ride_lines = written.rowcount
    if adjustments:
        session.execute(
            insert(StatementLine),
            [
                {**line, "statement_id": statement.id, "line_no": ride_lines + number}
                for number, line in enumerate(adjustments, start=1)
            ],
        )
    totals = _line_totals(session, statement.id)
    waiting_for_fare = session.scalar(
        select(func.count())
        .select_from(Ride)
        .where(Ride.operator_id == statement.operator_id, rules.waiting_for_fare)
    )
    statement.run_id = run.id
    statement.ride_count = totals.ride_count
    statement.fare_total = totals.fare_total
    statement.rider_share_total = totals.rider_share_total
    statement.subsidy_total = totals.subsidy_total
    statement.adjustment_total = totals.adjustment_total
    statement.amount_due = totals.amount_due
    statement.generated_at = now
    session.flush()
    audit.record(
        session,
        at=now,
        actor="system:settlement",
        action="statement.generated",
        entity_type="statement",
        entity_id=statement.id,
        municipality_id=statement.municipality_id,
        details={
            "run_id": run.id,
            "number": statement.number,
            "rides": totals.ride_count,
            "amount_due": totals.amount_due,
            "waiting_for_fare": waiting_for_fare or 0,
        },
    )


_ADJUSTMENT_COLUMNS = (
    "kind",
    "boarded_at",
    "program_id",
    "vehicle_id",
    "district_id",
    "meter_fare",
    "rider_share",
    "subsidy_amount",
    "note",
)
_RIDE_LINE_COLUMNS = ("statement_id", "line_no", "kind", "ride_id", *_ADJUSTMENT_COLUMNS[1:])


def _ride_lines_insert(statement: Statement, rules: LineRules) -> Any:
    """INSERT … SELECT of the statement's ride lines: the operator's rides of the period that are on no
    later statement, and the rides of earlier closed months that are on no statement yet, that settle now.

    An earlier month counts as closed for the operator when it has a statement of that month; rides of
    a month never closed wait for that month's own run. A ride of the period can only be on a later
    month's statement (as a prior-period line): those few are looked up among the later statements'
    lines, never by probing all of statement_lines for each ride.
    """
    period = rules.start, rules.end

    def candidates(*where: Any) -> Select[*tuple[Any, ...]]:
        return (
            select(
                Ride.id.label("ride_id"),
                Ride.boarded_at,
                Ride.program_id,
                Ride.vehicle_id,
                Resident.district_id,
                rules.kind.label("kind"),
                rules.meter_fare.label("meter_fare"),
                rules.rider_share.label("rider_share"),
                rules.subsidy_amount.label("subsidy_amount"),
                rules.note.label("note"),
            )
            .join(Resident, Resident.id == Ride.resident_id)
            .where(Ride.operator_id == statement.operator_id, rules.settles, *where)
        )

    later_statements = select(Statement.id).where(
        Statement.operator_id == statement.operator_id, Statement.period > statement.period
    )
    on_later_statement = select(StatementLine.ride_id).where(
        StatementLine.statement_id.in_(later_statements),
        StatementLine.ride_id.is_not(None),
        StatementLine.boarded_at >= period[0],
        StatementLine.boarded_at < period[1],
    )
    parts = [
        candidates(
            Ride.boarded_at >= period[0], Ride.boarded_at < period[1], Ride.id.not_in(on_later_statement)
        )
    ]
    if rules.earlier_months:
        months = [
            and_(Ride.boarded_at >= start, Ride.boarded_at < end)
            for start, end in map(period_bounds, rules.earlier_months)
        ]
        on_a_statement = exists().where(StatementLine.ride_id == Ride.id)
        parts.append(candidates(or_(*months), ~on_a_statement))
    rides = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("candidates")
    numbered = select(
        literal(statement.id).label("statement_id"),
        func.row_number().over(order_by=(rides.c.boarded_at, rides.c.ride_id)).label("line_no"),
        rides.c.kind,
        rides.c.ride_id,
        rides.c.boarded_at,
        rides.c.program_id,
        rides.c.vehicle_id,
        rides.c.district_id,
        rides.c.meter_fare,
        rides.c.rider_share,
        rides.c.subsidy_amount,
        rides.c.note,
    )
    # preserve_rowcount: SQLAlchemy reports an INSERT's rowcount only when asked.
    return (
        insert(StatementLine)
        .from_select(list(_RIDE_LINE_COLUMNS), numbered)
        .execution_options(preserve_rowcount=True)
    )


def _line_totals(session: Session, statement_id: int) -> Totals:
    """The statement's sums over its lines: rides (every kind with a ride) count, fares and shares;
    adjustments apart."""
    is_adjustment = StatementLine.kind == StatementLineKind.ADJUSTMENT

    def total(column: Any, *, adjustments: bool = False) -> Any:
        chosen = is_adjustment if adjustments else not_(is_adjustment)
        return func.coalesce(func.sum(case((chosen, column), else_=0)), 0)

    row = session.execute(
        select(
            func.count(StatementLine.ride_id),
            total(StatementLine.meter_fare),
            total(StatementLine.rider_share),
            total(StatementLine.subsidy_amount),
            total(StatementLine.subsidy_amount, adjustments=True),
        ).where(StatementLine.statement_id == statement_id)
    ).one()
    return Totals(*(int(value) for value in row))


def _program_terms(session: Session, municipality_id: int) -> dict[int, ProgramTerms]:
    """The terms of the municipality's programs, which its operators' rides are made under."""
    rows = session.execute(
        select(Program.id, Program.subsidy, Program.options).where(Program.municipality_id == municipality_id)
    )
    return {row[0]: ProgramTerms(subsidy=row[1], options=row[2] or {}) for row in rows}


def _count_progress(session: Session, run_id: int) -> None:
    # Capped, so a task redelivered after its commit cannot push the count past the total.
    session.execute(
        update(SettlementRun)
        .where(
            SettlementRun.id == run_id,
            SettlementRun.status == RunStatus.RUNNING,
            SettlementRun.operators_done < SettlementRun.operators_total,
        )
        .values(operators_done=SettlementRun.operators_done + 1)
        .execution_options(synchronize_session=False)
    )


# --- the statement's life ------------------------------------------------------------------------


def confirm_statement(
    session: Session, *, statement_id: int, municipality_id: int, staff_id: int, actor: str, now: datetime
) -> Statement:
    """Finance confirms a draft: from now on it never changes (corrections go to a later period).

    Raises NotFound statement.not_found, Conflict statement.bad_transition (not a draft),
    Refused settlement.period_open (the month has not ended in Japan time: a draft opened early to
    carry an adjustment must wait for its month), Refused statement.not_closed (no run has closed the
    month for this statement yet, so its rides are not on it) and Conflict settlement.already_running
    (a run of the period is rebuilding drafts right now).
    """
    statement = locked_statement(session, statement_id, municipality_id)
    if statement.status is not StatementStatus.DRAFT:
        raise Conflict("statement.bad_transition", current_status=statement.status.value)
    if now < japan_midnight(next_month(statement.period)):
        raise Refused("settlement.period_open", period=format_period(statement.period))
    if statement.run_id is None:
        raise Refused("statement.not_closed", period=format_period(statement.period))
    running = session.scalar(
        select(SettlementRun.id).where(
            SettlementRun.municipality_id == municipality_id,
            SettlementRun.period == statement.period,
            SettlementRun.status.in_(ACTIVE_STATUSES),
        )
    )
    if running is not None:
        raise Conflict("settlement.already_running", run_id=running)
    statement.status = StatementStatus.CONFIRMED
    statement.confirmed_by_id = staff_id
    statement.confirmed_at = now
    session.flush()
    _record_transition(session, statement, actor, "statement.confirmed", now)
    return statement


def approve_statement(
    session: Session, *, statement_id: int, municipality_id: int, staff_id: int, actor: str, now: datetime
) -> Statement:
    """A second person (finance_approver) approves a confirmed statement.

    Raises NotFound statement.not_found, Conflict statement.bad_transition (not confirmed) and
    Refused statement.same_person (the approver confirmed it).
    """
    statement = locked_statement(session, statement_id, municipality_id)
    if statement.status is not StatementStatus.CONFIRMED:
        raise Conflict("statement.bad_transition", current_status=statement.status.value)
    if statement.confirmed_by_id == staff_id:
        raise Refused("statement.same_person")
    statement.status = StatementStatus.APPROVED
    statement.approved_by_id = staff_id
    statement.approved_at = now
    session.flush()
    _record_transition(session, statement, actor, "statement.approved", now)
    return statement


def pay_statement(
    session: Session, *, statement_id: int, municipality_id: int, staff_id: int, actor: str, now: datetime
) -> Statement:
    """Record that an approved statement was paid, and by whom. Raises NotFound and Conflict
    statement.bad_transition."""
    statement = locked_statement(session, statement_id, municipality_id)
    if statement.status is not StatementStatus.APPROVED:
        raise Conflict("statement.bad_transition", current_status=statement.status.value)
    statement.status = StatementStatus.PAID
    statement.paid_at = now
    statement.paid_by_id = staff_id
    session.flush()
    _record_transition(session, statement, actor, "statement.paid", now)
    return statement


def locked_statement(session: Session, statement_id: int, municipality_id: int) -> Statement:
    """The city's statement, locked FOR UPDATE for this transaction; NotFound statement.not_found."""
    statement = session.scalars(
        select(Statement)
        .where(Statement.id == statement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if statement is None or statement.municipality_id != municipality_id:
        raise NotFound("statement.not_found")
    return statement


def _record_transition(
    session: Session, statement: Statement, actor: str, action: str, now: datetime
) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity_type="statement",
        entity_id=statement.id,
        municipality_id=statement.municipality_id,
        details={"number": statement.number, "amount_due": statement.amount_due},
    )


__all__ = [
    "RunPlan",
    "approve_statement",
    "begin_run",
    "close_operator",
    "close_previous_month",
    "confirm_statement",
    "fail_run",
    "finish_run",
    "pay_statement",
    "start_run",
]
