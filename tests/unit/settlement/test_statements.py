"""The pure statement rules: which rides make lines, how fare-less rides are settled, the totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.statements import (
    LineDraft,
    ProgramTerms,
    RideRow,
    StatementBuilder,
    build_statement,
    format_period,
    line_for,
    parse_period,
    per_ride_cap,
    period_bounds,
    statement_number,
    totals_of,
)
from tests.unit.settlement.factories import jst
from voucher_api.models import StatementLineKind

SEPTEMBER = date(2026, 9, 1)
START, END = period_bounds(SEPTEMBER)
NOW = jst(2026, 10, 1, 2, 0)
PERCENT = {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000}
TICKET = {"formula": "ticket", "ticket_value": 500, "max_tickets_per_ride": 3}
COPAY = {"formula": "fixed_copay", "copay": 500}


def terms(subsidy: dict[str, object] | None = None, **options: object) -> ProgramTerms:
    return ProgramTerms(subsidy=subsidy or PERCENT, options={"fareless_after_hours": 12, **options})


def row(
    ride_id: int = 1,
    *,
    boarded_at: datetime | None = None,
    status: str = "completed",
    fare: int | None = 2000,
    unit: str = "ride",
    units_held: int = 1,
    review_code: str | None = None,
) -> RideRow:
    subsidy = None if fare is None else min(fare // 2, 1000)
    return RideRow(
        ride_id=ride_id,
        status=status,
        boarded_at=boarded_at or jst(2026, 9, 10),
        program_id=1,
        vehicle_id=7,
        unit=unit,
        units_held=units_held,
        meter_fare=fare,
        subsidy_amount=subsidy,
        rider_share=None if fare is None or subsidy is None else fare - subsidy,
        review_code=review_code,
    )


def test_completed_ride_of_the_period_is_a_ride_line_with_its_recorded_split() -> None:
    line = line_for(row(fare=3000), terms(), period_start=START, now=NOW)
    assert line is not None
    assert (line.kind, line.meter_fare, line.subsidy_amount, line.rider_share) == (
        StatementLineKind.RIDE,
        3000,
        1000,
        2000,
    )


def test_voided_ride_makes_no_line() -> None:
    assert line_for(row(status="voided"), terms(), period_start=START, now=NOW) is None


def test_ride_without_fare_within_grace_time_waits_for_a_later_close() -> None:
    boarded = NOW - timedelta(hours=3)
    draft = build_statement(
        [row(boarded_at=boarded, status="boarded", fare=None)], {1: terms()}, period=SEPTEMBER, now=NOW
    )
    assert (draft.lines, draft.waiting_for_fare) == ([], 1)


def test_fareless_ride_under_no_subsidy_rule_is_a_fareless_line_paying_nothing() -> None:
    line = line_for(
        row(status="boarded", fare=None), terms(fareless_rule="no_subsidy"), period_start=START, now=NOW
    )
    assert line is not None
    assert (line.kind, line.subsidy_amount, line.meter_fare) == (StatementLineKind.FARELESS, 0, 0)


def test_fareless_ride_under_cap_rule_is_paid_the_programs_per_ride_cap() -> None:
    line = line_for(row(status="boarded", fare=None), terms(fareless_rule="cap"), period_start=START, now=NOW)
    assert line is not None
    assert (line.kind, line.subsidy_amount) == (StatementLineKind.FARELESS, 1000)


def test_fareless_grace_time_is_the_programs_setting() -> None:
    boarded = NOW - timedelta(hours=30)
    ride = row(boarded_at=boarded, status="boarded", fare=None)
    assert line_for(ride, terms(fareless_after_hours=48), period_start=START, now=NOW) is None
    assert line_for(ride, terms(fareless_after_hours=24), period_start=START, now=NOW) is not None


@pytest.mark.parametrize(
    ("subsidy", "unit", "held", "cap"),
    [
        (PERCENT, "ride", 1, 1000),
        (TICKET, "ticket", 2, 1000),  # the tickets held at boarding, not the program's maximum
        (TICKET, "ticket", 3, 1500),
        (PERCENT, "yen", 600, 600),  # a yen budget never pays more than it held
        (COPAY, "ride", 1, 0),  # a copay program without a cap has no cap to pay
        ({**COPAY, "cap_per_ride": 1500}, "ride", 1, 1500),
    ],
)
def test_per_ride_cap_follows_the_formula(subsidy: dict[str, object], unit: str, held: int, cap: int) -> None:
    assert per_ride_cap(subsidy, unit, held) == cap


@pytest.mark.parametrize(("bearer", "paid", "who"), [("city", 1000, "市負担"), ("operator", 0, "事業者負担")])
def test_offline_ride_refused_online_is_flagged_and_paid_as_the_program_says(
    bearer: str, paid: int, who: str
) -> None:
    ride = row(fare=2400, review_code="entitlement.exhausted")
    line = line_for(ride, terms(offline_loss_borne_by=bearer), period_start=START, now=NOW)
    assert line is not None
    assert (line.kind, line.meter_fare, line.subsidy_amount) == (
        StatementLineKind.OFFLINE_CONFLICT,
        2400,
        paid,
    )
    assert who in line.note
    assert "entitlement.exhausted" in line.note


def test_ride_of_an_earlier_month_is_a_prior_period_line_naming_its_month() -> None:
    line = line_for(row(boarded_at=jst(2026, 8, 31, 23, 0)), terms(), period_start=START, now=NOW)
    assert line is not None
    assert line.kind == StatementLineKind.PRIOR_PERIOD
    assert "2026年8月" in line.note


def test_fareless_ride_of_an_earlier_month_keeps_its_month_in_the_note() -> None:
    ride = row(boarded_at=jst(2026, 8, 20), status="boarded", fare=None)
    line = line_for(ride, terms(), period_start=START, now=NOW)
    assert line is not None
    assert line.kind == StatementLineKind.FARELESS
    assert "2026年8月" in line.note


def test_ride_boarded_after_the_period_is_left_out() -> None:
    draft = build_statement([row(boarded_at=END)], {1: terms()}, period=SEPTEMBER, now=NOW)
    assert draft.lines == []


def test_month_is_cut_at_midnight_japan_time() -> None:
    assert period_bounds(SEPTEMBER) == (
        datetime(2026, 8, 31, 15, 0, tzinfo=UTC),
        datetime(2026, 9, 30, 15, 0, tzinfo=UTC),
    )


def test_lines_are_in_boarding_order_then_adjustments() -> None:
    adjustment = LineDraft(StatementLineKind.ADJUSTMENT, None, None, None, None, 0, 0, -500, "異議への調整")
    draft = build_statement(
        [row(2, boarded_at=jst(2026, 9, 20)), row(1, boarded_at=jst(2026, 9, 5))],
        {1: terms()},
        period=SEPTEMBER,
        now=NOW,
        adjustments=[adjustment],
    )
    assert [line.ride_id for line in draft.lines] == [1, 2, None]


def test_amount_due_is_subsidies_plus_adjustments_and_adjustments_are_not_rides() -> None:
    adjustment = LineDraft(StatementLineKind.ADJUSTMENT, None, None, None, None, 0, 0, -300, "")
    draft = build_statement(
        [row(1, fare=2000), row(2, fare=1000)],
        {1: terms()},
        period=SEPTEMBER,
        now=NOW,
        adjustments=[adjustment],
    )
    totals = draft.totals
    assert (totals.ride_count, totals.fare_total, totals.subsidy_total, totals.adjustment_total) == (
        2,
        3000,
        1500,
        -300,
    )
    assert totals.amount_due == 1200


@given(st.lists(st.integers(min_value=0, max_value=50_000), max_size=40))
def test_totals_are_the_sums_of_the_lines(fares: list[int]) -> None:
    rides = [row(n, fare=fare) for n, fare in enumerate(fares, start=1)]
    draft = build_statement(rides, {1: terms()}, period=SEPTEMBER, now=NOW)
    totals = totals_of(draft.lines)
    assert totals.ride_count == len(fares)
    assert totals.fare_total == sum(fares)
    assert totals.subsidy_total + totals.rider_share_total == totals.fare_total
    assert totals.amount_due == totals.subsidy_total


def test_period_is_written_year_dash_month() -> None:
    assert parse_period("2026-10") == date(2026, 10, 1)
    assert format_period(date(2026, 3, 31)) == "2026-03"


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "202610", "2026-10-01", ""])
def test_malformed_period_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period(text)


def test_statement_number_names_city_month_and_operator() -> None:
    assert statement_number("062120", date(2026, 10, 1), "OP01") == "062120-202610-OP01"


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=40 * 24),  # hours from 1 August, Japan time
            st.sampled_from(["completed", "boarded", "voided"]),
            st.booleans(),  # flagged for review
        ),
        max_size=40,
    )
)
def test_statement_built_one_ride_at_a_time_has_the_lines_and_totals_of_the_list(
    rides: list[tuple[int, str, bool]],
) -> None:
    rows = [
        row(
            n,
            boarded_at=jst(2026, 8, 1, 0, 0) + timedelta(hours=hours),
            status=status,
            fare=None if status == "boarded" else 1500 + n,
            review_code="limit.per_day" if flagged else None,
        )
        for n, (hours, status, flagged) in enumerate(sorted(rides), start=1)
    ]
    programs = {1: terms(fareless_rule="cap")}
    builder = StatementBuilder(programs, period=SEPTEMBER, now=NOW)
    streamed = [line for line in map(builder.line, rows) if line is not None]
    draft = build_statement(rows, programs, period=SEPTEMBER, now=NOW)
    assert streamed == draft.lines
    assert (builder.totals, builder.waiting_for_fare) == (draft.totals, draft.waiting_for_fare)
