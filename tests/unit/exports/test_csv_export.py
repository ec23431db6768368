from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

from settlement.exports.csv_export import (
    CHUNK_SIZE,
    LINE_HEADER,
    iter_statement_csv,
    month_csv,
    month_summary_csv,
    statement_csv,
    write_month_csv,
)
from settlement.exports.documents import StatementDoc, StatementLineDoc
from tests.unit.exports.factories import make_line, make_lines, make_statement

BOM = b"\xef\xbb\xbf"


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_statement_csv_starts_with_a_single_bom() -> None:
    data = statement_csv(make_statement())
    assert data.startswith(BOM)
    assert data.count(BOM) == 1


def test_every_line_ends_with_crlf() -> None:
    data = statement_csv(make_statement())
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n")


def test_header_row_is_japanese() -> None:
    header = rows_of(statement_csv(make_statement()))[0]
    assert header == list(LINE_HEADER)
    assert header[:5] == ["対象年月", "精算書番号", "市区町村コード", "事業者コード", "事業者名"]


def test_amounts_are_plain_integer_yen() -> None:
    doc = make_statement([make_line(1, meter_fare=12345, rider_share=1000, subsidy_amount=11345)])
    row = rows_of(statement_csv(doc))[1]
    assert row[12:15] == ["12345", "1000", "11345"]


def test_boarding_time_is_shown_in_japan_time() -> None:
    # 15:30 UTC on Oct 31 is 00:30 on Nov 1 in Japan: the day shown is the Japanese one.
    line = make_line(1, boarded_at=datetime(2026, 10, 31, 15, 30, tzinfo=UTC))
    row = rows_of(statement_csv(make_statement([line])))[1]
    assert row[LINE_HEADER.index("乗車日時")] == "2026/11/01 00:30"


def test_adjustment_without_boarding_time_has_an_empty_time_cell() -> None:
    line = make_line(1, kind="adjustment", boarded_at=None, subsidy_amount=-1200, note="10月分過大請求の訂正")
    row = rows_of(statement_csv(make_statement([line])))[1]
    assert row[LINE_HEADER.index("区分")] == "調整"
    assert row[LINE_HEADER.index("乗車日時")] == ""
    assert row[LINE_HEADER.index("助成額(円)")] == "-1200"


def test_names_with_commas_and_quotes_are_quoted_for_excel() -> None:
    doc = make_statement(operator_name='尾花沢交通,有限会社 "本社"')
    data = statement_csv(doc)
    assert '"尾花沢交通,有限会社 ""本社"""'.encode() in data
    assert rows_of(data)[1][4] == '尾花沢交通,有限会社 "本社"'


def test_note_with_line_break_stays_in_one_cell() -> None:
    doc = make_statement([make_line(1, note="1行目\n2行目")])
    rows = rows_of(statement_csv(doc))
    assert rows[1][-1] == "1行目\n2行目"


def test_text_that_excel_would_run_as_a_formula_is_neutralised() -> None:
    doc = make_statement([make_line(1, note='=HYPERLINK("http://example.invalid")', ride_ref="@R1")])
    row = rows_of(statement_csv(doc))[1]
    assert row[-1].startswith("'=")
    assert row[LINE_HEADER.index("乗車番号")] == "'@R1"


def test_statement_csv_ends_with_its_totals() -> None:
    doc = make_statement(make_lines(3))
    rows = rows_of(statement_csv(doc))
    assert rows[4] == []
    assert rows[5:] == [
        ["乗車件数", "3"],
        ["運賃合計(円)", "6000"],
        ["利用者負担合計(円)", "1500"],
        ["助成額合計(円)", "4500"],
        ["調整額(円)", "-1200"],
        ["支払額(円)", "3300"],
    ]


def two_operators() -> list[StatementDoc]:
    return [
        make_statement(make_lines(2)),
        make_statement(
            make_lines(3), operator_code="OP002", operator_name="銀山タクシー", statement_number="ST-2"
        ),
    ]


def test_month_csv_has_one_row_per_line_with_the_operator_and_no_totals() -> None:
    rows = rows_of(month_csv(two_operators()))
    assert len(rows) == 1 + 5
    assert [row[3] for row in rows[1:]] == ["OP001", "OP001", "OP002", "OP002", "OP002"]
    assert all(row[0] == "2026/10" for row in rows[1:])


def test_month_csv_can_be_streamed_from_a_generator_and_leaves_the_stream_open() -> None:
    header = make_statement(lines=[])

    def cursor() -> Iterator[tuple[StatementDoc, StatementLineDoc]]:
        for n in range(1, 1001):
            yield header, make_line(n)

    stream = io.BytesIO()
    written = write_month_csv(stream, cursor())
    stream.write(b"")  # still open
    assert written == 1000
    rows = rows_of(stream.getvalue())
    assert len(rows) == 1001
    assert rows[-1][LINE_HEADER.index("明細番号")] == "1000"


def test_month_summary_lists_each_statement_and_a_grand_total() -> None:
    rows = rows_of(month_summary_csv(two_operators()))
    assert rows[0][:6] == ["対象年月", "市区町村コード", "事業者コード", "事業者名", "精算書番号", "状態"]
    assert [row[2] for row in rows[1:3]] == ["OP001", "OP002"]
    assert rows[1][5] == "承認済"
    assert rows[1][12:] == ["0122", "451", "普通", "1234567", "カ）オバナザワコウツウ"]
    assert rows[3][0] == "合計"
    # 5 rides, ¥1,500 subsidy each, less ¥1,200 adjustment per statement.
    assert rows[3][6:12] == ["5", "10000", "2500", "7500", "-2400", "5100"]


def test_summary_row_of_an_operator_without_bank_account_has_empty_account_cells() -> None:
    rows = rows_of(month_summary_csv([make_statement(bank=None)]))
    assert rows[1][12:] == ["", "", "", "", ""]


def test_streamed_chunks_of_a_long_statement_make_the_same_file_and_none_is_large() -> None:
    doc = make_statement(make_lines(3000))
    chunks = list(iter_statement_csv(doc, doc.lines))
    assert len(chunks) > 2
    assert max(len(chunk) for chunk in chunks) < 2 * CHUNK_SIZE
    data = b"".join(chunks)
    assert data == statement_csv(doc)
    assert data.startswith(BOM)
    assert data.count(BOM) == 1
    assert len(rows_of(data)) == 1 + 3000 + 1 + 6
