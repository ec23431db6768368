"""Pure computation of one operator's statement for one month: which rides make lines, and the totals.

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

Nothing here touches a database or a clock: the caller passes rows, program terms and `now`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from voucher_api.clock import JST, japan_midnight, next_month
from voucher_api.models.rides import RideStatus
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
class RideRow:
    """What the statement needs to know about one ride (the database row, flattened)."""

    ride_id: int
    status: str
    boarded_at: datetime
    program_id: int
    vehicle_id: int
    unit: str  # the entitlement's unit: ride | ticket | yen
    units_held: int
    meter_fare: int | None = None
    subsidy_amount: int | None = None
    rider_share: int | None = None
    review_code: str | None = None  # set on an offline ride that would have been refused online


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
class LineDraft:
    """One statement line before it has a number."""

    kind: StatementLineKind
    ride_id: int | None
    boarded_at: datetime | None
    program_id: int | None
    vehicle_id: int | None
    meter_fare: int
    rider_share: int
    subsidy_amount: int
    note: str = ""


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


@dataclass(frozen=True, slots=True)
class StatementDraft:
    """The lines in order (ride lines by boarding time, then adjustments), their totals, and how many
    fare-less rides of the period were left for a later close because their grace time has not passed."""

    lines: list[LineDraft]
    totals: Totals
    waiting_for_fare: int


def per_ride_cap(subsidy: Mapping[str, Any], unit: str, units_held: int) -> int:
    """The most the program pays for one ride, given what boarding held.

    - ticket: the tickets held at boarding (at most `max_tickets_per_ride`) times their value;
    - percent_capped / fixed_copay: `cap_per_ride`, or else `shared_cap_per_person`; a `fixed_copay`
      program with neither has no cap to pay, so 0;
    - a yen budget never pays more than the yen held at boarding.
    """
    formula = subsidy["formula"]
    if formula == "ticket":
        tickets = min(units_held, int(subsidy.get("max_tickets_per_ride") or units_held))
        cap = tickets * int(subsidy["ticket_value"])
    else:
        cap = int(subsidy.get("cap_per_ride") or subsidy.get("shared_cap_per_person") or 0)
    if unit == "yen":
        cap = min(cap, units_held)
    return max(cap, 0)


def _month_note(boarded_at: datetime) -> str:
    local = boarded_at.astimezone(JST)
    return f"{local.year}年{local.month}月の乗車"


def line_for(
    ride: RideRow, terms: ProgramTerms, *, period_start: datetime, now: datetime
) -> LineDraft | None:
    """The line one ride makes on a statement whose period starts at `period_start`, or None.

    None for a voided ride and for a ride still waiting for its fare within the grace time.
    """
    if ride.status == RideStatus.VOIDED:
        return None
    prior = ride.boarded_at < period_start
    if ride.status == RideStatus.COMPLETED and ride.meter_fare is not None:
        if ride.review_code is not None:
            return _offline_conflict_line(ride, terms, prior=prior)
        return LineDraft(
            kind=StatementLineKind.PRIOR_PERIOD if prior else StatementLineKind.RIDE,
            ride_id=ride.ride_id,
            boarded_at=ride.boarded_at,
            program_id=ride.program_id,
            vehicle_id=ride.vehicle_id,
            meter_fare=ride.meter_fare,
            rider_share=ride.rider_share or 0,
            subsidy_amount=ride.subsidy_amount or 0,
            note=_month_note(ride.boarded_at) if prior else "",
        )
    if now < ride.boarded_at + terms.fareless_after:
        return None
    if terms.fareless_rule == "cap":
        subsidy = per_ride_cap(terms.subsidy, ride.unit, ride.units_held)
        note = "運賃未入力のため制度の上限額で精算"
    else:
        subsidy = 0
        note = "運賃未入力のため助成なし"
    if ride.review_code is not None:
        note = f"{note}・要確認({ride.review_code})"
    if prior:
        note = f"{_month_note(ride.boarded_at)}・{note}"
    return LineDraft(
        kind=StatementLineKind.FARELESS,
        ride_id=ride.ride_id,
        boarded_at=ride.boarded_at,
        program_id=ride.program_id,
        vehicle_id=ride.vehicle_id,
        meter_fare=0,
        rider_share=0,
        subsidy_amount=subsidy,
        note=note,
    )


def _offline_conflict_line(ride: RideRow, terms: ProgramTerms, *, prior: bool) -> LineDraft:
    city_bears = terms.offline_loss_borne_by == "city"
    note = f"オフライン乗車・要確認({ride.review_code})・{'市負担' if city_bears else '事業者負担'}"
    if prior:
        note = f"{_month_note(ride.boarded_at)}・{note}"
    return LineDraft(
        kind=StatementLineKind.OFFLINE_CONFLICT,
        ride_id=ride.ride_id,
        boarded_at=ride.boarded_at,
        program_id=ride.program_id,
        vehicle_id=ride.vehicle_id,
        meter_fare=ride.meter_fare or 0,
        rider_share=ride.rider_share or 0,
        subsidy_amount=(ride.subsidy_amount or 0) if city_bears else 0,
        note=note,
    )


@dataclass(slots=True)
class RunningTotals:
    """A statement's sums as its lines come, one at a time: rides (every kind with a ride) count, fares
    and shares; adjustments apart. `totals_of` and `StatementBuilder` both add up through `add`."""

    ride_count: int = 0
    fare_total: int = 0
    rider_share_total: int = 0
    subsidy_total: int = 0
    adjustment_total: int = 0

    def add(self, line: LineDraft) -> None:
        """Count one line in the sums."""
        if line.kind == StatementLineKind.ADJUSTMENT:
            self.adjustment_total += line.subsidy_amount
            return
        if line.ride_id is not None:
            self.ride_count += 1
        self.fare_total += line.meter_fare
        self.rider_share_total += line.rider_share
        self.subsidy_total += line.subsidy_amount

    def totals(self) -> Totals:
        """The sums so far."""
        return Totals(
            self.ride_count,
            self.fare_total,
            self.rider_share_total,
            self.subsidy_total,
            self.adjustment_total,
        )


def totals_of(lines: Iterable[LineDraft]) -> Totals:
    """Sum the lines: rides (every kind with a ride) count, fares and shares; adjustments apart."""
    running = RunningTotals()
    for line in lines:
        running.add(line)
    return running.totals()


class StatementBuilder:
    """One operator's statement for one period, built one ride at a time, so a month of any size is
    never held in memory: feed it the candidate rides in boarding order (`line` returns each ride's line
    or None), then the adjustments; `totals` and `waiting_for_fare` are kept up to date as they come.

    Rides boarded on or after the period's end are ignored. Raises KeyError when a ride's program is
    missing from `programs`.
    """

    def __init__(self, programs: Mapping[int, ProgramTerms], *, period: date, now: datetime) -> None:
        self.programs = programs
        self.start, self.end = period_bounds(period)
        self.now = now
        self.running = RunningTotals()
        self.waiting_for_fare = 0

    def line(self, ride: RideRow) -> LineDraft | None:
        """The line `ride` makes on this statement (counted in the totals), or None."""
        if ride.boarded_at >= self.end:
            return None
        line = line_for(ride, self.programs[ride.program_id], period_start=self.start, now=self.now)
        if line is not None:
            self.running.add(line)
        elif ride.status == RideStatus.BOARDED and ride.boarded_at >= self.start:
            self.waiting_for_fare += 1
        return line

    def adjustment(self, line: LineDraft) -> LineDraft:
        """Count an adjustment line (kept as it is, after the ride lines)."""
        self.running.add(line)
        return line

    @property
    def totals(self) -> Totals:
        return self.running.totals()


def build_statement(
    rides: Iterable[RideRow],
    programs: Mapping[int, ProgramTerms],
    *,
    period: date,
    now: datetime,
    adjustments: Sequence[LineDraft] = (),
) -> StatementDraft:
    """Lines and totals for one operator and one period, as a list (see `StatementBuilder` to stream).

    `rides` are the operator's candidate rides: those boarded in the period, and those boarded earlier
    that are on no statement yet (the caller decides which earlier months qualify). Rides boarded on or
    after the period's end are ignored. Raises KeyError when a ride's program is missing from `programs`.
    """
    builder = StatementBuilder(programs, period=period, now=now)
    lines = [line for line in map(builder.line, rides) if line is not None]
    lines.sort(key=lambda item: (item.boarded_at or builder.start, item.ride_id or 0))
    lines.extend(builder.adjustment(line) for line in adjustments)
    return StatementDraft(lines=lines, totals=builder.totals, waiting_for_fare=builder.waiting_for_fare)
