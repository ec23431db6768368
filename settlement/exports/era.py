"""Japanese era (和暦) dates for documents people read.

Rule: an era begins on the day its emperor's reign began and its first year is written 元年. Dates
before 1873-01-01 (明治6年, when Japan adopted the Gregorian calendar) are refused, because the
lunisolar calendar used before then does not map day by day onto ``datetime.date``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final


@dataclass(frozen=True, slots=True)
class Era:
    name: str
    first_day: date


# Newest first, so the first era whose first day is not after the date is the right one.
ERAS: Final = (
    Era("令和", date(2019, 5, 1)),
    Era("平成", date(1989, 1, 8)),
    Era("昭和", date(1926, 12, 25)),
    Era("大正", date(1912, 7, 30)),
    Era("明治", date(1868, 10, 23)),
)

GREGORIAN_ADOPTED: Final = date(1873, 1, 1)


def era_year(d: date) -> tuple[str, int]:
    """The era and the year within it for ``d``: (``"令和"``, 8) for 2026-11-22.

    Raises ``ValueError`` for dates before 1873-01-01.
    """
    if d < GREGORIAN_ADOPTED:
        raise ValueError(f"{d.isoformat()} is before 1873-01-01; Japanese era dates are not supported there")
    for era in ERAS:
        if d >= era.first_day:
            return era.name, d.year - era.first_day.year + 1
    raise AssertionError("unreachable: every date from 1873 on falls in an era")  # pragma: no cover


def _year_text(year: int) -> str:
    return "元" if year == 1 else str(year)


def to_japanese_era(d: date) -> str:
    """``d`` written in the Japanese era: ``"令和8年11月22日"``; year 1 is ``元年``.

    Raises ``ValueError`` for dates before 1873-01-01.
    """
    name, year = era_year(d)
    return f"{name}{_year_text(year)}年{d.month}月{d.day}日"


def to_japanese_era_month(d: date) -> str:
    """The month of ``d`` in the Japanese era: ``"令和8年10月"``, named by the era of ``d`` itself.

    For a settlement period pass its first day, so April 2019 is ``平成31年4月`` and May 2019 is
    ``令和元年5月``. Raises ``ValueError`` for dates before 1873-01-01.
    """
    name, year = era_year(d)
    return f"{name}{_year_text(year)}年{d.month}月"
