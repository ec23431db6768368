"""Time for the domain: stored as aware UTC, reasoned about in Japan time.

Services take a `Clock` so tests fix time instead of patching `datetime.now()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that stands still until told to move; for tests and simulations."""

    current: datetime = field(default_factory=lambda: datetime(2026, 10, 15, 1, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current = self.current + delta

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.current = instant.astimezone(UTC)


def japan_date(instant: datetime) -> date:
    """The calendar date in Japan at `instant`."""
    return instant.astimezone(JST).date()


def japan_midnight(day: date) -> datetime:
    """00:00 Japan time on `day`, as aware UTC."""
    return datetime.combine(day, time.min, tzinfo=JST).astimezone(UTC)


def fiscal_year_of(day: date) -> int:
    """Japanese fiscal year (年度): April 1 to March 31, named by the year it starts in."""
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_start(fiscal_year: int) -> date:
    return date(fiscal_year, 4, 1)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    first = day.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def previous_month(day: date) -> date:
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)
