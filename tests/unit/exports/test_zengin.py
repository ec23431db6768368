from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.exports.calendar import payment_date
from settlement.exports.documents import Remitter, Transfer
from settlement.exports.zengin import (
    InvalidAmount,
    InvalidBankCode,
    InvalidBranchCode,
    InvalidField,
    InvalidKana,
    ZenginError,
    check_bank_account,
    to_zengin_kana,
    transfer_file,
)
from tests.unit.exports.factories import make_bank_account

PAY_DAY = date(2026, 11, 20)  # a Friday, no holiday


def make_remitter(**overrides: str) -> Remitter:
    remitter = Remitter(
        requester_code="0000123456",
        requester_name_kana="オバナザワシ",
        bank_code="0122",
        branch_code="451",
        account_type="ordinary",
        account_number="0012345",
    )
    return replace(remitter, **overrides)


def make_transfer(amount: int = 448_800, customer_code: str = "202610001", **account: str) -> Transfer:
    return Transfer(payee=make_bank_account(**account), amount=amount, customer_code=customer_code)


def records(data: bytes) -> list[bytes]:
    assert data.endswith(b"\r\n")
    return data[:-2].split(b"\r\n")


def test_file_matches_the_hand_checked_sample() -> None:
    transfers = [
        Transfer(
            payee=make_bank_account(
                bank_code="0508",
                branch_code="332",
                account_type="current",
                account_number="7654321",
                holder_kana="カ）オバナザワ　コウツウ",
            ),
            amount=448_800,
            customer_code="202610001",
        ),
        Transfer(
            payee=make_bank_account(
                bank_code="9900",
                branch_code="018",
                account_type="ordinary",
                account_number="1234567",
                holder_kana="タクシー　キョウディ",
            ),
            amount=12_000,
            customer_code="",
        ),
    ]
    header = (
        "1"  # データ区分: header
        + "21"  # 種別コード: 総合振込
        + "0"  # コード区分: JIS
        + "0000123456"  # 振込依頼人コード
        + ("ｵﾊﾞﾅｻﾞﾜｼ" + " " * 32)  # 振込依頼人名: 8 characters + 32 spaces
        + "1120"  # 振込指定日 MMDD
        + "0122"  # 仕向銀行番号: 山形銀行
        + ("ﾔﾏｶﾞﾀ" + " " * 10)  # 仕向銀行名: 5 + 10
        + "451"  # 仕向支店番号: 尾花沢支店
        + ("ｵﾊﾞﾅｻﾞﾜ" + " " * 8)  # 仕向支店名: 7 + 8
        + "1"  # 預金種目: 普通
        + "0012345"  # 口座番号
        + " " * 17  # ダミー
    )
    first = (
        "2"  # データ区分: data
        + "0508"  # 被仕向銀行番号: きらやか銀行
        + ("ｷﾗﾔｶ" + " " * 11)  # 被仕向銀行名: 4 + 11
        + "332"  # 被仕向支店番号
        + ("ｵﾊﾞﾅｻﾞﾜ" + " " * 8)  # 被仕向支店名: 7 + 8
        + "0000"  # 手形交換所番号: unused
        + "2"  # 預金種目: 当座
        + "7654321"  # 口座番号
        + ("ｶ)ｵﾊﾞﾅｻﾞﾜ ｺｳﾂｳ" + " " * 16)  # 受取人名: 14 + 16 (full-width （ and space converted)
        + "0000448800"  # 振込金額
        + "0"  # 新規コード
        + "0202610001"  # 顧客コード1
        + "0000000000"  # 顧客コード2: unused
        + "7"  # 振込指定区分: 電信
        + " "  # 識別表示: no EDI
        + " " * 7  # ダミー
    )
    second = (
        "2"  # データ区分: data
        + "9900"  # 被仕向銀行番号: ゆうちょ銀行
        + ("ﾕｳﾁﾖ" + " " * 11)  # 被仕向銀行名: 4 + 11
        + "018"  # 被仕向支店番号: 〇一八
        + ("ｾﾞﾛｲﾁﾊﾁ" + " " * 8)  # 被仕向支店名: 7 + 8
        + "0000"  # 手形交換所番号: unused
        + "1"  # 預金種目: 普通
        + "1234567"  # 口座番号
        + ("ﾀｸｼ- ｷﾖｳﾃﾞｲ" + " " * 19)  # 受取人名: 11 + 19 (ー → -, small ョ ィ → large)
        + "0000012000"  # 振込金額
        + "0"  # 新規コード
        + "0000000000"  # 顧客コード1: none given
        + "0000000000"  # 顧客コード2: unused
        + "7"  # 振込指定区分: 電信
        + " "  # 識別表示: no EDI
        + " " * 7  # ダミー
    )
    trailer = (
        "8"  # データ区分: trailer
        + "000002"  # 合計件数
        + "000000460800"  # 合計金額: 448,800 + 12,000
        + " " * 101  # ダミー
    )
    end = "9" + " " * 119  # データ区分: end, ダミー
    expected_records = [header, first, second, trailer, end]
    assert all(len(record) == 120 for record in expected_records)  # checks the hand counting
    expected = b"".join(record.encode("cp932") + b"\r\n" for record in expected_records)

    assert transfer_file(make_remitter(), transfers, payment_date=PAY_DAY) == expected


