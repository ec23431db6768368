from __future__ import annotations

from datetime import date

import pytest

from settlement.exports.calendar import is_bank_business_day, next_bank_business_day, payment_date


def test_a_plain_weekday_is_its_own_bank_business_day() -> None:
    assert next_bank_business_day(date(2026, 11, 20)) == date(2026, 11, 20)


def test_weekend_moves_to_monday() -> None:
    assert next_bank_business_day(date(2026, 11, 14)) == date(2026, 11, 16)


def test_weekend_before_a_holiday_monday_moves_to_tuesday() -> None:
    # 2026-11-23 (Mon) is 勤労感謝の日.
    assert next_bank_business_day(date(2026, 11, 21)) == date(2026, 11, 24)


def test_golden_week_with_substitute_holiday_is_skipped() -> None:
    # 2026: 5/3 (Sun) 憲法記念日, 5/4 みどりの日, 5/5 こどもの日, 5/6 振替休日.
    assert next_bank_business_day(date(2026, 5, 2)) == date(2026, 5, 7)
    assert not is_bank_business_day(date(2026, 5, 6))


def test_silver_week_citizens_holiday_is_skipped() -> None:
    # 2026: 9/21 敬老の日, 9/22 国民の休日, 9/23 秋分の日.
    assert next_bank_business_day(date(2026, 9, 19)) == date(2026, 9, 24)


def test_year_end_bank_holidays_are_skipped_even_on_weekdays() -> None:
    # 2025-12-31 (Wed) and 2026-01-02 (Fri) are weekdays but bank holidays; 1/3-1/4 is a weekend.
    assert next_bank_business_day(date(2025, 12, 31)) == date(2026, 1, 5)
    assert not is_bank_business_day(date(2026, 1, 2))


def test_december_30_is_a_bank_business_day_on_a_weekday() -> None:
    assert is_bank_business_day(date(2025, 12, 30))


def test_payment_defaults_to_the_20th_of_the_following_month() -> None:
    assert payment_date(date(2026, 10, 1)) == date(2026, 11, 20)


def test_payment_on_a_sunday_before_a_holiday_run_moves_past_it() -> None:
    # 2026-09-20 is a Sunday, followed by 9/21-9/23 holidays.
    assert payment_date(date(2026, 8, 1)) == date(2026, 9, 24)


def test_payment_for_december_falls_in_january_of_the_next_year() -> None:
    assert payment_date(date(2026, 12, 1)) == date(2027, 1, 20)


def test_day_beyond_month_end_uses_the_last_day_and_may_roll_into_the_next_month() -> None:
    # 2027-02-28 is a Sunday.
    assert payment_date(date(2027, 1, 1), day_of_month=31) == date(2027, 3, 1)


def test_payment_can_be_set_months_after_on_another_day() -> None:
    assert payment_date(date(2026, 10, 1), day_of_month=10, months_after=2) == date(2026, 12, 10)


@pytest.mark.parametrize(("day_of_month", "months_after"), [(0, 1), (32, 1), (20, -1)])
def test_impossible_payment_rules_are_refused(day_of_month: int, months_after: int) -> None:
    with pytest.raises(ValueError, match="must"):
        payment_date(date(2026, 10, 1), day_of_month=day_of_month, months_after=months_after)
