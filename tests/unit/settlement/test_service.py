"""Closing a month against a real database session: runs, statements, idempotency, late rides."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from settlement import service
from settlement.tasks import run_period_now
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.models import (
    AuditEntry,
    RideStatus,
    RunStatus,
    SettlementRun,
    StaffRole,
    Statement,
    StatementLine,
    StatementLineKind,
    StatementStatus,
)
from voucher_api.services.errors import Conflict, NotFound, Refused

SEPTEMBER = date(2026, 9, 1)
OCTOBER = date(2026, 10, 1)
AFTER_SEPTEMBER = jst(2026, 10, 1, 2, 0)  # beat's moment: 02:00 JST on the 1st
AFTER_OCTOBER = jst(2026, 11, 1, 2, 0)


def start(
    session: Session, town: City, period: date = SEPTEMBER, *, now: datetime = AFTER_SEPTEMBER
) -> SettlementRun:
    return service.start_run(
        session, municipality_id=town.mun.id, period=period, trigger="api", requested_by="staff:1", now=now
    )


def close_all(
    session: Session, town: City, period: date = SEPTEMBER, *, now: datetime = AFTER_SEPTEMBER
) -> SettlementRun:
    """What the worker does for one run, all in this session."""
    run = start(session, town, period, now=now)
    plan = service.begin_run(session, run_id=run.id, now=now)
    for operator_id in plan.operator_ids:
        service.close_operator(session, run_id=run.id, operator_id=operator_id, now=now)
    service.finish_run(session, run_id=run.id, now=now)
    session.flush()
    return run


def statement_of(session: Session, town: City, fleet_index: int, period: date) -> Statement:
    found = session.scalar(
        select(Statement)
        .where(Statement.operator_id == town.fleets[fleet_index].operator.id, Statement.period == period)
        .execution_options(populate_existing=True)
    )
    assert found is not None
    return found


def lines_of(session: Session, statement: Statement) -> list[StatementLine]:
    return list(
        session.scalars(
            select(StatementLine)
            .where(StatementLine.statement_id == statement.id)
            .order_by(StatementLine.line_no)
            .execution_options(populate_existing=True)
        )
    )


# --- runs ----------------------------------------------------------------------------------------


def test_run_of_a_month_not_yet_ended_in_japan_is_refused(session: Session) -> None:
    town = city(session)
    # 2026-09-30 23:59 in Japan: September has not ended there yet, though it has in UTC terms nearby.
    with pytest.raises(Refused) as refused:
        start(session, town, now=jst(2026, 9, 30, 23, 59))
    assert refused.value.code == "settlement.period_open"


def test_run_of_a_month_just_ended_in_japan_is_queued(session: Session) -> None:
    town = city(session)
    run = start(session, town, now=jst(2026, 10, 1, 0, 0))
    assert (run.status, run.period) == (RunStatus.QUEUED, SEPTEMBER)


def test_second_run_of_a_period_while_one_is_active_is_refused(session: Session) -> None:
    town = city(session)
    start(session, town)
    with pytest.raises(Conflict) as conflict:
        start(session, town, now=AFTER_SEPTEMBER + timedelta(minutes=5))
    assert conflict.value.code == "settlement.already_running"


def test_run_long_abandoned_gives_way_to_a_new_one(session: Session) -> None:
    town = city(session)
    stuck = start(session, town)
    fresh = start(session, town, now=AFTER_SEPTEMBER + service.STALE_RUN_AFTER + timedelta(minutes=1))
    session.refresh(stuck)
    assert (stuck.status, fresh.status) == (RunStatus.FAILED, RunStatus.QUEUED)


def test_finished_run_lets_the_period_be_run_again(session: Session) -> None:
    town = city(session)
    close_all(session, town)
    again = start(session, town, now=AFTER_SEPTEMBER + timedelta(hours=1))
    assert again.status is RunStatus.QUEUED


def test_run_counts_every_operator_once_and_succeeds(session: Session) -> None:
    town = city(session, operators=3)
    run = close_all(session, town)
    session.refresh(run)
    assert (run.status, run.operators_total, run.operators_done) == (RunStatus.SUCCEEDED, 3, 3)
    assert run.started_at is not None
    assert run.finished_at is not None


def test_progress_never_passes_the_total_when_an_operator_is_closed_twice(session: Session) -> None:
    town = city(session, operators=2)
    run = start(session, town)
    plan = service.begin_run(session, run_id=run.id, now=AFTER_SEPTEMBER)
    for operator_id in plan.operator_ids + plan.operator_ids:  # every task redelivered once
        service.close_operator(session, run_id=run.id, operator_id=operator_id, now=AFTER_SEPTEMBER)
    session.refresh(run)
    assert run.operators_done == 2


def test_redelivered_start_of_a_finished_run_does_nothing(session: Session) -> None:
    town = city(session)
    run = close_all(session, town)
    plan = service.begin_run(session, run_id=run.id, now=AFTER_SEPTEMBER + timedelta(minutes=3))
    session.refresh(run)
    assert (plan.proceed, run.status) == (False, RunStatus.SUCCEEDED)


def test_failed_run_keeps_a_readable_reason_and_frees_the_period(session: Session) -> None:
    town = city(session)
    run = start(session, town)
    service.fail_run(session, run_id=run.id, error="データベースに接続できません", now=AFTER_SEPTEMBER)
    session.refresh(run)
    assert (run.status, run.error) == (RunStatus.FAILED, "データベースに接続できません")
    assert start(session, town).status is RunStatus.QUEUED


def test_unknown_run_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        service.begin_run(session, run_id=987_654, now=AFTER_SEPTEMBER)


def test_operator_of_another_city_is_not_closed_by_this_citys_run(session: Session) -> None:
    town = city(session)
    other = city(session, operators=1, code="062138", name="大石田町")
    run = start(session, town)
    with pytest.raises(NotFound):
        service.close_operator(
            session, run_id=run.id, operator_id=other.fleets[0].operator.id, now=AFTER_SEPTEMBER
        )


def test_beat_queues_last_month_for_every_municipality_once(session: Session) -> None:
    city(session)
    city(session, operators=1, code="062138", name="大石田町")
    runs = service.close_previous_month(session, now=AFTER_SEPTEMBER)
    again = service.close_previous_month(session, now=AFTER_SEPTEMBER + timedelta(minutes=1))
    assert [(run.period, run.trigger) for run in runs] == [(SEPTEMBER, "beat"), (SEPTEMBER, "beat")]
    assert again == []


def test_run_request_is_audited(session: Session) -> None:
    town = city(session)
    run = start(session, town)
    actions = session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity_type == "settlement_run", AuditEntry.entity_id == str(run.id)
        )
    ).all()
    assert "settlement.run_requested" in actions


# --- statements ----------------------------------------------------------------------------------


def test_closing_makes_one_draft_statement_per_operator_numbered_by_city_month_operator(
    session: Session,
) -> None:
    town = city(session, operators=2)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    close_all(session, town)
    statements = session.scalars(select(Statement).where(Statement.municipality_id == town.mun.id)).all()
    assert sorted((s.number, s.status) for s in statements) == [
        ("062120-202609-OP01", StatementStatus.DRAFT),
        ("062120-202609-OP02", StatementStatus.DRAFT),
    ]


def test_statement_lists_completed_rides_of_the_month_with_totals(session: Session) -> None:
    town = city(session, operators=1)
    fleet = town.fleets[0]
    ride(session, town, fleet, boarded_at=jst(2026, 9, 3), fare=1800)  # 50 %: 900
    ride(session, town, fleet, boarded_at=jst(2026, 9, 4), fare=3000)  # capped: 1000
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    assert (statement.ride_count, statement.fare_total, statement.subsidy_total, statement.amount_due) == (
        2,
        4800,
        1900,
        1900,
    )
    assert [line.line_no for line in lines_of(session, statement)] == [1, 2]


def test_voided_rides_are_not_settled(session: Session) -> None:
    town = city(session, operators=1)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800, voided=True)
    close_all(session, town)
    assert statement_of(session, town, 0, SEPTEMBER).ride_count == 0


def test_offline_ride_flagged_for_review_is_an_offline_conflict_line(session: Session) -> None:
    rules = {**f.ELDERLY_RULES, "options": {"offline_loss_borne_by": "operator"}}
    town = city(session, operators=1, rules=rules)
    ride(
        session,
        town,
        town.fleets[0],
        boarded_at=jst(2026, 9, 3),
        fare=1800,
        offline=True,
        review_code="limit.per_day",
    )
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    assert [(line.kind, line.subsidy_amount) for line in lines_of(session, statement)] == [
        (StatementLineKind.OFFLINE_CONFLICT, 0)
    ]
    assert (statement.ride_count, statement.fare_total, statement.amount_due) == (1, 1800, 0)


def test_ride_belongs_to_the_japan_time_month_it_boarded(session: Session) -> None:
    town = city(session, operators=1)
    fleet = town.fleets[0]
    last_of_september = ride(session, town, fleet, boarded_at=jst(2026, 9, 30, 23, 50))
    first_of_october = ride(session, town, fleet, boarded_at=jst(2026, 10, 1, 0, 10))
    close_all(session, town)
    close_all(session, town, OCTOBER, now=AFTER_OCTOBER)
    september = [line.ride_id for line in lines_of(session, statement_of(session, town, 0, SEPTEMBER))]
    october = [line.ride_id for line in lines_of(session, statement_of(session, town, 0, OCTOBER))]
    assert (september, october) == ([last_of_september.id], [first_of_october.id])


def test_rerunning_a_period_never_duplicates_a_statement_or_a_line(session: Session) -> None:
    town = city(session, operators=2)
    for day in (2, 9, 16):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, day))
    close_all(session, town)
    close_all(session, town, now=AFTER_SEPTEMBER + timedelta(hours=2))
    statements = session.scalar(select(func.count()).select_from(Statement)) or 0
    lines = session.scalar(select(func.count()).select_from(StatementLine)) or 0
    assert (statements, lines) == (2, 3)


def test_draft_is_rebuilt_in_place_with_a_fare_entered_since(session: Session) -> None:
    town = city(session, operators=1)
    late = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 29, 9, 0), fare=None)
    close_all(session, town)
    first = statement_of(session, town, 0, SEPTEMBER)
    assert [line.kind for line in lines_of(session, first)] == [StatementLineKind.FARELESS]
    late.status, late.meter_fare, late.subsidy_amount, late.rider_share = RideStatus.COMPLETED, 1600, 800, 800
    session.flush()
    close_all(session, town, now=AFTER_SEPTEMBER + timedelta(hours=1))
    again = statement_of(session, town, 0, SEPTEMBER)
    assert again.id == first.id
    assert [(line.kind, line.subsidy_amount) for line in lines_of(session, again)] == [
        (StatementLineKind.RIDE, 800)
    ]


def test_fareless_ride_past_its_grace_time_is_settled_by_the_programs_cap(session: Session) -> None:
    rules = {**f.ELDERLY_RULES, "options": {"fareless_after_hours": 6, "fareless_rule": "cap"}}
    town = city(session, operators=1, rules=rules)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 12), fare=None)
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    assert [(line.kind, line.subsidy_amount) for line in lines_of(session, statement)] == [
        (StatementLineKind.FARELESS, 1000)
    ]


def test_ride_still_within_its_fare_grace_time_waits_and_is_settled_next_month(session: Session) -> None:
    town = city(session, operators=1)
    waiting = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 30, 22, 0), fare=None)
    close_all(session, town)  # 02:00 on 1 October: only 4 of the 12 hours have passed
    assert statement_of(session, town, 0, SEPTEMBER).ride_count == 0
    waiting.status, waiting.meter_fare, waiting.subsidy_amount, waiting.rider_share = (
        RideStatus.COMPLETED,
        1000,
        500,
        500,
    )
    session.flush()
    close_all(session, town, OCTOBER, now=AFTER_OCTOBER)
    lines = lines_of(session, statement_of(session, town, 0, OCTOBER))
    assert [(line.ride_id, line.kind) for line in lines] == [(waiting.id, StatementLineKind.PRIOR_PERIOD)]


def test_confirmed_statement_is_never_touched_and_a_late_ride_goes_to_next_month(session: Session) -> None:
    town = city(session, operators=1)
    fleet = town.fleets[0]
    ride(session, town, fleet, boarded_at=jst(2026, 9, 5))
    close_all(session, town)
    september = statement_of(session, town, 0, SEPTEMBER)
    finance = f.staff_user(session, town.mun, StaffRole.FINANCE)
    service.confirm_statement(
        session,
        statement_id=september.id,
        municipality_id=town.mun.id,
        staff_id=finance.id,
        actor=f"staff:{finance.id}",
        now=AFTER_SEPTEMBER + timedelta(days=2),
    )
    synced_late = ride(session, town, fleet, boarded_at=jst(2026, 9, 28))  # an offline terminal's sync
    close_all(session, town, now=AFTER_SEPTEMBER + timedelta(days=3))
    close_all(session, town, OCTOBER, now=AFTER_OCTOBER)
    september = statement_of(session, town, 0, SEPTEMBER)
    october_lines = lines_of(session, statement_of(session, town, 0, OCTOBER))
    assert (september.status, september.ride_count) == (StatementStatus.CONFIRMED, 1)
    assert [(line.ride_id, line.kind) for line in october_lines] == [
        (synced_late.id, StatementLineKind.PRIOR_PERIOD)
    ]


def test_rides_of_a_month_never_closed_wait_for_their_own_run(session: Session) -> None:
    town = city(session, operators=1)
    august = ride(session, town, town.fleets[0], boarded_at=jst(2026, 8, 20))
    close_all(session, town)
    assert statement_of(session, town, 0, SEPTEMBER).ride_count == 0
    close_all(session, town, date(2026, 8, 1), now=AFTER_SEPTEMBER + timedelta(hours=1))
    assert [line.ride_id for line in lines_of(session, statement_of(session, town, 0, date(2026, 8, 1)))] == [
        august.id
    ]


def test_adjustment_lines_survive_a_rebuild_and_count_in_the_amount_due(session: Session) -> None:
    town = city(session, operators=1)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 5), fare=2000)
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    session.execute(
        insert(StatementLine).values(
            statement_id=statement.id,
            line_no=99,
            kind=StatementLineKind.ADJUSTMENT,
            meter_fare=0,
            rider_share=0,
            subsidy_amount=-200,
            note="8月分の過大請求を調整",
        )
    )
    close_all(session, town, now=AFTER_SEPTEMBER + timedelta(hours=1))
    statement = statement_of(session, town, 0, SEPTEMBER)
    kinds = [(line.line_no, line.kind) for line in lines_of(session, statement)]
    assert kinds == [(1, StatementLineKind.RIDE), (2, StatementLineKind.ADJUSTMENT)]
    assert (statement.subsidy_total, statement.adjustment_total, statement.amount_due) == (1000, -200, 800)


# --- the statement's life ------------------------------------------------------------------------


def confirmed(session: Session, town: City) -> tuple[Statement, int]:
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    finance = f.staff_user(session, town.mun, StaffRole.FINANCE)
    service.confirm_statement(
        session,
        statement_id=statement.id,
        municipality_id=town.mun.id,
        staff_id=finance.id,
        actor=f"staff:{finance.id}",
        now=AFTER_SEPTEMBER,
    )
    return statement, finance.id


def test_statement_cannot_be_approved_by_the_person_who_confirmed_it(session: Session) -> None:
    town = city(session, operators=1)
    statement, finance_id = confirmed(session, town)
    with pytest.raises(Refused) as refused:
        service.approve_statement(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            staff_id=finance_id,
            actor="x",
            now=AFTER_SEPTEMBER,
        )
    assert refused.value.code == "statement.same_person"


def test_statement_goes_confirmed_approved_paid_with_audit_entries(session: Session) -> None:
    town = city(session, operators=1)
    statement, _ = confirmed(session, town)
    approver = f.staff_user(session, town.mun, StaffRole.FINANCE_APPROVER)
    service.approve_statement(
        session,
        statement_id=statement.id,
        municipality_id=town.mun.id,
        staff_id=approver.id,
        actor=f"staff:{approver.id}",
        now=AFTER_SEPTEMBER,
    )
    clerk = f.staff_user(session, town.mun, StaffRole.FINANCE, username="suitou")
    paid = service.pay_statement(
        session,
        statement_id=statement.id,
        municipality_id=town.mun.id,
        staff_id=clerk.id,
        actor=f"staff:{clerk.id}",
        now=AFTER_SEPTEMBER,
    )
    actions = session.scalars(
        select(AuditEntry.action)
        .where(AuditEntry.entity_type == "statement", AuditEntry.entity_id == str(statement.id))
        .order_by(AuditEntry.id)
    ).all()
    assert paid.status is StatementStatus.PAID
    assert (paid.paid_at, paid.paid_by_id) == (AFTER_SEPTEMBER, clerk.id)
    assert [a for a in actions if a != "statement.generated"] == [
        "statement.confirmed",
        "statement.approved",
        "statement.paid",
    ]


def test_draft_cannot_be_paid(session: Session) -> None:
    town = city(session, operators=1)
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    with pytest.raises(Conflict) as conflict:
        service.pay_statement(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            staff_id=1,
            actor="x",
            now=AFTER_SEPTEMBER,
        )
    assert conflict.value.code == "statement.bad_transition"


def test_draft_cannot_be_confirmed_while_a_run_rebuilds_it(session: Session) -> None:
    town = city(session, operators=1)
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    start(session, town, now=AFTER_SEPTEMBER + timedelta(hours=1))
    with pytest.raises(Conflict) as conflict:
        service.confirm_statement(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            staff_id=1,
            actor="x",
            now=AFTER_SEPTEMBER,
        )
    assert conflict.value.code == "settlement.already_running"


def test_statement_of_another_city_is_not_found(session: Session) -> None:
    town = city(session, operators=1)
    other = city(session, operators=1, code="062138", name="大石田町")
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    with pytest.raises(NotFound):
        service.pay_statement(
            session,
            statement_id=statement.id,
            municipality_id=other.mun.id,
            staff_id=1,
            actor="x",
            now=AFTER_SEPTEMBER,
        )


# --- the synchronous path (CLI, demo seed) -------------------------------------------------------


class StillClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_run_period_now_closes_the_period_without_a_broker(
    session: Session, session_factory: sessionmaker[Session]
) -> None:
    town = city(session, operators=2)
    ride(session, town, town.fleets[1], boarded_at=jst(2026, 9, 8), fare=2400)
    session.commit()
    run = run_period_now(session_factory, "062120", "2026-09", "cli:test", clock=StillClock(AFTER_SEPTEMBER))
    assert (run.status, run.trigger, run.operators_done) == (RunStatus.SUCCEEDED, "cli", 2)
    assert statement_of(session, town, 1, SEPTEMBER).subsidy_total == 1000


def test_run_period_now_for_an_unknown_city_is_not_found(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound):
        run_period_now(session_factory, "999999", "2026-09", "cli:test", clock=StillClock(AFTER_SEPTEMBER))


def test_ride_already_settled_on_a_later_statement_stays_there_when_its_own_month_is_rebuilt(
    session: Session,
) -> None:
    town = city(session, operators=1)
    late = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 30, 22, 0), fare=None)
    close_all(session, town)  # still within its fare grace time: no line yet
    late.status, late.meter_fare, late.subsidy_amount, late.rider_share = RideStatus.COMPLETED, 1000, 500, 500
    session.flush()
    close_all(session, town, OCTOBER, now=AFTER_OCTOBER)  # a prior-period line on October's statement
    close_all(session, town, now=AFTER_OCTOBER + timedelta(hours=1))  # September's draft rebuilt
    september = lines_of(session, statement_of(session, town, 0, SEPTEMBER))
    october = lines_of(session, statement_of(session, town, 0, OCTOBER))
    assert (september, [(line.ride_id, line.kind) for line in october]) == (
        [],
        [(late.id, StatementLineKind.PRIOR_PERIOD)],
    )


def test_lines_are_numbered_in_boarding_order_with_every_ride_once(session: Session) -> None:
    town = city(session, operators=1)
    # Recorded in the opposite order to boarding (as a late offline sync would), so ids do not give it.
    made = [ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 8 - n, 9, 0)) for n in range(8)][::-1]
    close_all(session, town)
    statement = statement_of(session, town, 0, SEPTEMBER)
    lines = lines_of(session, statement)
    assert [(line.line_no, line.ride_id) for line in lines] == [(n + 1, r.id) for n, r in enumerate(made)]
    assert (statement.ride_count, statement.subsidy_total) == (8, 8 * 1000)
