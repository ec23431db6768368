"""Month and year ride limits, counted in Japan time: the month runs from the 1st at 00:00 JST, the year
is the fiscal year (年度) from April 1 at 00:00 JST (DESIGN §2, §4).

Each test boards through the API at instants chosen so that a count by UTC dates (or by calendar year)
would give another answer: 08:00 JST on the 1st is still the previous day — and month — in UTC.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, board
from voucher_api.clock import JST, FixedClock
from voucher_api.models import Entitlement, Ride


@dataclass
class LimitedRider:
    entitlement: Entitlement
    card: Path


def limited_rider(
    session: Session,
    city: City,
    card_factory: Any,
    verifier: Any,
    *,
    limits: dict[str, int],
    label: str,
    fiscal_year: int = 2026,
    valid_to: date | None = None,
) -> LimitedRider:
    """A resident with a bound card and an entitlement of a program with only `limits`."""
    rules = copy.deepcopy(f.ELDERLY_RULES)
    rules["limits"] = limits
    program = f.program(session, city.mun, code=f"limits-{label}", rules=rules, fiscal_year=fiscal_year)
    person = f.resident(session, city.mun)
    entitlement = f.entitlement(session, person, program)
    if valid_to is not None:
        program.valid_to = valid_to
        entitlement.valid_to = valid_to
    card = card_factory(f"limits-{label}")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    return LimitedRider(entitlement, card)


def jst(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=JST)


class Boarding:
    """Boards the rider at given Japan-time instants and says what the terminal was told."""

    def __init__(self, client: FlaskClient, city: City, clock: FixedClock, rider: LimitedRider) -> None:
        self.client, self.city, self.clock, self.rider = client, city, clock, rider
        self.count = 0

    def at(self, instant: datetime) -> str:
        self.clock.set(instant)
        self.count += 1
        r = board(self.client, self.city, self.rider.card, key=f"limit-{self.count}")
        if r.status_code == 201:
            return "boarded"
        assert r.status_code == 422, r.get_json()
        return str(r.get_json()["code"])


def rides_of(session: Session, rider: LimitedRider) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(Ride).where(Ride.entitlement_id == rider.entitlement.id)
        )
        or 0
    )


def test_monthly_limit_counts_the_japan_time_month_and_resets_on_the_first_in_japan(
    client: FlaskClient, session: Session, city: City, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    rider = limited_rider(session, city, card_factory, verifier, limits={"per_month": 2}, label="month")
    ride = Boarding(client, city, clock, rider)
    assert ride.at(jst(2026, 10, 15, 10)) == "boarded"
    # 23:30 on the last day of October in Japan (14:30 UTC): an October ride.
    assert ride.at(jst(2026, 10, 31, 23, 30)) == "boarded"
    assert ride.at(jst(2026, 10, 31, 23, 50)) == "limit.per_month"
    # 08:00 on November 1 in Japan is 23:00 on October 31 in UTC, the same UTC day as the two rides
    # before it: it is nevertheless a November ride, and November has none yet.
    assert jst(2026, 11, 1, 8).astimezone(UTC).date() == date(2026, 10, 31)
    assert ride.at(jst(2026, 11, 1, 8)) == "boarded"
    assert ride.at(jst(2026, 11, 10, 9)) == "boarded"
    # ... and it counts for November: the third November ride is refused.
    assert ride.at(jst(2026, 11, 20, 9)) == "limit.per_month"
    assert rides_of(session, rider) == 4
    session.refresh(rider.entitlement)
    assert rider.entitlement.balance == 24 - 4


def test_monthly_refusal_tells_the_driver_the_limit_and_changes_nothing(
    client: FlaskClient, session: Session, city: City, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    rider = limited_rider(session, city, card_factory, verifier, limits={"per_month": 1}, label="month-1")
    ride = Boarding(client, city, clock, rider)
    assert ride.at(jst(2026, 10, 2, 9)) == "boarded"
    clock.set(jst(2026, 10, 30, 9))
    refused = board(client, city, rider.card, key="limit-refused")
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "limit.per_month"
    assert refused.get_json()["limit"] == 1
    assert rides_of(session, rider) == 1
    session.refresh(rider.entitlement)
    assert rider.entitlement.balance == 23


def backdated_card_factory(issuer: Any, directory: Path) -> Any:
    """Cards issued on 2025-04-01 (the session's cards are issued 2026-04-01), for rides in FY2025.

    The year test lies in the past on purpose: access tokens are also checked by PyJWT against the
    wall clock (`iat` not in the future), so a test clock later than the real time fails sign-in.
    """

    def make(label: str) -> Path:
        from auth_mock.issuer import CardHolder

        holder = CardHolder(
            family_name="尾花沢",
            given_name=f"花子{label}",
            family_name_kana="オバナザワ",
            given_name_kana="ハナコ",
            sex="female",
            birth_date=date(1945, 6, 1),
            address="山形県尾花沢市若葉町一丁目1番1号",
            municipality_code="062120",
            registry_id="062120-8000001",
        )
        out = directory / f"{label}.json"
        issuer.issue_card(
            holder,
            pin=f.CARD_PIN,
            password=f.CARD_PASSWORD,
            out=out,
            now=datetime(2025, 4, 1, tzinfo=UTC),
            issued_at=datetime(2025, 4, 1, tzinfo=UTC),
        )
        return out

    return make


def test_yearly_limit_is_the_fiscal_year_from_april_first_in_japan(
    client: FlaskClient,
    session: Session,
    city: City,
    clock: FixedClock,
    issuer: Any,
    verifier: Any,
    tmp_path: Path,
) -> None:
    # An FY2025 entitlement kept valid across the fiscal-year boundary, so that only the limit decides
    # whether the April ride boards.
    rider = limited_rider(
        session,
        city,
        backdated_card_factory(issuer, tmp_path),
        verifier,
        limits={"per_year": 3},
        label="year",
        fiscal_year=2025,
        valid_to=date(2027, 3, 31),
    )
    ride = Boarding(client, city, clock, rider)
    assert ride.at(jst(2025, 10, 15, 10)) == "boarded"
    assert ride.at(jst(2025, 12, 20, 10)) == "boarded"
    # January starts a calendar year, not a fiscal one: this is still the third ride of FY2025.
    assert ride.at(jst(2026, 1, 10, 10)) == "boarded"
    assert ride.at(jst(2026, 2, 1, 10)) == "limit.per_year"
    # 23:30 on March 31 in Japan is the last half hour of FY2025.
    assert ride.at(jst(2026, 3, 31, 23, 30)) == "limit.per_year"
    # 00:30 on April 1 in Japan (still March 31 in UTC) is FY2026, which has no ride yet.
    assert jst(2026, 4, 1, 0, 30).astimezone(UTC).date() == date(2026, 3, 31)
    assert ride.at(jst(2026, 4, 1, 0, 30)) == "boarded"
    assert ride.at(jst(2026, 5, 1, 10)) == "boarded"
    assert ride.at(jst(2026, 6, 1, 10)) == "boarded"
    assert ride.at(jst(2026, 7, 1, 10)) == "limit.per_year"
    assert rides_of(session, rider) == 6
