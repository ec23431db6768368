"""Bank business days and the payment date of a statement.

A Japanese bank business day (銀行営業日) is a weekday that is not a national holiday (国民の祝日,
including 振替休日 and 国民の休日, as computed by ``jpholiday``) and not one of the banks' year-end
and New Year holidays, 12/31 to 1/3 (銀行法施行令 第5条).
"""

from __future__ import annotations

import calendar as _gregorian
from datetime import date, timedelta
from typing import Final

import jpholiday

BANK_YEAR_END_HOLIDAYS: Final = frozenset({(12, 31), (1, 1), (1, 2), (1, 3)})


def is_bank_business_day(d: date) -> bool:
    """Whether banks settle transfers on ``d``: not Saturday/Sunday, not a national holiday, not 12/31–1/3."""
    if d.weekday() >= 5:
        return False
    if (d.month, d.day) in BANK_YEAR_END_HOLIDAYS:
        return False
    return not jpholiday.is_holiday(d)


def next_bank_business_day(d: date) -> date:
    """``d`` itself if it is a bank business day, otherwise the first bank business day after it."""
    while not is_bank_business_day(d):
        d += timedelta(days=1)
    return d


def payment_date(period: date, *, day_of_month: int = 20, months_after: int = 1) -> date:
    """The day the city pays a statement for the month of ``period``.

    Rule: take the ``day_of_month``-th day of the month ``months_after`` months after the period's
    month (default: the 20th of the following month). If that month is shorter, its last day is
    used (31 in a 30-day month means the 30th). The date is then moved *forward* to the next bank
    business day (a payment is never earlier than promised), which can carry it into the next month.

    Raises ``ValueError`` if ``day_of_month`` is not 1–31 or ``months_after`` is negative.
    """
    if not 1 <= day_of_month <= 31:
        raise ValueError(f"day_of_month must be 1–31, got {day_of_month}")
    if months_after < 0:
        raise ValueError(f"months_after must not be negative, got {months_after}")
    month_index = period.year * 12 + (period.month - 1) + months_after
    year, month = divmod(month_index, 12)
    month += 1
    last_day = _gregorian.monthrange(year, month)[1]
    return next_bank_business_day(date(year, month, min(day_of_month, last_day)))
