"""The month summary CSV, written in Python from StatementDocs. The line CSVs are formatted by the
database: tests/unit/settlement/test_line_csv.py."""

from __future__ import annotations

import csv
import io

from settlement.exports.csv_export import BOM, SUMMARY_HEADER, month_summary_csv
from settlement.exports.documents import StatementDoc
from tests.unit.exports.factories import make_lines, make_statement


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def two_operators() -> list[StatementDoc]:
    return [
        make_statement(make_lines(2)),
        make_statement(
            make_lines(3), operator_code="OP002", operator_name="銀山タクシー", statement_number="ST-2"
        ),
    ]


def test_month_summary_starts_with_a_single_bom_and_ends_every_line_with_crlf() -> None:
    data = month_summary_csv(two_operators())
    assert data.startswith(BOM)
    assert data.count(BOM) == 1
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") == 1 + 2 + 1


def test_month_summary_lists_each_statement_and_a_grand_total() -> None:
    rows = rows_of(month_summary_csv(two_operators()))
    assert rows[0] == list(SUMMARY_HEADER)
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


def test_summary_names_with_commas_and_quotes_are_quoted_for_excel() -> None:
    data = month_summary_csv([make_statement(operator_name='尾花沢交通,有限会社 "本社"')])
    assert '"尾花沢交通,有限会社 ""本社"""'.encode() in data
    assert rows_of(data)[1][3] == '尾花沢交通,有限会社 "本社"'


def test_summary_text_that_excel_would_run_as_a_formula_gets_a_leading_apostrophe() -> None:
    doc = make_statement(operator_name="=HYPERLINK(1)", statement_number="@ST-1")
    row = rows_of(month_summary_csv([doc]))[1]
    assert (row[3], row[4]) == ("'=HYPERLINK(1)", "'@ST-1")
