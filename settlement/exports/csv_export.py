"""CSV exports of statements for finance staff, made to open cleanly in Excel.

Format (every file): UTF-8 with a byte-order mark (so Excel detects UTF-8), CRLF line ends, a Japanese
header row, fields quoted only when needed (commas, quotes, line breaks), integer yen without
separators, times in Japan time as ``YYYY/MM/DD HH:MM``.

Three files, for three jobs a finance clerk has:

- a statement's CSV: its lines, then a blank row and its totals as label/value rows (``totals_rows``),
  to check against the PDF;
- the month's line CSV: every line of every statement of a month, one row per line, with the operator
  on each row and *no* total rows, so a pivot table or SUM over a column is right;
- ``month_summary_csv``: one row per statement (operator) with its totals and bank account, and a last
  ``合計`` row: the list the clerk approves and pays from.

The line rows of the first two are formatted by the database as it streams them (settlement.documents,
COPY on PostgreSQL), a million lines in seconds; this module gives them their header (``LINE_HEADER``),
their line ends and totals (``csv_rows``, ``totals_rows``) and the rules of their cells.

Text cells that begin with ``= + - @`` (or a tab/CR) get a leading apostrophe so Excel does not run
them as formulas (CSV injection). Known limitation: Excel drops leading zeros of code columns
(``062120`` shows as ``62120``) when it opens a CSV directly; the file itself keeps them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Final

from settlement.exports.documents import ACCOUNT_TYPE_LABELS, JST, STATUS_LABELS, StatementDoc

BOM: Final = "\ufeff".encode()

LINE_HEADER: Final = (
    "対象年月",
    "精算書番号",
    "市区町村コード",
    "事業者コード",
    "事業者名",
    "明細番号",
    "区分",
    "乗車日時",
    "乗車番号",
    "制度",
    "地区",
    "車両",
    "メーター運賃(円)",
    "利用者負担額(円)",
    "助成額(円)",
    "備考",
)

SUMMARY_HEADER: Final = (
    "対象年月",
    "市区町村コード",
    "事業者コード",
    "事業者名",
    "精算書番号",
    "状態",
    "乗車件数",
    "運賃合計(円)",
    "利用者負担合計(円)",
    "助成額合計(円)",
    "調整額(円)",
    "支払額(円)",
    "金融機関コード",
    "支店コード",
    "預金種目",
    "口座番号",
    "口座名義(カナ)",
)

FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
"""A text cell starting with one of these gets a leading apostrophe: Excel would run it as a formula,
even from a CSV (CSV injection). The line CSV, formatted by the database, guards with the same list."""


def cell_text(value: str) -> str:
    """A text cell guarded against Excel formulas (see FORMULA_TRIGGERS)."""
    if value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def _jst_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")


def period_text(period: date) -> str:
    """The 対象年月 cell: `2026/10`."""
    return f"{period.year:04d}/{period.month:02d}"


def csv_rows(rows: Iterable[Sequence[object]]) -> bytes:
    """Rows as CSV bytes the way every file here is written: CRLF line ends, fields quoted only when
    needed, None as an empty cell. No BOM: that goes once at the start of a file."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerows(rows)
    return buffer.getvalue().encode("utf-8")


def totals_rows(doc: StatementDoc) -> list[list[str | int]]:
    """A statement's totals as label/value rows, as its CSV ends."""
    return [
        ["乗車件数", doc.ride_count],
        ["運賃合計(円)", doc.fare_total],
        ["利用者負担合計(円)", doc.rider_share_total],
        ["助成額合計(円)", doc.subsidy_total],
        ["調整額(円)", doc.adjustment_total],
        ["支払額(円)", doc.amount_due],
    ]


def month_summary_csv(docs: Sequence[StatementDoc]) -> bytes:
    """One row per statement with its totals and payee account, then a ``合計`` row over all of them."""
    rows: list[Sequence[object]] = [SUMMARY_HEADER]
    for doc in docs:
        bank = doc.bank
        rows.append(
            [
                period_text(doc.period),
                cell_text(doc.municipality_code),
                cell_text(doc.operator_code),
                cell_text(doc.operator_name),
                cell_text(doc.statement_number),
                STATUS_LABELS.get(doc.status, doc.status),
                doc.ride_count,
                doc.fare_total,
                doc.rider_share_total,
                doc.subsidy_total,
                doc.adjustment_total,
                doc.amount_due,
                bank.bank_code if bank else "",
                bank.branch_code if bank else "",
                ACCOUNT_TYPE_LABELS.get(bank.account_type, bank.account_type) if bank else "",
                bank.account_number if bank else "",
                cell_text(bank.holder_kana) if bank else "",
            ]
        )
    rows.append(
        [
            "合計",
            "",
            "",
            "",
            "",
            "",
            sum(doc.ride_count for doc in docs),
            sum(doc.fare_total for doc in docs),
            sum(doc.rider_share_total for doc in docs),
            sum(doc.subsidy_total for doc in docs),
            sum(doc.adjustment_total for doc in docs),
            sum(doc.amount_due for doc in docs),
        ]
    )
    return BOM + csv_rows(rows)
