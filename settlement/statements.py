"""The rules of one operator's statement for one month: which rides make lines, with what amounts.

Rules (DESIGN §4, §8):

- a ride belongs to the month it boarded, in Japan time;
- a completed ride boarded in the period is a `ride` line with its fare split as recorded at alighting;
- a voided ride never makes a line;
- a ride still without a fare `options.fareless_after_hours` after boarding is settled by the program's
  `options.fareless_rule`: `no_subsidy` (the city pays nothing) or `cap` (the city pays the program's
  per-ride cap); the line's kind is `fareless`. A fareless ride not yet overdue makes no line now; a
  later close picks it up;
- an offline ride flagged for review (it would have been refused online) is an `offline_conflict` line:
  the program's `options.offline_loss_borne_by` says who bears it — `city` pays the subsidy recorded at
  alighting, `operator` gets nothing for it; the note says which;
- a ride boarded before the period that is on no statement yet (synced late, fare entered late) is a
  `prior_period` line (or `fareless`, with the month in the note) on this statement;
- adjustment lines (answers to disputes) are kept as they are and added after the ride lines;
- amount due = subsidy total + adjustment total.

`LineRules` states these rules as SQL expressions over a ride, so the close writes a month of lines in
one statement inside the database (settlement.service). Nothing here runs a query or reads a clock: the
caller passes the program terms, the period and `now`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, literal, not_, null, or_, select

from voucher_api.clock import japan_midnight, next_month
from voucher_api.models.entitlements import Entitlement
from voucher_api.models.rides import Ride, RideStatus
from voucher_api.models.settlement import StatementLineKind

_PERIOD_TEXT = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

FARELESS_RULES = ("no_subsidy", "cap")
OFFLINE_LOSS_BEARERS = ("city", "operator")
DEFAULT_FARELESS_AFTER_HOURS = 12


def parse_period(text: str) -> date:
    """`"2026-10"` → `date(2026, 10, 1)`. Raises ValueError for anything but YYYY-MM."""
    match = _PERIOD_TEXT.match(text.strip())
    if match is None:
        raise ValueError(f"a period is written YYYY-MM, got {text!r}")
    return date(int(match.group(1)), int(match.group(2)), 1)


def format_period(period: date) -> str:
    """`date(2026, 10, 1)` → `"2026-10"`."""
    return f"{period.year:04d}-{period.month:02d}"


def period_bounds(period: date) -> tuple[datetime, datetime]:
    """The period's first and first-after instants (aware UTC): midnight Japan time on the 1st of each."""
    first = period.replace(day=1)
    return japan_midnight(first), japan_midnight(next_month(first))


def statement_number(municipality_code: str, period: date, operator_code: str) -> str:
    """The number printed on the statement, e.g. `062120-202610-OP01`: city, month, operator."""
    return f"{municipality_code}-{period.year:04d}{period.month:02d}-{operator_code}"


@dataclass(frozen=True, slots=True)
class ProgramTerms:
    """The parts of a program's rules that settlement reads."""

    subsidy: Mapping[str, Any]
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fareless_after(self) -> timedelta:
        """How long after boarding a ride without a fare is settled by the fareless rule."""
        return timedelta(hours=int(self.options.get("fareless_after_hours", DEFAULT_FARELESS_AFTER_HOURS)))

    @property
    def fareless_rule(self) -> str:
        """`no_subsidy` or `cap`; raises ValueError for anything else."""
        rule = str(self.options.get("fareless_rule", "no_subsidy"))
        if rule not in FARELESS_RULES:
            raise ValueError(f"unknown fareless rule {rule!r}")
        return rule

    @property
    def offline_loss_borne_by(self) -> str:
        """`city` or `operator`: who bears an offline ride that would have been refused online."""
        bearer = str(self.options.get("offline_loss_borne_by", "city"))
        if bearer not in OFFLINE_LOSS_BEARERS:
            raise ValueError(f"unknown bearer of offline losses {bearer!r}")
        return bearer


@dataclass(frozen=True, slots=True)
class Totals:
    """A statement's sums; adjustments apart from the rides."""

    ride_count: int
    fare_total: int
    rider_share_total: int
    subsidy_total: int
    adjustment_total: int

    @property
    def amount_due(self) -> int:
        """What the city pays the operator: subsidies plus adjustments."""
        return self.subsidy_total + self.adjustment_total


def month_note(month: date) -> str:
    """The note that names the month a prior-period ride boarded in, e.g. `2026年9月の乗車`."""
    return f"{month.year}年{month.month}月の乗車"


