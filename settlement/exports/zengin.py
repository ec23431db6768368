"""The Zengin (全銀協) 総合振込 bulk transfer file the city uploads to its bank to pay operators.

File layout: a header record (データ区分 1), one data record (2) per transfer, a trailer (8) and an end
record (9). Every record is exactly 120 bytes. Text is half-width katakana, upper-case letters,
digits and a few symbols, encoded in Shift_JIS (cp932, whose single-byte half of the table is the
JIS X 0201 set the format calls "JIS", コード区分 0). Each record is followed by CRLF (122 bytes a
line): the form most bank upload screens accept and the one a person can open in a text editor.
Numeric fields are right-aligned and zero-filled, text fields left-aligned and space-filled.

Header (1): 種別コード 21 | コード区分 0 | 振込依頼人コード N10 | 振込依頼人名 C40 | 振込指定日 MMDD |
  仕向銀行番号 N4 | 仕向銀行名 C15 | 仕向支店番号 N3 | 仕向支店名 C15 | 預金種目 N1 | 口座番号 N7 |
  ダミー C17.
Data (2): 被仕向銀行番号 N4 | 被仕向銀行名 C15 | 被仕向支店番号 N3 | 被仕向支店名 C15 |
  手形交換所番号 N4 (unused, 0000) | 預金種目 N1 | 口座番号 N7 | 受取人名 C30 | 振込金額 N10 |
  新規コード N1 (0) | 顧客コード1 N10 | 顧客コード2 N10 (unused, zeros) | 振込指定区分 N1 (7 = 電信) |
  識別表示 C1 (space: no EDI) | ダミー C7.
Trailer (8): 合計件数 N6 | 合計金額 N12 | ダミー C101.
End (9): ダミー C119.

Bank and branch names are not typed by anyone: they are looked up from ``zengin-code`` by code, which
also proves the codes exist. Those names are cut to 15 characters (banks route by code; the name is
informational). A payee's or remitter's name is never cut: a name that does not fit is refused,
because a shortened holder name can make the receiving bank reject the transfer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import date
from typing import Final

import zengin_code

from settlement.exports.calendar import is_bank_business_day
from settlement.exports.documents import BankAccount, Remitter, Transfer

RECORD_LENGTH: Final = 120
LINE_END: Final = b"\r\n"
ENCODING: Final = "cp932"

MAX_AMOUNT: Final = 9_999_999_999
MAX_RECORDS: Final = 999_999
MAX_FILE_TOTAL: Final = 999_999_999_999

ACCOUNT_TYPE_CODES: Final[dict[str, str]] = {"ordinary": "1", "current": "2"}

TRANSFER_KIND_TELEGRAPHIC: Final = "7"

_HALF_KANA: Final = "".join(chr(c) for c in range(0xFF71, 0xFF9E))  # ｱ … ﾝ
ALLOWED_CHARACTERS: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" + _HALF_KANA + "\uff9e\uff9f" + " ()-./\\\uff62\uff63"
)
"""Characters Zengin accepts in names: digits, A–Z, large half-width kana ｱ–ﾝ, ﾞ ﾟ, space and ( ) - . / \\ ｢ ｣.

