from __future__ import annotations

import io

import pypdf
import pytest
from reportlab.pdfbase import pdfmetrics

from settlement.exports.documents import StatementDoc, SummaryRow
from settlement.exports.pdf import CELL_FONT_SIZE, FONT, statement_pdf, wrap_cell
from tests.unit.exports.factories import make_line, make_lines, make_statement


def page_texts(pdf: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return [page.extract_text() for page in reader.pages]


@pytest.fixture(scope="module")
def long_statement() -> StatementDoc:
    return make_statement(make_lines(300))


@pytest.fixture(scope="module")
def long_pages(long_statement: StatementDoc) -> list[str]:
    return page_texts(statement_pdf(long_statement))


def test_statement_pdf_is_a_pdf() -> None:
    assert statement_pdf(make_statement()).startswith(b"%PDF-")


def test_first_page_names_the_statement_the_operator_and_the_city() -> None:
    first = page_texts(statement_pdf(make_statement()))[0]
    assert "タクシー利用助成 精算書" in first
    assert "ST-062120-202610-0001" in first
    assert "尾花沢交通株式会社" in first
    assert "尾花沢市" in first
    assert "062120" in first


def test_period_is_given_in_the_japanese_era_and_in_western_dates() -> None:
    first = page_texts(statement_pdf(make_statement()))[0]
    assert "令和8年10月分" in first
    assert "2026年10月1日〜2026年10月31日" in first


def test_issue_date_is_given_in_the_japanese_era() -> None:
    first = page_texts(statement_pdf(make_statement()))[0]
    assert "令和8年11月5日" in first


def test_totals_and_amount_due_are_printed_in_yen() -> None:
    text = "".join(page_texts(statement_pdf(make_statement(make_lines(3)))))
    assert "6,000円" in text  # fare total
    assert "4,500円" in text  # subsidy total
    assert "-1,200円" in text  # adjustment
    assert "3,300円" in text  # amount due


def test_payee_bank_account_is_shown_with_bank_and_branch_names() -> None:
    first = page_texts(statement_pdf(make_statement()))[0]
    assert "山形(0122)" in first
    assert "尾花沢支店(451)" in first
    assert "普通 1234567" in first


def test_preparer_and_approver_boxes_carry_their_names() -> None:
    text = page_texts(statement_pdf(make_statement()))[-1]
    assert "作成者" in text
    assert "承認者" in text
    assert "財務 一郎" in text
    assert "会計 花子" in text


def test_contact_is_printed() -> None:
    text = page_texts(statement_pdf(make_statement()))[-1]
    assert "尾花沢市 福祉介護課 0237-22-1111" in text


def test_three_hundred_lines_paginate_with_page_numbers(long_pages: list[str]) -> None:
    total = len(long_pages)
    assert total > 3
    assert f"1 / {total} ページ" in long_pages[0]
    assert f"{total} / {total} ページ" in long_pages[-1]


def test_every_line_appears_once_across_the_pages(long_pages: list[str]) -> None:
    text = "".join(long_pages)
    assert all(text.count(f"R-{n:06d}") == 1 for n in range(1, 301))


def test_table_header_repeats_on_later_pages(long_pages: list[str]) -> None:
    assert all("助成額" in page and "乗車番号" in page for page in long_pages[1:])


def test_last_page_shows_the_totals(long_pages: list[str], long_statement: StatementDoc) -> None:
    last = long_pages[-1]
    assert f"{long_statement.subsidy_total:,}円" in last  # 450,000円
    assert f"{long_statement.amount_due:,}円" in last  # 448,800円
    assert "支払額" in last


def test_markup_characters_in_names_are_printed_literally() -> None:
    doc = make_statement([make_line(1, note="<b>A&B</b>")], operator_name="A&B <タクシー>", prepared_by=None)
    text = "".join(page_texts(statement_pdf(doc)))
    assert "<b>A&B</b>" in text
    assert "A&B <タクシー>" in text


def test_statement_without_lines_says_so() -> None:
    doc = make_statement([], ride_count=0, fare_total=0, rider_share_total=0, subsidy_total=0)
    text = page_texts(statement_pdf(doc))[0]
    assert "明細はありません" in text


def test_statement_without_bank_account_says_unregistered() -> None:
    text = page_texts(statement_pdf(make_statement(bank=None)))[0]
    assert "未登録" in text


def test_long_cell_text_is_broken_into_lines_that_fit_without_losing_characters() -> None:
    note = "オフライン乗車のため残高超過。事業者負担(制度設定による)。ABC-123"
    wrapped = wrap_cell(note, 50)
    assert wrapped.replace("\n", "") == note
    assert all(pdfmetrics.stringWidth(part, FONT, CELL_FONT_SIZE) <= 50 for part in wrapped.split("\n"))
    assert len(wrapped.split("\n")) > 1


def test_large_statement_pdf_gives_its_breakdowns_and_says_where_every_line_is() -> None:
    summary = [SummaryRow("乗車", 200_000, 400_000_000, 100_000_000, 300_000_000)]
    doc = make_statement(
        [make_line(7, kind="fareless", note="運賃未入力のため助成なし")],
        line_count=200_001,
        kind_summary=summary,
        program_summary=[
            SummaryRow("高齢者おもいやりタクシー", 200_001, 400_000_000, 100_000_000, 300_000_000)
        ],
        day_summary=[SummaryRow("10月1日", 6_500, 13_000_000, 3_250_000, 9_750_000)],
    )
    text = "".join(page_texts(statement_pdf(doc)))
    assert "全200,001件" in text
    assert "ST-062120-202610-0001" in text  # the CSV to look in
    assert all(title in text for title in ("区分別内訳", "制度別内訳", "日別内訳"))
    assert "300,000,000" in text
    assert "運賃未入力のため助成なし" in text.replace("\n", "")  # the note column wraps


def test_large_statement_pdf_says_how_many_lines_to_look_at_it_lists_of_how_many() -> None:
    doc = make_statement(
        [make_line(n, kind="fareless") for n in (7, 8)],
        line_count=200_010,
        kind_summary=[
            SummaryRow("乗車", 200_000, 400_000_000, 100_000_000, 300_000_000),
            SummaryRow("料金未入力", 10, 0, 0, 0),
        ],
    )
    text = "".join(page_texts(statement_pdf(doc))).replace("\n", "")
    assert "確認が必要な明細10件のうち2件" in text
