"""The statement rules (settlement.statements.LineRules): which rides make lines, with what amounts and
notes, how fare-less rides are settled. Each case evaluates the rules' SQL over one ride in the test
database, exactly as the close's INSERT … SELECT does; the close itself is tested in test_service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement.statements import (
    LineRules,
    ProgramTerms,
    format_period,
    month_note,
    parse_period,
    period_bounds,
    statement_number,
)
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.models import EntitlementUnit, Ride, StatementLineKind

SEPTEMBER = date(2026, 9, 1)
START, END = period_bounds(SEPTEMBER)
NOW = jst(2026, 10, 1, 2, 0)
PERCENT = {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000}
TICKET = {"formula": "ticket", "ticket_value": 500, "max_tickets_per_ride": 3}
COPAY = {"formula": "fixed_copay", "copay": 500}


def terms(subsidy: dict[str, object] | None = None, /, **options: object) -> ProgramTerms:
    return ProgramTerms(subsidy=subsidy or PERCENT, options={"fareless_after_hours": 12, **options})


def line_of(
    session: Session,
    town: City,
    made: Ride,
    program_terms: ProgramTerms,
    *,
    now: datetime = NOW,
    earlier_months: tuple[date, ...] = (),
) -> dict[str, Any] | None:
    """The line the rules give `made` on September's statement, or None when it makes none now."""
    rules = LineRules(
        {town.program.id: program_terms}, period=SEPTEMBER, now=now, earlier_months=earlier_months
    )
    row = session.execute(
        select(
            rules.settles.label("settles"),
            rules.waiting_for_fare.label("waiting"),
            rules.kind.label("kind"),
            rules.meter_fare.label("meter_fare"),
            rules.rider_share.label("rider_share"),
            rules.subsidy_amount.label("subsidy_amount"),
            rules.note.label("note"),
        ).where(Ride.id == made.id)
    ).one()
    if not row.settles:
        return None
    return {
        "kind": StatementLineKind(row.kind),
        "meter_fare": row.meter_fare,
        "rider_share": row.rider_share,
        "subsidy_amount": row.subsidy_amount,
        "note": row.note,
        "waiting": bool(row.waiting),
    }


@pytest.fixture
def town(session: Session) -> City:
    return city(session, operators=1)


def test_completed_ride_of_the_period_is_a_ride_line_with_its_recorded_split(
    session: Session, town: City
) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=3000)
    line = line_of(session, town, made, terms())
    assert line is not None
    assert (line["kind"], line["meter_fare"], line["subsidy_amount"], line["rider_share"], line["note"]) == (
        StatementLineKind.RIDE,
        3000,
        made.subsidy_amount,
        made.rider_share,
        "",
    )


def test_voided_ride_makes_no_line(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), voided=True)
    assert line_of(session, town, made, terms()) is None


def test_ride_without_fare_within_grace_time_waits_for_a_later_close(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=NOW - timedelta(hours=3), fare=None)
    rules = LineRules({town.program.id: terms()}, period=SEPTEMBER, now=NOW)
    settles, waiting = session.execute(
        select(rules.settles, rules.waiting_for_fare).where(Ride.id == made.id)
    ).one()
    assert (bool(settles), bool(waiting)) == (False, True)


def test_fareless_ride_under_no_subsidy_rule_is_a_fareless_line_paying_nothing(
    session: Session, town: City
) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=None)
    line = line_of(session, town, made, terms(fareless_rule="no_subsidy"))
    assert line is not None
    assert (line["kind"], line["subsidy_amount"], line["meter_fare"], line["rider_share"]) == (
        StatementLineKind.FARELESS,
        0,
        0,
        0,
    )
    assert line["note"] == "運賃未入力のため助成なし"


def test_fareless_ride_under_cap_rule_is_paid_the_programs_per_ride_cap(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=None)
    line = line_of(session, town, made, terms(fareless_rule="cap"))
    assert line is not None
    assert (line["kind"], line["subsidy_amount"], line["note"]) == (
        StatementLineKind.FARELESS,
        1000,
        "運賃未入力のため制度の上限額で精算",
    )


def test_fareless_grace_time_is_the_programs_setting(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=NOW - timedelta(hours=30), fare=None)
    assert line_of(session, town, made, terms(fareless_after_hours=48)) is None
    assert line_of(session, town, made, terms(fareless_after_hours=24)) is not None


@pytest.mark.parametrize(
    ("subsidy", "unit", "held", "cap"),
    [
        (PERCENT, "ride", 1, 1000),
        (TICKET, "ticket", 2, 1000),  # the tickets held at boarding, not the program's maximum
        (TICKET, "ticket", 3, 1500),
        (TICKET, "ticket", 5, 1500),  # at most max_tickets_per_ride
        ({**TICKET, "max_tickets_per_ride": None}, "ticket", 5, 2500),
        (PERCENT, "yen", 600, 600),  # a yen budget never pays more than it held
        (PERCENT, "yen", 5000, 1000),
        (COPAY, "ride", 1, 0),  # a copay program without a cap has no cap to pay
        ({**COPAY, "cap_per_ride": 1500}, "ride", 1, 1500),
        ({**COPAY, "shared_cap_per_person": 1200}, "ride", 1, 1200),
    ],
)
def test_fareless_cap_follows_the_formula(
    session: Session, town: City, subsidy: dict[str, object], unit: str, held: int, cap: int
) -> None:
    town.entitlement.unit = EntitlementUnit(unit)
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=None, units_held=held)
    line = line_of(session, town, made, terms(subsidy, fareless_rule="cap"))
    assert line is not None
    assert line["subsidy_amount"] == cap


