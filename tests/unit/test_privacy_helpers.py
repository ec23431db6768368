from __future__ import annotations

from tests.privacy import individual_numbers_in, is_individual_number


def test_check_digit_accepts_a_valid_number_and_rejects_its_neighbours() -> None:
    # 12345678901: weights from the right 2..7 then 2..6 give 212; 212 mod 11 = 3, so 11 - 3 = 8.
    assert is_individual_number("123456789018")
    assert not is_individual_number("123456789017")
    assert not is_individual_number("12345678901")


def test_finds_only_free_standing_twelve_digit_numbers() -> None:
    assert individual_numbers_in("番号 123456789018 です") == ["123456789018"]
    assert individual_numbers_in("1234567890180") == []
    assert individual_numbers_in("全角１２３４５６７８９０１８") == ["１２３４５６７８９０１８"]


def test_grouped_numbers_are_found_and_hex_digits_are_not() -> None:
    assert individual_numbers_in("個人番号 1234-5678-9018") == ["1234-5678-9018"]
    assert individual_numbers_in("1234 5678 9018") == ["1234 5678 9018"]
    # a SHA-256 fingerprint that happens to contain a valid-looking run of twelve digits
    assert individual_numbers_in("9f3a014676278932bc77") == []
