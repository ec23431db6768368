"""CSV exports of statements for finance staff, made to open cleanly in Excel.

Format (every file): UTF-8 with a byte-order mark (so Excel detects UTF-8), CRLF line ends, a Japanese
header row, fields quoted only when needed (commas, quotes, line breaks), integer yen without
separators, times in Japan time as ``YYYY/MM/DD HH:MM``.

Three files, for three jobs a finance clerk has:

- ``statement_csv``: one statement's lines, then a blank row and its totals as label/value rows, to
  check against the PDF;
- ``month_csv`` / ``write_month_csv``: every line of every statement of a month, one row per line,
  with the operator on each row and *no* total rows, so a pivot table or SUM over a column is right;
- ``month_summary_csv``: one row per statement (operator) with its totals and bank account, and a last
  ``合計`` row: the list the clerk approves and pays from.

Text cells that begin with ``= + - @`` (or a tab/CR) get a leading apostrophe so Excel does not run
them as formulas (CSV injection). Known limitation: Excel drops leading zeros of code columns
(``062120`` shows as ``62120``) when it opens a CSV directly; the file itself keeps them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import BinaryIO, Final

from settlement.exports.documents import (
    ACCOUNT_TYPE_LABELS,
    JST,
    LINE_KIND_LABELS,
    STATUS_LABELS,
    StatementDoc,
    StatementLineDoc,
)

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

_FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    # Excel evaluates a cell starting with these as a formula, even from a CSV.
    if value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def _period_text(period: date) -> str:
    return f"{period.year:04d}/{period.month:02d}"


def _jst_text(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")


class _LineRows:
    """Formats line rows; the statement's own cells, names and minutes are formatted once and reused,
    since a month's hundreds of thousands of lines share a few statements, programs and vehicles."""

    def __init__(self) -> None:
        self._doc: StatementDoc | None = None
        self._head: list[str | int] = []
        self._texts: dict[str, str] = {}
        self._minutes: dict[int, str] = {}

    def _cached_text(self, value: str) -> str:
        found = self._texts.get(value)
        if found is None:
            if len(self._texts) > 10_000:
                self._texts.clear()
            found = self._texts[value] = _text(value)
        return found

    def _time(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        minute = int(moment.timestamp()) // 60
        found = self._minutes.get(minute)
        if found is None:
            if len(self._minutes) > 100_000:
                self._minutes.clear()
            local = moment.astimezone(JST)
            # The same text as _jst_text, without strftime's cost.
            found = f"{local.year:04d}/{local.month:02d}/{local.day:02d} {local.hour:02d}:{local.minute:02d}"
            self._minutes[minute] = found
        return found

    def row(self, doc: StatementDoc, line: StatementLineDoc) -> list[str | int]:
        if doc is not self._doc:
            self._doc = doc
            self._head = [
                _period_text(doc.period),
                _text(doc.statement_number),
                _text(doc.municipality_code),
                _text(doc.operator_code),
                _text(doc.operator_name),
            ]
        cached = self._cached_text
        return [
            *self._head,
            line.line_no,
            LINE_KIND_LABELS[line.kind],
            self._time(line.boarded_at),
            _text(line.ride_ref),
            cached(line.program_name),
            cached(line.district_name),
            cached(line.vehicle),
            line.meter_fare,
            line.rider_share,
            line.subsidy_amount,
            _text(line.note),
        ]


CHUNK_SIZE: Final = 64 * 1024
"""Bytes of CSV handed on at a time by the streaming writers."""


class _CsvChunks:
    """CSV rows turned into chunks of UTF-8 bytes (BOM first, CRLF line ends), for a stream or a
    streamed HTTP response; only one chunk is ever held."""

    def __init__(self) -> None:
        self._buffer = io.StringIO(newline="")
        self.writer = csv.writer(self._buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._first = True

    def take(self, *, at_least: int = CHUNK_SIZE) -> bytes | None:
        """The bytes written since the last take, once there are `at_least` characters of them."""
        if self._buffer.tell() < at_least:
            return None
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        if self._first:
            self._first = False
            return BOM + data
        return data

    def rest(self) -> bytes:
        return self.take(at_least=0) or b""


def iter_line_csv(
    rows: Iterable[tuple[StatementDoc, StatementLineDoc]], *, totals_of: StatementDoc | None = None
) -> Iterator[bytes]:
    """The line CSV as chunks of bytes: header, one row per (statement, line) pair, and, with
    `totals_of`, a blank row and that statement's totals as label/value rows.

    The rows are consumed one at a time, so they can come from a database cursor.
    """
    chunks = _CsvChunks()
    writer = chunks.writer
    formatter = _LineRows()
    writer.writerow(LINE_HEADER)
    for count, (doc, line) in enumerate(rows, start=1):
        writer.writerow(formatter.row(doc, line))
        if count % 256 == 0 and (chunk := chunks.take()) is not None:
            yield chunk
    if totals_of is not None:
        writer.writerow([])
        writer.writerows(_totals_rows(totals_of))
    yield chunks.rest()


def _totals_rows(doc: StatementDoc) -> list[list[str | int]]:
    return [
        ["乗車件数", doc.ride_count],
        ["運賃合計(円)", doc.fare_total],
        ["利用者負担合計(円)", doc.rider_share_total],
        ["助成額合計(円)", doc.subsidy_total],
        ["調整額(円)", doc.adjustment_total],
        ["支払額(円)", doc.amount_due],
    ]


class _CsvSink:
    """A csv writer onto a caller's binary stream that leaves the stream open."""

    def __init__(self, stream: BinaryIO) -> None:
        stream.write(BOM)
        # newline="" hands line ends to the csv module, which writes CRLF itself.
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self.writer = csv.writer(self._text, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)

    def close(self) -> None:
        self._text.flush()
        self._text.detach()


class _Counted:
    def __init__(self, rows: Iterable[tuple[StatementDoc, StatementLineDoc]]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[tuple[StatementDoc, StatementLineDoc]]:
        for item in self.rows:
            self.count += 1
            yield item


def write_month_csv(stream: BinaryIO, rows: Iterable[tuple[StatementDoc, StatementLineDoc]]) -> int:
    """Write the month's line CSV to ``stream`` row by row and return how many lines were written.

    Each item pairs a statement (only its header fields are read; its ``lines`` may be empty) with one
    of its lines, so a month of hundreds of thousands of rides can be streamed from a database cursor
    without building a list. The stream is left open.
    """
    counted = _Counted(rows)
    for chunk in iter_line_csv(counted):
        stream.write(chunk)
    return counted.count


def month_csv(docs: Sequence[StatementDoc]) -> bytes:
    """All lines of the month's statements, one row per line with the operator's columns, no totals.

    Totals per operator are in ``month_summary_csv``; keeping them out of this file keeps column sums
    and pivot tables right.
    """
    buffer = io.BytesIO()
    write_month_csv(buffer, ((doc, line) for doc in docs for line in doc.lines))
    return buffer.getvalue()


def iter_statement_csv(doc: StatementDoc, lines: Iterable[StatementLineDoc]) -> Iterator[bytes]:
    """One statement's CSV as chunks of bytes: its lines (streamed from `lines`, not ``doc.lines``),
    then a blank row and its totals (乗車件数 … 支払額) as label/value rows."""
    return iter_line_csv(((doc, line) for line in lines), totals_of=doc)


def write_statement_csv(stream: BinaryIO, doc: StatementDoc, lines: Iterable[StatementLineDoc]) -> int:
    """Write one statement's CSV to ``stream`` line by line; returns how many lines. Left open."""
    counted = _Counted((doc, line) for line in lines)
    for chunk in iter_line_csv(counted, totals_of=doc):
        stream.write(chunk)
    return counted.count


def statement_csv(doc: StatementDoc) -> bytes:
    """One statement's lines, then a blank row and its totals (乗車件数 … 支払額) as label/value rows."""
    return b"".join(iter_statement_csv(doc, doc.lines))


def month_summary_csv(docs: Sequence[StatementDoc]) -> bytes:
    """One row per statement with its totals and payee account, then a ``合計`` row over all of them."""
    buffer = io.BytesIO()
    sink = _CsvSink(buffer)
    try:
        sink.writer.writerow(SUMMARY_HEADER)
        for doc in docs:
            bank = doc.bank
            sink.writer.writerow(
                [
                    _period_text(doc.period),
                    _text(doc.municipality_code),
                    _text(doc.operator_code),
                    _text(doc.operator_name),
                    _text(doc.statement_number),
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
                    _text(bank.holder_kana) if bank else "",
                ]
            )
        sink.writer.writerow(
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
    finally:
        sink.close()
    return buffer.getvalue()