def test_every_record_is_120_bytes_of_shift_jis_followed_by_crlf() -> None:
    data = transfer_file(make_remitter(), [make_transfer(), make_transfer(1)], payment_date=PAY_DAY)
    assert [len(record) for record in records(data)] == [120] * 5
    assert [record[:1] for record in records(data)] == [b"1", b"2", b"2", b"8", b"9"]
    assert "ｵﾊﾞﾅｻﾞﾜｼ" in data.decode("cp932")


@settings(max_examples=40)
@given(st.lists(st.integers(min_value=1, max_value=9_999_999_999), min_size=1, max_size=30))
def test_trailer_counts_and_totals_the_data_records(amounts: list[int]) -> None:
    data = transfer_file(make_remitter(), [make_transfer(a) for a in amounts], payment_date=PAY_DAY)
    trailer = records(data)[-2]
    assert trailer[1:7] == f"{len(amounts):06d}".encode()
    assert trailer[7:19] == f"{sum(amounts):012d}".encode()
    assert sum(int(record[80:90]) for record in records(data)[1:-2]) == sum(amounts)


def test_payment_date_from_the_calendar_goes_into_the_header() -> None:
    pay_day = payment_date(date(2026, 8, 1))  # 9/20 is a Sunday before three holidays
    header = records(transfer_file(make_remitter(), [make_transfer()], payment_date=pay_day))[0]
    assert header[54:58] == b"0924"  # after 1+2+1+10+40 bytes


def test_payment_date_on_a_holiday_is_refused() -> None:
    with pytest.raises(ZenginError, match="2026-11-23"):
        transfer_file(make_remitter(), [make_transfer()], payment_date=date(2026, 11, 23))


def test_unknown_bank_code_is_refused_naming_the_code() -> None:
    with pytest.raises(InvalidBankCode, match="0999") as raised:
        transfer_file(make_remitter(), [make_transfer(bank_code="0999")], payment_date=PAY_DAY)
    assert raised.value.bank_code == "0999"


def test_unknown_branch_code_is_refused_naming_bank_and_branch() -> None:
    with pytest.raises(InvalidBranchCode, match="999") as raised:
        transfer_file(make_remitter(), [make_transfer(branch_code="999")], payment_date=PAY_DAY)
    assert (raised.value.bank_code, raised.value.branch_code) == ("0122", "999")


def test_remitter_bank_is_checked_too() -> None:
    with pytest.raises(InvalidBankCode, match="9999"):
        transfer_file(make_remitter(bank_code="9999"), [make_transfer()], payment_date=PAY_DAY)


@pytest.mark.parametrize("code", ["122", "01220", "０１２２", "abcd"])
def test_malformed_bank_code_is_refused(code: str) -> None:
    with pytest.raises(InvalidBankCode):
        transfer_file(make_remitter(), [make_transfer(bank_code=code)], payment_date=PAY_DAY)


