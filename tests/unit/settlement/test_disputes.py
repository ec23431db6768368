"""An operator acknowledges or disputes a confirmed statement; finance answers with adjustments (§8)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from settlement import disputes, documents, service
from settlement.exports import pdf
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.models import (
    AuditEntry,
    OperatorResponse,
    StaffRole,
    StaffUser,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementStatus,
)
from voucher_api.services.errors import Conflict, NotFound, Refused

SEPTEMBER = date(2026, 9, 1)
OCTOBER = date(2026, 10, 1)
NOVEMBER = date(2026, 11, 1)
AFTER_SEPTEMBER = jst(2026, 10, 1, 2, 0)
AFTER_OCTOBER = jst(2026, 11, 1, 2, 0)
LATER = jst(2026, 10, 20, 9, 0)

_usernames = itertools.count(1)


def staff_member(session: Session, town: City, *roles: StaffRole, operator_id: int | None = None) -> int:
    """A staff account straight into the table (these tests never sign in, so no password hashing)."""
    user = StaffUser(
        municipality_id=town.mun.id,
        username=f"dispute-staff-{next(_usernames)}",
        display_name="精算 花子",
        password_hash="!unused",
        roles=[role.value for role in roles],
        operator_id=operator_id,
        active=True,
        created_at=AFTER_SEPTEMBER,
    )
    session.add(user)
    session.flush()
    return user.id


def close(session: Session, town: City, period: date, now: datetime) -> None:
    """What the worker does for one run of `period`, all in this session."""
    run = service.start_run(
        session, municipality_id=town.mun.id, period=period, trigger="api", requested_by="staff:1", now=now
    )
    plan = service.begin_run(session, run_id=run.id, now=now)
    for operator_id in plan.operator_ids:
        service.close_operator(session, run_id=run.id, operator_id=operator_id, now=now)
    service.finish_run(session, run_id=run.id, now=now)
    session.flush()


def statement_of(session: Session, town: City, period: date, fleet_index: int = 0) -> Statement | None:
    return session.scalar(
        select(Statement)
        .where(Statement.operator_id == town.fleets[fleet_index].operator.id, Statement.period == period)
        .execution_options(populate_existing=True)
    )


def reload(session: Session, town: City, period: date) -> Statement:
    found = statement_of(session, town, period)
    assert found is not None
    return found


def lines_of(session: Session, statement: Statement) -> list[tuple[str, int | None, int, str]]:
    return [
        (line.kind.value, line.ride_id, line.subsidy_amount, line.note)
        for line in session.scalars(
            select(StatementLine)
            .where(StatementLine.statement_id == statement.id)
            .order_by(StatementLine.line_no)
            .execution_options(populate_existing=True)
        )
    ]


def audit_actions(session: Session, statement_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.entity_type == "statement", AuditEntry.entity_id == str(statement_id))
            .order_by(AuditEntry.id)
        )
    )


@dataclass
class Office:
    town: City
    september: Statement
    finance: int
    operator_admin: int

    @property
    def operator_id(self) -> int:
        return self.town.fleets[0].operator.id


@pytest.fixture
def office(session: Session) -> Office:
    """September closed and confirmed for OP01 (two rides, ¥1,900 due); OP01 has an operator admin."""
    town = city(session, operators=2)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 4), fare=2600)
    close(session, town, SEPTEMBER, AFTER_SEPTEMBER)
    finance = staff_member(session, town, StaffRole.FINANCE)
    operator_admin = staff_member(
        session, town, StaffRole.OPERATOR_ADMIN, operator_id=town.fleets[0].operator.id
    )
    september = statement_of(session, town, SEPTEMBER)
    assert september is not None
    service.confirm_statement(
        session,
        statement_id=september.id,
        municipality_id=town.mun.id,
        staff_id=finance,
        actor=f"staff:{finance}",
        now=AFTER_SEPTEMBER,
    )
    return Office(town, september, finance, operator_admin)


def acknowledge(
    session: Session,
    office: Office,
    *,
    statement_id: int | None = None,
    operator_id: int | None = None,
    municipality_id: int | None = None,
    now: datetime = LATER,
) -> Statement:
    return disputes.acknowledge_statement(
        session,
        statement_id=statement_id or office.september.id,
        municipality_id=municipality_id or office.town.mun.id,
        operator_id=operator_id or office.operator_id,
        staff_id=office.operator_admin,
        now=now,
    )


def dispute(
    session: Session,
    office: Office,
    reason: str = "9月3日の乗車の運賃が違います",
    *,
    statement_id: int | None = None,
    operator_id: int | None = None,
    now: datetime = LATER,
) -> Statement:
    return disputes.dispute_statement(
        session,
        statement_id=statement_id or office.september.id,
        municipality_id=office.town.mun.id,
        operator_id=operator_id or office.operator_id,
        staff_id=office.operator_admin,
        reason=reason,
        now=now,
    )


def adjust(
    session: Session,
    office: Office,
    amount: int = 500,
    note: str = "運賃の誤りを訂正",
    *,
    statement_id: int | None = None,
    key: str | None = None,
    now: datetime = LATER,
) -> disputes.AdjustmentResult:
    return disputes.adjust_statement(
        session,
        statement_id=statement_id or office.september.id,
        municipality_id=office.town.mun.id,
        amount=amount,
        note=note,
        staff_id=office.finance,
        now=now,
        idempotency_key=key,
    )


def totals(statement: Statement) -> tuple[int, int, int, int, int, int]:
    return (
        statement.ride_count,
        statement.fare_total,
        statement.rider_share_total,
        statement.subsidy_total,
        statement.adjustment_total,
        statement.amount_due,
    )


# --- acknowledge and dispute ---------------------------------------------------------------------


def test_operator_acknowledges_a_confirmed_statement_with_who_and_when(
    session: Session, office: Office
) -> None:
    statement = acknowledge(session, office)
    assert (
        statement.operator_response,
        statement.operator_response_by_id,
        statement.operator_response_at,
    ) == (
        OperatorResponse.ACKNOWLEDGED,
        office.operator_admin,
        LATER,
    )
    assert audit_actions(session, statement.id)[-1] == "statement.acknowledged"


def test_new_statements_have_no_operator_response(session: Session, office: Office) -> None:
    assert (office.september.operator_response, office.september.dispute_reason) == (
        OperatorResponse.NONE,
        "",
    )


@pytest.mark.parametrize("status", [StatementStatus.APPROVED, StatementStatus.PAID])
def test_approved_and_paid_statements_can_be_answered_too(
    session: Session, office: Office, status: StatementStatus
) -> None:
    office.september.status = status
    session.flush()
    assert dispute(session, office).operator_response is OperatorResponse.DISPUTED


def test_a_draft_cannot_be_acknowledged_or_disputed(session: Session, office: Office) -> None:
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 5), fare=1800)
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    with pytest.raises(Refused) as acknowledged:
        acknowledge(session, office, statement_id=october.id)
    with pytest.raises(Refused) as disputed:
        dispute(session, office, statement_id=october.id)
    assert (acknowledged.value.code, disputed.value.code) == ("statement.not_confirmed",) * 2


def test_another_operator_cannot_answer_the_statement(session: Session, office: Office) -> None:
    other = office.town.fleets[1].operator.id
    with pytest.raises(NotFound) as caught:
        acknowledge(session, office, operator_id=other)
    with pytest.raises(NotFound):
        dispute(session, office, operator_id=other)
    assert caught.value.code == "statement.not_found"
    assert reload(session, office.town, SEPTEMBER).operator_response is OperatorResponse.NONE


def test_a_statement_of_another_city_is_not_found(session: Session, office: Office) -> None:
    other = city(session, operators=1, code="062138", name="大石田町")
    with pytest.raises(NotFound):
        acknowledge(session, office, municipality_id=other.mun.id)
    with pytest.raises(NotFound):
        disputes.adjust_statement(
            session,
            statement_id=office.september.id,
            municipality_id=other.mun.id,
            amount=500,
            note="x",
            staff_id=office.finance,
            now=LATER,
        )


def test_acknowledging_twice_changes_nothing(session: Session, office: Office) -> None:
    acknowledge(session, office)
    again = acknowledge(session, office, now=LATER + timedelta(days=1))
    assert again.operator_response_at == LATER
    assert audit_actions(session, office.september.id).count("statement.acknowledged") == 1


def test_dispute_records_the_reason_and_waits_for_an_answer(session: Session, office: Office) -> None:
    statement = dispute(session, office, "  9月3日の乗車の運賃が違います  ")
    assert (statement.operator_response, statement.dispute_reason, statement.dispute_answered_at) == (
        OperatorResponse.DISPUTED,
        "9月3日の乗車の運賃が違います",
        None,
    )
    assert audit_actions(session, statement.id)[-1] == "statement.disputed"


def test_an_acknowledged_statement_can_no_longer_be_disputed(session: Session, office: Office) -> None:
    acknowledge(session, office)
    with pytest.raises(Conflict) as caught:
        dispute(session, office)
    assert caught.value.code == "statement.already_acknowledged"


def test_acknowledging_a_disputed_statement_ends_the_dispute(session: Session, office: Office) -> None:
    dispute(session, office)
    adjust(session, office)
    statement = acknowledge(session, office)
    assert statement.operator_response is OperatorResponse.ACKNOWLEDGED
    assert statement.dispute_answered_at == LATER  # the history stays: it was answered


def test_disputing_again_after_an_answer_reopens_the_dispute(session: Session, office: Office) -> None:
    dispute(session, office)
    adjust(session, office)
    statement = dispute(session, office, "調整額が足りません", now=LATER + timedelta(days=2))
    assert (statement.dispute_reason, statement.dispute_answered_at) == ("調整額が足りません", None)


def test_the_same_dispute_retried_changes_nothing(session: Session, office: Office) -> None:
    dispute(session, office)
    statement = dispute(session, office, now=LATER + timedelta(hours=1))
    assert statement.operator_response_at == LATER
    assert audit_actions(session, office.september.id).count("statement.disputed") == 1


@pytest.mark.parametrize(
    "reason",
    ["", "   ", "あ" * 501, "運賃\x00が違う", "個人番号 1234 5678 9012 の方", "１２３４５６７８９０１２"],
    ids=["empty", "blank", "too-long", "control-character", "twelve-digits", "full-width-twelve-digits"],
)
def test_a_dispute_needs_a_readable_reason_without_a_my_number(
    session: Session, office: Office, reason: str
) -> None:
    with pytest.raises(Refused) as caught:
        dispute(session, office, reason)
    assert (caught.value.code, list(caught.value.params["errors"])) == ("validation", ["reason"])
    assert reload(session, office.town, SEPTEMBER).operator_response is OperatorResponse.NONE


def test_a_reason_may_span_several_lines(session: Session, office: Office) -> None:
    assert dispute(session, office, "1行目\r\n2行目").dispute_reason == "1行目\n2行目"


# --- adjustments ---------------------------------------------------------------------------------


def test_adjustment_lands_on_next_months_draft_created_when_missing(session: Session, office: Office) -> None:
    dispute(session, office)
    result = adjust(session, office, 500)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    assert result.target.id == october.id
    assert (october.number, october.status, october.run_id) == (
        "062120-202610-OP01",
        StatementStatus.DRAFT,
        None,
    )
    assert lines_of(session, october) == [
        ("adjustment", None, 500, "062120-202609-OP01 の調整: 運賃の誤りを訂正")
    ]
    assert (october.adjustment_total, october.amount_due) == (500, 500)


def test_adjustment_answers_the_dispute_and_is_recorded(session: Session, office: Office) -> None:
    dispute(session, office)
    result = adjust(session, office, 500)
    recorded = session.scalars(select(StatementAdjustment)).all()
    assert [
        (a.disputed_statement_id, a.target_statement_id, a.amount, a.note, a.created_by_id) for a in recorded
    ] == [(office.september.id, result.target.id, 500, "運賃の誤りを訂正", office.finance)]
    assert reload(session, office.town, SEPTEMBER).dispute_answered_at == LATER
    assert audit_actions(session, office.september.id)[-1] == "statement.adjusted"
    assert audit_actions(session, result.target.id) == [
        "statement.opened_for_adjustment",
        "statement.adjustment_booked",
    ]


def test_the_answered_statement_keeps_its_lines_and_totals(session: Session, office: Office) -> None:
    before_lines, before_totals = lines_of(session, office.september), totals(office.september)
    dispute(session, office)
    adjust(session, office, 500)
    adjust(session, office, -300, "二重計上の取消")
    september = statement_of(session, office.town, SEPTEMBER)
    assert september is not None
    assert (lines_of(session, september), totals(september)) == (before_lines, before_totals)
    assert september.status is StatementStatus.CONFIRMED


def test_adjustment_goes_to_the_earliest_later_draft(session: Session, office: Office) -> None:
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 5), fare=1800)
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    result = adjust(session, office, 250)
    assert result.target.id == october.id
    assert (october.subsidy_total, october.adjustment_total, october.amount_due) == (900, 250, 1150)
    assert [kind for kind, *_ in lines_of(session, october)] == ["ride", "adjustment"]


def test_adjustment_skips_later_months_that_are_already_confirmed(session: Session, office: Office) -> None:
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    service.confirm_statement(
        session,
        statement_id=october.id,
        municipality_id=office.town.mun.id,
        staff_id=office.finance,
        actor="staff:x",
        now=AFTER_OCTOBER,
    )
    before = totals(october), lines_of(session, october)
    result = adjust(session, office, 500, now=AFTER_OCTOBER)
    assert (result.target.period, result.target.number) == (NOVEMBER, "062120-202611-OP01")
    october = reload(session, office.town, OCTOBER)
    assert (totals(october), lines_of(session, october)) == before


def test_closing_the_target_month_keeps_the_adjustment_line(session: Session, office: Office) -> None:
    dispute(session, office)
    adjust(session, office, 500)
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 5), fare=1800)
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 6), fare=2600)
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    close(session, office.town, OCTOBER, AFTER_OCTOBER + timedelta(hours=1))  # and a re-run
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    assert [(kind, amount) for kind, _ride, amount, _note in lines_of(session, october)] == [
        ("ride", 900),
        ("ride", 1000),
        ("adjustment", 500),
    ]
    assert (october.subsidy_total, october.adjustment_total, october.amount_due) == (1900, 500, 2400)


def test_two_adjustments_add_up_on_the_target(session: Session, office: Office) -> None:
    adjust(session, office, 500)
    result = adjust(session, office, 700, "深夜割増の漏れ")
    assert (result.target.adjustment_total, result.target.amount_due) == (1200, 1200)
    assert [amount for _kind, _ride, amount, _note in lines_of(session, result.target)] == [500, 700]


def test_a_statement_nobody_disputed_can_still_be_corrected(session: Session, office: Office) -> None:
    result = adjust(session, office, 500)
    assert result.target.amount_due == 500
    assert reload(session, office.town, SEPTEMBER).dispute_answered_at is None


def test_a_draft_cannot_be_adjusted(session: Session, office: Office) -> None:
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    with pytest.raises(Refused) as caught:
        adjust(session, office, statement_id=october.id)
    assert caught.value.code == "statement.not_confirmed"


def test_a_deduction_within_the_later_claim_is_booked(session: Session, office: Office) -> None:
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 5), fare=1800)
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    result = adjust(session, office, -900, "二重計上の取消")
    assert (result.target.adjustment_total, result.target.amount_due) == (-900, 0)


def test_a_deduction_may_not_take_the_amount_due_below_zero(session: Session, office: Office) -> None:
    ride(session, office.town, office.town.fleets[0], boarded_at=jst(2026, 10, 5), fare=1800)
    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    with pytest.raises(Refused) as caught:
        adjust(session, office, -901)
    october = statement_of(session, office.town, OCTOBER)
    assert october is not None
    assert (caught.value.code, caught.value.params) == ("adjustment.amount_due_negative", {"amount_due": 900})
    assert (october.amount_due, session.scalar(select(func.count()).select_from(StatementAdjustment))) == (
        900,
        0,
    )


def test_a_deduction_with_no_later_claim_is_refused_without_opening_a_draft(
    session: Session, office: Office
) -> None:
    with pytest.raises(Refused) as caught:
        adjust(session, office, -100)
    assert caught.value.code == "adjustment.amount_due_negative"
    assert statement_of(session, office.town, OCTOBER) is None


@pytest.mark.parametrize("amount", [0, 10_000_001, -10_000_001, 10**30, True])
def test_an_adjustment_is_a_non_zero_bounded_whole_number_of_yen(
    session: Session, office: Office, amount: int
) -> None:
    with pytest.raises(Refused) as caught:
        adjust(session, office, amount)
    assert list(caught.value.params["errors"]) == ["amount"]
    assert statement_of(session, office.town, OCTOBER) is None


@pytest.mark.parametrize("note", ["", "  ", "x" * 201, "改行\nあり", "タブ\tあり", "123456789012"])
def test_an_adjustment_note_is_one_readable_line(session: Session, office: Office, note: str) -> None:
    with pytest.raises(Refused) as caught:
        adjust(session, office, 500, note)
    assert list(caught.value.params["errors"]) == ["note"]


def test_the_largest_adjustment_is_allowed(session: Session, office: Office) -> None:
    assert adjust(session, office, 10_000_000).target.amount_due == 10_000_000


def test_a_retried_idempotency_key_returns_the_first_adjustment(session: Session, office: Office) -> None:
    first = adjust(session, office, 500, key="adj-1")
    again = adjust(session, office, 500, key="adj-1", now=LATER + timedelta(minutes=1))
    assert (again.replayed, again.adjustment.id, again.target.amount_due) == (True, first.adjustment.id, 500)
    assert len(lines_of(session, first.target)) == 1


def test_the_same_key_for_another_amount_is_refused(session: Session, office: Office) -> None:
    adjust(session, office, 500, key="adj-1")
    with pytest.raises(Refused) as caught:
        adjust(session, office, 600, key="adj-1")
    assert caught.value.code == "idempotency.key_reused"


def test_adjustments_answering_a_statement_are_listed_oldest_first(session: Session, office: Office) -> None:
    adjust(session, office, 500)
    adjust(session, office, -200, "取消", now=LATER + timedelta(hours=1))
    listed = disputes.adjustments_answering(session, statement_id=office.september.id)
    assert [a.amount for a in listed] == [500, -200]


# --- documents -----------------------------------------------------------------------------------


def test_the_statement_document_shows_the_operators_response(session: Session, office: Office) -> None:
    dispute(session, office)
    doc = documents.statement_doc(session, office.september.id)
    assert doc.operator_response == "disputed"
    assert pdf.statement_pdf(doc).startswith(b"%PDF")


def test_the_target_statement_prints_its_adjustment_line(session: Session, office: Office) -> None:
    target = adjust(session, office, 500).target
    doc = documents.statement_doc(session, target.id)
    text = b"".join(documents.statement_csv_chunks(session, target.id)).decode("utf-8-sig")
    assert "062120-202609-OP01 の調整: 運賃の誤りを訂正" in text
    assert pdf.statement_pdf(doc).startswith(b"%PDF")


# --- a draft opened for an adjustment waits for its month ------------------------------------------


def test_draft_opened_for_an_adjustment_cannot_be_confirmed_before_its_month_is_closed(
    session: Session, office: Office
) -> None:
    october = adjust(session, office, now=LATER).target
    assert october.period == OCTOBER

    def confirm(now: datetime) -> None:
        service.confirm_statement(
            session,
            statement_id=october.id,
            municipality_id=office.town.mun.id,
            staff_id=office.finance,
            actor=f"staff:{office.finance}",
            now=now,
        )

    with pytest.raises(Refused) as still_october:
        confirm(jst(2026, 10, 25))
    assert still_october.value.code == "settlement.period_open"
    with pytest.raises(Refused) as not_closed:
        confirm(jst(2026, 11, 2))
    assert not_closed.value.code == "statement.not_closed"

    close(session, office.town, OCTOBER, AFTER_OCTOBER)
    confirm(jst(2026, 11, 2))
    assert reload(session, office.town, OCTOBER).status is StatementStatus.CONFIRMED
