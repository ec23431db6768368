from __future__ import annotations

from datetime import date

import pytest

from settlement.exports.era import to_japanese_era, to_japanese_era_month


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 11, 22), "令和8年11月22日"),
        (date(2019, 4, 30), "平成31年4月30日"),
        (date(2019, 5, 1), "令和元年5月1日"),
        (date(2020, 1, 1), "令和2年1月1日"),
        (date(1989, 1, 7), "昭和64年1月7日"),
        (date(1989, 1, 8), "平成元年1月8日"),
        (date(1926, 12, 24), "大正15年12月24日"),
        (date(1926, 12, 25), "昭和元年12月25日"),
        (date(1912, 7, 29), "明治45年7月29日"),
        (date(1912, 7, 30), "大正元年7月30日"),
        (date(1873, 1, 1), "明治6年1月1日"),
    ],
)
def test_date_is_written_in_the_era_it_falls_in(day: date, expected: str) -> None:
    assert to_japanese_era(day) == expected


def test_month_straddling_the_reiwa_boundary_is_named_by_its_first_day() -> None:
    assert to_japanese_era_month(date(2019, 4, 1)) == "平成31年4月"
    assert to_japanese_era_month(date(2019, 5, 1)) == "令和元年5月"


def test_settlement_month_in_era() -> None:
    assert to_japanese_era_month(date(2026, 10, 1)) == "令和8年10月"


def test_dates_before_the_gregorian_calendar_are_refused() -> None:
    with pytest.raises(ValueError, match="1873"):
        to_japanese_era(date(1872, 12, 31))