@pytest.mark.parametrize("amount", [0, -1, 10_000_000_000])
def test_amount_outside_one_yen_to_ten_digits_is_refused(amount: int) -> None:
    with pytest.raises(InvalidAmount, match="1件目"):
        transfer_file(make_remitter(), [make_transfer(amount)], payment_date=PAY_DAY)


def test_largest_ten_digit_amount_is_accepted() -> None:
    data = transfer_file(make_remitter(), [make_transfer(9_999_999_999)], payment_date=PAY_DAY)
    assert records(data)[1][80:90] == b"9999999999"


def test_total_beyond_twelve_digits_is_refused() -> None:
    transfers = [make_transfer(9_999_999_999)] * 101
    with pytest.raises(ZenginError, match="合計金額"):
        transfer_file(make_remitter(), transfers, payment_date=PAY_DAY)


def test_file_without_transfers_is_refused() -> None:
    with pytest.raises(ZenginError, match="1 件もありません"):
        transfer_file(make_remitter(), [], payment_date=PAY_DAY)


def test_kanji_holder_name_is_refused_naming_the_characters() -> None:
    with pytest.raises(InvalidKana, match="「尾」"):
        transfer_file(make_remitter(), [make_transfer(holder_kana="尾花沢交通")], payment_date=PAY_DAY)


def test_holder_name_longer_than_thirty_characters_is_refused_not_cut() -> None:
    with pytest.raises(InvalidKana, match="31 文字"):
        transfer_file(make_remitter(), [make_transfer(holder_kana="ア" * 31)], payment_date=PAY_DAY)


def test_remitter_name_longer_than_forty_characters_is_refused() -> None:
    with pytest.raises(InvalidKana, match="振込依頼人名"):
        transfer_file(make_remitter(requester_name_kana="ア" * 41), [make_transfer()], payment_date=PAY_DAY)


@pytest.mark.parametrize("number", ["123456", "12345678", "12345a7"])
def test_account_number_that_is_not_seven_digits_is_refused(number: str) -> None:
    with pytest.raises(InvalidField, match="口座番号"):
        transfer_file(make_remitter(), [make_transfer(account_number=number)], payment_date=PAY_DAY)


def test_requester_code_that_is_not_ten_digits_is_refused() -> None:
    with pytest.raises(InvalidField, match="振込依頼人コード"):
        transfer_file(make_remitter(requester_code="123456789"), [make_transfer()], payment_date=PAY_DAY)


def test_unknown_account_type_is_refused() -> None:
    with pytest.raises(InvalidField, match="預金種目"):
        transfer_file(make_remitter(), [make_transfer(account_type="savings")], payment_date=PAY_DAY)


def test_customer_code_longer_than_ten_digits_is_refused() -> None:
    with pytest.raises(InvalidField, match="顧客コード"):
        transfer_file(make_remitter(), [make_transfer(customer_code="12345678901")], payment_date=PAY_DAY)


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("タクシー", "ﾀｸｼ-"),
        ("ｶﾞｯｺｳ", "ｶﾞﾂｺｳ"),
        ("しょうない", "ｼﾖｳﾅｲ"),
        ("ヴィラ", "ｳﾞｲﾗ"),
        ("ｍｙｔａｘｉ　１", "MYTAXI 1"),
        ("abc・def", "ABC.DEF"),
        ("ペ（カ", "ﾍﾟ(ｶ"),
        ("  ヤマダ ハナコ ", "ﾔﾏﾀﾞ ﾊﾅｺ"),
    ],
)
def test_names_are_converted_to_zengin_half_width_kana(given: str, written: str) -> None:
    assert to_zengin_kana(given, field="受取人名", max_length=30) == written


@pytest.mark.parametrize("name", ["ヲカ", "ア,イ", "ア&イ", "", "   "])
def test_characters_banks_refuse_are_not_passed_through(name: str) -> None:
    with pytest.raises(InvalidKana, match="受取人名"):
        to_zengin_kana(name, field="受取人名", max_length=30)


def test_registered_account_can_be_checked_ahead_of_payment() -> None:
    assert check_bank_account(make_bank_account()) == "ｶ)ｵﾊﾞﾅｻﾞﾜｺｳﾂｳ"
    with pytest.raises(InvalidBranchCode):
        check_bank_account(make_bank_account(branch_code="000"))
