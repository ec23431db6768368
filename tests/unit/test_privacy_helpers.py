from __future__ import annotations

from tests.privacy import SUITE_SECRETS, SecretSet, findings_in, individual_numbers_in, is_individual_number


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


def test_uuid_digit_groups_and_mixed_separators_are_not_numbers() -> None:
    # An Idempotency-Key whose leading groups are all digits: "62850876-3076" once tripped the guard.
    assert is_individual_number("628508763076")
    assert individual_numbers_in("62850876-3076-4a1b-9c2d-0123456789ab") == []
    # the middle groups of a UUID, 4-4-4 between hyphens, valid as a number on their own
    assert is_individual_number("307641289009")
    assert individual_numbers_in("abcdef12-3076-4128-9009-0123456789ab") == []
    assert individual_numbers_in("鍵 62850876-3076 です") == []
    # the same twelve digits written down as a number are still found
    assert individual_numbers_in("番号 6285-0876-3076") == ["6285-0876-3076"]
    assert individual_numbers_in("番号 628508763076") == ["628508763076"]


# --- the secrets the suite types ------------------------------------------------------------------


def test_distinctive_secrets_are_found_anywhere_and_common_pins_only_as_a_whole_value() -> None:
    secrets = SecretSet(anywhere=("QZ7K2M9",), as_value=("1234",))
    assert secrets.find("pw=xQZ7K2M9y") == ["QZ7K2M9"]
    assert secrets.find('{"pin": "1234"}') == ["1234"]
    assert secrets.find("{'pin': '1234'}") == ["1234"]
    assert secrets.find("pin=1234&next=1") == ["1234"]
    assert secrets.find("1234") == ["1234"]
    assert secrets.find("山形県尾花沢市大字玉野1234番地") == []
    assert secrets.find('{"amount": 1234, "account": "1234567"}') == []
    assert secrets.find("POST /api/v1/rides 201 1234") == []


def test_a_distinctive_pin_is_found_standing_alone_but_not_inside_a_hash() -> None:
    secrets = SecretSet(anywhere=("4739",))
    assert secrets.find("暗証番号 4739 を入力") == ["4739"]
    assert secrets.find("pin=4739") == ["4739"]
    assert secrets.find("scrypt:32768:8:1$Xy12$9f04739ab2") == []
    assert secrets.find("ab+4739/cd") == []


def test_every_secret_constant_of_the_suite_is_scanned_for() -> None:
    import bench.rides.seed as bench_seed
    import tests.unit.auth_mock.conftest as auth_mock_fixtures
    import tests.unit.driver_terminal.fakes as terminal_fakes
    from tests import factories
    from voucher_api import demo

    constants = {
        factories.CARD_PIN,
        factories.CARD_PASSWORD,
        factories.PASSWORD,
        demo.DEMO_CARD_PIN,
        demo.DEMO_CARD_PASSWORD,
        demo.DEMO_STAFF_PASSWORD,
        auth_mock_fixtures.PIN,
        auth_mock_fixtures.PASSWORD,
        terminal_fakes.PIN,
        bench_seed.CARD_PIN,
        bench_seed.CARD_PASSWORD,
        "2580",  # bench/identity's PIN (a __main__ module, not imported here)
    }
    assert constants <= set(SUITE_SECRETS)


def test_a_planted_number_or_pin_is_reported_with_where_it_was() -> None:
    assert findings_in("番号 123456789018", SUITE_SECRETS, "residents.address") == [
        "residents.address: a 12-digit number passing the My Number check: 123456789018"
    ]
    assert findings_in(f'{{"pin": "{demo_pin()}"}}', SUITE_SECRETS, "audit_entries.details") == [
        f"audit_entries.details: a card secret: {demo_pin()}"
    ]
    assert findings_in("尾花沢市若葉町一丁目1番1号", SUITE_SECRETS, "residents.address") == []


def demo_pin() -> str:
    from voucher_api.demo import DEMO_CARD_PIN

    return DEMO_CARD_PIN