class LineRules:
    """The rules above as SQL expressions over one ride (`Ride`, its `Entitlement` for the unit held),
    for one statement: its period, the earlier closed months whose waiting rides it takes, the programs'
    terms and `now`. The close selects `kind`, `meter_fare`, `rider_share`, `subsidy_amount` and `note`
    for every ride that `settles`, and writes them with one INSERT … SELECT, so a month of a million
    rides never passes through Python.

    What depends on a program is decided here, in Python, once per program (`ProgramTerms`); what
    depends on the ride is a CASE. A ride of a program missing from `programs` gets no amounts, which
    the table's NOT NULL columns refuse: the close fails rather than settle a ride by unknown rules.
    """

    def __init__(
        self,
        programs: Mapping[int, ProgramTerms],
        *,
        period: date,
        now: datetime,
        earlier_months: Sequence[date] = (),
    ) -> None:
        self.programs = dict(programs)
        self.start, self.end = period_bounds(period)
        self.now = now
        self.earlier_months = sorted(month.replace(day=1) for month in earlier_months)
        ride = Ride
        self._completed = and_(ride.status == RideStatus.COMPLETED, ride.meter_fare.is_not(None))
        self._flagged = ride.review_code.is_not(None)
        self._prior = ride.boarded_at < self.start

    def _per_program(self, value: Callable[[ProgramTerms], Any]) -> ColumnElement[Any]:
        whens = [(Ride.program_id == program_id, value(terms)) for program_id, terms in self.programs.items()]
        return case(*whens, else_=null()) if whens else null()

    @property
    def overdue(self) -> ColumnElement[bool]:
        """The ride has waited for its fare longer than its program allows."""
        if not self.programs:
            return false()
        return or_(
            *(
                and_(Ride.program_id == program_id, Ride.boarded_at <= self.now - terms.fareless_after)
                for program_id, terms in self.programs.items()
            )
        )

    @property
    def settles(self) -> ColumnElement[bool]:
        """The ride makes a line now: not voided, and either completed or past its fare grace time
        (a ride still waiting for its fare makes none; a later close picks it up)."""
        return and_(Ride.status != RideStatus.VOIDED, or_(self._completed, self.overdue))

    @property
    def waiting_for_fare(self) -> ColumnElement[bool]:
        """A ride of the period still without a fare and within its grace time."""
        if not self.programs:
            return false()
        # Bounded by the longest grace time, so the count reads only the last hours of the month.
        longest = max(terms.fareless_after for terms in self.programs.values())
        return and_(
            Ride.status == RideStatus.BOARDED,
            Ride.boarded_at >= max(self.start, self.now - longest),
            Ride.boarded_at < self.end,
            not_(self.overdue),
        )

    @property
    def kind(self) -> ColumnElement[str]:
        return case(
            (and_(self._completed, self._flagged), StatementLineKind.OFFLINE_CONFLICT.value),
            (and_(self._completed, self._prior), StatementLineKind.PRIOR_PERIOD.value),
            (self._completed, StatementLineKind.RIDE.value),
            else_=StatementLineKind.FARELESS.value,
        )

    @property
    def meter_fare(self) -> ColumnElement[int]:
        return case((self._completed, Ride.meter_fare), else_=0)

    @property
    def rider_share(self) -> ColumnElement[int]:
        return case((self._completed, func.coalesce(Ride.rider_share, 0)), else_=0)

    @property
    def subsidy_amount(self) -> ColumnElement[int]:
        recorded = func.coalesce(Ride.subsidy_amount, 0)
        offline_conflict = self._per_program(
            lambda terms: recorded if terms.offline_loss_borne_by == "city" else literal(0)
        )
        fareless = self._per_program(
            lambda terms: _per_ride_cap(terms.subsidy) if terms.fareless_rule == "cap" else literal(0)
        )
        return case(
            (and_(self._completed, self._flagged), offline_conflict),
            (self._completed, recorded),
            else_=fareless,
        )

    @property
    def note(self) -> ColumnElement[str]:
        review = literal("要確認(") + Ride.review_code + literal(")")
        offline = self._per_program(
            lambda terms: (
                literal("オフライン乗車・")
                + review
                + literal("・市負担" if terms.offline_loss_borne_by == "city" else "・事業者負担")
            )
        )
        fareless = self._per_program(
            lambda terms: literal(
                "運賃未入力のため制度の上限額で精算"
                if terms.fareless_rule == "cap"
                else "運賃未入力のため助成なし"
            )
        ) + case((self._flagged, literal("・") + review), else_=literal(""))
        own = case(
            (and_(self._completed, self._flagged), offline),
            (self._completed, literal("")),
            else_=fareless,
        )
        month = self._earlier_month_note()
        if month is None:
            return func.substr(own, 1, 200)
        prior = case(
            (and_(self._completed, not_(self._flagged)), month),
            else_=month + case((own == literal(""), literal("")), else_=literal("・") + own),
        )
        return func.substr(case((self._prior, prior), else_=own), 1, 200)

    def _earlier_month_note(self) -> ColumnElement[str] | None:
        if not self.earlier_months:
            return None
        whens = []
        for month in self.earlier_months:
            month_start, month_end = period_bounds(month)
            whens.append(
                (and_(Ride.boarded_at >= month_start, Ride.boarded_at < month_end), month_note(month))
            )
        return case(*whens, else_=literal(""))


def _per_ride_cap(subsidy: Mapping[str, Any]) -> ColumnElement[int]:
    """The most the program pays for one ride, given what boarding held:

    - ticket: the tickets held at boarding (at most `max_tickets_per_ride`) times their value;
    - percent_capped / fixed_copay: `cap_per_ride`, or else `shared_cap_per_person`; a `fixed_copay`
      program with neither has no cap to pay, so 0;
    - a yen budget never pays more than the yen held at boarding.
    """
    held = Ride.units_held
    if subsidy["formula"] == "ticket":
        most = subsidy.get("max_tickets_per_ride")
        tickets: ColumnElement[int] = (
            case((held < int(most), held), else_=int(most)) if most else held  # type: ignore[assignment]
        )
        cap: ColumnElement[int] = tickets * int(subsidy["ticket_value"])
    else:
        cap = literal(int(subsidy.get("cap_per_ride") or subsidy.get("shared_cap_per_person") or 0))
    unit = select(Entitlement.unit).where(Entitlement.id == Ride.entitlement_id).scalar_subquery()
    held_yen = and_(unit == "yen", held < cap)
    return case((held_yen, held), (cap < 0, 0), else_=cap)