Left out on purpose, as banks commonly refuse them: small kana (ｧ ｯ ｬ …, converted to large), the
long-vowel mark ｰ (converted to -), ｦ, the comma, and the middle dot (converted to .).
"""

_SMALL_TO_LARGE: Final = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")

# Applied after NFKC, which has already turned full-width ASCII and half-width kana into their
# standard forms; these turn the few marks Zengin spells differently into the form it accepts.
_MARKS: Final = str.maketrans(
    {"ー": "-", "−": "-", "‐": "-", "・": ".", "「": "\uff62", "」": "\uff63", "¥": "\\"}
)


def _full_to_half_kana() -> dict[str, str]:
    table: dict[str, str] = {}
    for code in range(0xFF66, 0xFFA0):
        half = chr(code)
        full = unicodedata.normalize("NFKC", half)
        table[full] = half
    # NFD splits ガ into カ + U+3099; the combining marks become the half-width ﾞ and ﾟ.
    table["\u3099"] = "\uff9e"
    table["\u309a"] = "\uff9f"
    return table


_TO_HALF_WIDTH: Final = str.maketrans(_full_to_half_kana())


class ZenginError(ValueError):
    """A transfer file cannot be written; the message (Japanese) says which value and why."""


class InvalidBankCode(ZenginError):
    """A bank code that is not four digits or is not in the Zengin bank list."""

    def __init__(self, bank_code: str) -> None:
        self.bank_code = bank_code
        super().__init__(f"金融機関コード {bank_code!r} は全銀協の金融機関コード一覧にありません")


class InvalidBranchCode(ZenginError):
    """A branch code that is not three digits or is not a branch of its bank."""

    def __init__(self, bank_code: str, branch_code: str) -> None:
        self.bank_code = bank_code
        self.branch_code = branch_code
        super().__init__(f"支店コード {branch_code!r} は金融機関 {bank_code} の支店コード一覧にありません")


class InvalidAmount(ZenginError):
    """A transfer amount that is not 1 to 9,999,999,999 yen."""


class InvalidKana(ZenginError):
    """A name with characters Zengin does not accept, or longer than its field."""


class InvalidField(ZenginError):
    """A code, number or account type of the wrong form or length."""


def to_zengin_kana(text: str, *, field: str, max_length: int) -> str:
    """``text`` in the characters a Zengin name field accepts, e.g. ``"タクシー"`` → ``"ﾀｸｼ-"``.

    Converts full-width katakana and hiragana to half-width katakana (voiced kana become two
    characters, ｶﾞ), small kana to large (ｯ → ﾂ), latin letters to upper case, full-width ASCII to
    half-width, the long-vowel mark to ``-`` and the middle dot to ``.``; trims surrounding spaces.

    Raises ``InvalidKana`` naming ``field`` if the result is empty, has a character Zengin forbids
    (kanji, ｦ, comma, …) or is longer than ``max_length`` half-width characters.
    """
    converted = unicodedata.normalize("NFKC", text).strip().upper()
    converted = "".join(chr(ord(ch) + 0x60) if "ぁ" <= ch <= "ゖ" else ch for ch in converted)
    converted = converted.translate(_SMALL_TO_LARGE).translate(_MARKS)
    converted = unicodedata.normalize("NFD", converted).translate(_TO_HALF_WIDTH)
    if not converted:
        raise InvalidKana(f"{field} が空です")
    refused = sorted({ch for ch in converted if ch not in ALLOWED_CHARACTERS})
    if refused:
        shown = "、".join(f"「{ch}」" for ch in refused)
        raise InvalidKana(f"{field} {text!r} に全銀フォーマットで使えない文字があります: {shown}")
    if len(converted) > max_length:
        raise InvalidKana(
            f"{field} {text!r} は半角 {len(converted)} 文字で、上限の {max_length} 文字を超えています"
        )
    return converted


def _digits(value: str, length: int, field: str) -> str:
    if len(value) != length or not value.isascii() or not value.isdigit():
        raise InvalidField(f"{field} は半角数字 {length} 桁で指定してください({value!r})")
    return value


def _account_type_code(account_type: str, field: str) -> str:
    try:
        return ACCOUNT_TYPE_CODES[account_type]
    except KeyError:
        raise InvalidField(
            f"{field} {account_type!r} は扱えません(ordinary=普通 または current=当座)"
        ) from None


def _bank_and_branch(bank_code: str, branch_code: str) -> tuple[str, str]:
    """Half-width kana names of a bank and its branch, proving both codes exist."""
    if len(bank_code) != 4 or not bank_code.isascii() or not bank_code.isdigit():
        raise InvalidBankCode(bank_code)
    try:
        bank = zengin_code.Bank.all[bank_code]
    except KeyError:
        raise InvalidBankCode(bank_code) from None
    if len(branch_code) != 3 or not branch_code.isascii() or not branch_code.isdigit():
        raise InvalidBranchCode(bank_code, branch_code)
    try:
        branch = bank.branches[branch_code]
    except KeyError:
        raise InvalidBranchCode(bank_code, branch_code) from None
    return _directory_name(str(bank.kana)), _directory_name(str(branch.kana))


def _directory_name(kana: str) -> str:
    # zengin-code's names are already in the allowed set; anything odd becomes a space rather than
    # blocking a payment over an informational field.
    name = unicodedata.normalize("NFKC", kana).translate(_MARKS)
    name = unicodedata.normalize("NFD", name).translate(_TO_HALF_WIDTH)
    return "".join(ch if ch in ALLOWED_CHARACTERS else " " for ch in name)[:15]


def _text_field(value: str, length: int) -> str:
    return value[:length].ljust(length)


def check_bank_account(account: BankAccount, *, field: str = "振込先口座") -> str:
    """Check that ``account`` can be paid by Zengin transfer and return its holder name as written.

    Use it where an operator's account is registered, to refuse a bad account long before month end.
    Raises ``InvalidBankCode``, ``InvalidBranchCode``, ``InvalidField`` (account type, a number that is
    not 7 digits) or ``InvalidKana`` (holder name).
    """
    _bank_and_branch(account.bank_code, account.branch_code)
    _account_type_code(account.account_type, f"{field}の預金種目")
    _digits(account.account_number, 7, f"{field}の口座番号")
    return to_zengin_kana(account.holder_kana, field=f"{field}の口座名義", max_length=30)


def _encode(record: str) -> bytes:
    encoded = record.encode(ENCODING)
    # Every character allowed is one byte in cp932; a different length means a bug, not bad input.
    if len(encoded) != RECORD_LENGTH:
        raise AssertionError(f"Zengin record is {len(encoded)} bytes, expected {RECORD_LENGTH}")
    return encoded + LINE_END


def _header_record(remitter: Remitter, payment_date: date) -> bytes:
    bank_name, branch_name = _bank_and_branch(remitter.bank_code, remitter.branch_code)
    return _encode(
        "1"
        + "21"
        + "0"
        + _digits(remitter.requester_code, 10, "振込依頼人コード")
        + _text_field(to_zengin_kana(remitter.requester_name_kana, field="振込依頼人名", max_length=40), 40)
        + f"{payment_date.month:02d}{payment_date.day:02d}"
        + remitter.bank_code
        + _text_field(bank_name, 15)
        + remitter.branch_code
        + _text_field(branch_name, 15)
        + _account_type_code(remitter.account_type, "振込依頼人の預金種目")
        + _digits(remitter.account_number, 7, "振込依頼人の口座番号")
        + " " * 17
    )


def _customer_code(value: str, position: int) -> str:
    if value == "":
        return "0" * 10
    if len(value) > 10 or not value.isascii() or not value.isdigit():
        raise InvalidField(f"{position}件目の顧客コードは半角数字 10 桁以内で指定してください({value!r})")
    return value.zfill(10)


def _data_record(transfer: Transfer, position: int) -> bytes:
    payee = transfer.payee
    field = f"{position}件目の振込先"
    holder = check_bank_account(payee, field=field)
    bank_name, branch_name = _bank_and_branch(payee.bank_code, payee.branch_code)
    if isinstance(transfer.amount, bool) or not isinstance(transfer.amount, int):
        raise InvalidAmount(f"{position}件目の振込金額は整数の円で指定してください({transfer.amount!r})")
    if not 1 <= transfer.amount <= MAX_AMOUNT:
        raise InvalidAmount(
            f"{position}件目の振込金額 {transfer.amount:,} 円は 1 円以上 {MAX_AMOUNT:,} 円以下にしてください"
        )
    return _encode(
        "2"
        + payee.bank_code
        + _text_field(bank_name, 15)
        + payee.branch_code
        + _text_field(branch_name, 15)
        + "0000"
        + ACCOUNT_TYPE_CODES[payee.account_type]
        + payee.account_number
        + _text_field(holder, 30)
        + f"{transfer.amount:010d}"
        + "0"
        + _customer_code(transfer.customer_code, position)
        + "0" * 10
        + TRANSFER_KIND_TELEGRAPHIC
        + " "
        + " " * 7
    )


def transfer_file(remitter: Remitter, transfers: Sequence[Transfer], *, payment_date: date) -> bytes:
    """The 総合振込 file paying each of ``transfers`` from the remitter's account on ``payment_date``.

    Rules: at least one and at most 999,999 transfers; each amount 1–9,999,999,999 yen; the file total
    at most 999,999,999,999 yen (the trailer's 12 digits); every bank and branch code exists in
    zengin-code; account numbers are 7 digits; names are convertible to Zengin kana and fit their
    field; the payment date is a bank business day (see ``calendar.payment_date``).

    Raises ``InvalidBankCode``, ``InvalidBranchCode``, ``InvalidAmount``, ``InvalidKana``,
    ``InvalidField`` or ``ZenginError`` (no transfers, too many, total too large, not a business day),
    each naming the offending value; nothing is returned unless the whole file is valid.
    """
    if not transfers:
        raise ZenginError("振込データが 1 件もありません")
    if len(transfers) > MAX_RECORDS:
        raise ZenginError(f"振込データは {MAX_RECORDS:,} 件までです({len(transfers):,} 件)")
    if not is_bank_business_day(payment_date):
        raise ZenginError(f"振込指定日 {payment_date.isoformat()} は銀行営業日ではありません")
    header = _header_record(remitter, payment_date)
    data = [_data_record(transfer, position) for position, transfer in enumerate(transfers, start=1)]
    total = sum(transfer.amount for transfer in transfers)
    if total > MAX_FILE_TOTAL:
        raise ZenginError(
            f"合計金額 {total:,} 円が全銀フォーマットの上限 {MAX_FILE_TOTAL:,} 円を超えています"
        )
    trailer = _encode("8" + f"{len(transfers):06d}" + f"{total:012d}" + " " * 101)
    end = _encode("9" + " " * 119)
    return header + b"".join(data) + trailer + end