@pytest.mark.parametrize(("bearer", "who"), [("city", "市負担"), ("operator", "事業者負担")])
def test_offline_ride_refused_online_is_flagged_and_paid_as_the_program_says(
    session: Session, town: City, bearer: str, who: str
) -> None:
    made = ride(
        session,
        town,
        town.fleets[0],
        boarded_at=jst(2026, 9, 10),
        fare=2400,
        review_code="entitlement.exhausted",
    )
    line = line_of(session, town, made, terms(offline_loss_borne_by=bearer))
    assert line is not None
    paid = made.subsidy_amount if bearer == "city" else 0
    assert (line["kind"], line["meter_fare"], line["subsidy_amount"], line["note"]) == (
        StatementLineKind.OFFLINE_CONFLICT,
        2400,
        paid,
        f"オフライン乗車・要確認(entitlement.exhausted)・{who}",
    )


def test_flagged_ride_without_fare_is_fareless_and_says_it_needs_a_look(session: Session, town: City) -> None:
    made = ride(
        session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=None, review_code="limit.per_day"
    )
    line = line_of(session, town, made, terms())
    assert line is not None
    assert (line["kind"], line["note"]) == (
        StatementLineKind.FARELESS,
        "運賃未入力のため助成なし・要確認(limit.per_day)",
    )


def test_ride_of_an_earlier_month_is_a_prior_period_line_naming_its_month(
    session: Session, town: City
) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 8, 31, 23, 0))
    line = line_of(session, town, made, terms(), earlier_months=(date(2026, 8, 1),))
    assert line is not None
    assert (line["kind"], line["note"]) == (StatementLineKind.PRIOR_PERIOD, "2026年8月の乗車")


def test_fareless_ride_of_an_earlier_month_keeps_its_month_in_the_note(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 8, 20), fare=None)
    line = line_of(session, town, made, terms(), earlier_months=(date(2026, 7, 1), date(2026, 8, 1)))
    assert line is not None
    assert (line["kind"], line["note"]) == (
        StatementLineKind.FARELESS,
        "2026年8月の乗車・運賃未入力のため助成なし",
    )


def test_flagged_ride_of_an_earlier_month_keeps_month_and_flag(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 8, 20), review_code="limit.per_day")
    line = line_of(
        session, town, made, terms(offline_loss_borne_by="operator"), earlier_months=(date(2026, 8, 1),)
    )
    assert line is not None
    assert (line["kind"], line["subsidy_amount"], line["note"]) == (
        StatementLineKind.OFFLINE_CONFLICT,
        0,
        "2026年8月の乗車・オフライン乗車・要確認(limit.per_day)・事業者負担",
    )


def test_ride_of_a_program_without_terms_gets_no_amounts(session: Session, town: City) -> None:
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 10), fare=None)
    rules = LineRules({}, period=SEPTEMBER, now=NOW)
    settles, subsidy = session.execute(
        select(rules.settles, rules.subsidy_amount).where(Ride.id == made.id)
    ).one()
    # No terms, no grace time: it never counts as overdue, so it waits rather than being settled blind.
    found: tuple[bool, int | None] = (bool(settles), subsidy)
    assert found == (False, None)


def test_month_note_names_the_month() -> None:
    assert month_note(date(2026, 8, 1)) == "2026年8月の乗車"


def test_month_is_cut_at_midnight_japan_time() -> None:
    assert period_bounds(SEPTEMBER) == (
        datetime(2026, 8, 31, 15, 0, tzinfo=UTC),
        datetime(2026, 9, 30, 15, 0, tzinfo=UTC),
    )


def test_period_is_written_year_dash_month() -> None:
    assert parse_period("2026-10") == date(2026, 10, 1)
    assert format_period(date(2026, 3, 31)) == "2026-03"


@pytest.mark.parametrize("text", ["2026-13", "2026-1", "202610", "2026-10-01", ""])
def test_malformed_period_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period(text)


def test_statement_number_names_city_month_and_operator() -> None:
    assert statement_number("062120", date(2026, 10, 1), "OP01") == "062120-202610-OP01"


@pytest.mark.parametrize(
    "options", [{"fareless_rule": "half"}, {"offline_loss_borne_by": "driver"}], ids=["fareless", "bearer"]
)
def test_unknown_program_options_are_refused(
    session: Session, town: City, options: dict[str, object]
) -> None:
    with pytest.raises(ValueError, match="unknown"):
        LineRules({town.program.id: terms(**options)}, period=SEPTEMBER, now=NOW).subsidy_amount  # noqa: B018
