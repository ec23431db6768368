"""The statement (精算書) as an A4 PDF in Japanese, for the operator and for the city's files.

Fonts: reportlab's built-in Japanese CID font HeiseiKakuGo-W5, which needs no font file on the machine
that makes the PDF, and whose text can be searched and extracted. The font is referenced, not
embedded: Acrobat and the common viewers substitute their own Japanese Gothic. If the city needs
embedded fonts (PDF/A archiving), swap in a TTF here.

Layout: page 1 carries the title, statement number, issue date, the operator and the city, the
period in the Japanese era and in Western dates, a summary of the totals and the payee account, and
the breakdowns the document carries (by line kind, by program, and for a large statement by day);
then the lines table (its header repeated on every page, however many pages); at the end a totals row,
the totals again, the 作成者/承認者 boxes and the contact. Every page's footer shows the statement
number and ``page / pages``.

A document whose ``line_count`` is set holds only some of its statement's lines (settlement.documents
gives a large statement's PDF the lines a person must look at): the heading of the lines says how many
lines the statement has and that every one is in the statement's CSV, and the lines table has no total
row (the totals are in the summary above it and at the end).

The document is laid out once; the canvas keeps the finished pages and prints ``page / pages`` on each
when the last one is known.
"""

from __future__ import annotations

import calendar as _gregorian
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final
from xml.sax.saxutils import escape

import zengin_code
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    KeepTogether,
    LongTable,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from settlement.exports.documents import (
    ACCOUNT_TYPE_LABELS,
    JST,
    LINE_KIND_LABELS,
    STATUS_LABELS,
    BankAccount,
    StatementDoc,
    StatementLineDoc,
    SummaryRow,
)
from settlement.exports.era import to_japanese_era, to_japanese_era_month

FONT: Final = "HeiseiKakuGo-W5"
TITLE: Final = "タクシー利用助成 精算書"
MARGIN: Final = 15 * mm
PAGE_WIDTH, PAGE_HEIGHT = A4
CONTENT_WIDTH: Final = PAGE_WIDTH - 2 * MARGIN

LINE_COLUMNS: Final = (
    ("No.", 24),
    ("区分", 46),
    ("乗車日時", 50),
    ("乗車番号", 54),
    ("制度", 70),
    ("地区", 40),
    ("車両", 44),
    ("運賃", 42),
    ("本人負担", 42),
    ("助成額", 42),
    ("備考", 56),
)
AMOUNT_COLUMNS: Final = slice(7, 10)
GRID: Final = colors.Color(0.55, 0.55, 0.55)
SHADE: Final = colors.Color(0.92, 0.92, 0.92)


def _register_font() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _style(size: float, *, align: int = TA_LEFT, leading: float | None = None) -> ParagraphStyle:
    return ParagraphStyle(
        name=f"jp-{size}-{align}",
        fontName=FONT,
        fontSize=size,
        leading=leading if leading is not None else size * 1.3,
        alignment=align,
        wordWrap="CJK",
    )


TITLE_STYLE: Final = _style(18, align=TA_CENTER, leading=24)
BODY: Final = _style(9.5)
SMALL: Final = _style(8)
CELL_FONT_SIZE: Final = 7.0
CELL_PADDING: Final = 2.5


def yen(amount: int) -> str:
    """An amount of yen as people write it: ``1,234,567円``."""
    return f"{amount:,}円"


def _paragraph(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _western(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def period_text(period: date) -> str:
    """The period line: ``令和8年10月分(2026年10月1日〜2026年10月31日)``."""
    first = period.replace(day=1)
    last = first.replace(day=_gregorian.monthrange(first.year, first.month)[1])
    return f"{to_japanese_era_month(first)}分({_western(first)}〜{_western(last)})"


def _bank_text(bank: BankAccount | None) -> str:
    if bank is None:
        return "未登録"
    try:
        bank_entry = zengin_code.Bank.all[bank.bank_code]
        bank_name = f"{bank_entry.name}({bank.bank_code})"
        branch_entry = bank_entry.branches.get(bank.branch_code)
    except KeyError:
        bank_name, branch_entry = f"金融機関コード {bank.bank_code}", None
    branch_name = (
        f"{branch_entry.name}支店({bank.branch_code})" if branch_entry else f"支店コード {bank.branch_code}"
    )
    kind = ACCOUNT_TYPE_LABELS.get(bank.account_type, bank.account_type)
    return f"{bank_name} {branch_name} {kind} {bank.account_number} {bank.holder_kana}"


def _boarded_text(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    local = moment.astimezone(JST)
    return f"{local:%Y/%m/%d}\n{local:%H:%M}"


def wrap_cell(text: str, width: float, font_size: float = CELL_FONT_SIZE) -> str:
    """``text`` broken into lines no wider than ``width`` points, character by character.

    Line cells are plain strings rather than Paragraphs: breaking them here is many times faster,
    which matters for statements of thousands of lines. Japanese breaks anywhere; so do the
    reference codes printed in these cells, which is acceptable in a narrow table column.
    """
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        if pdfmetrics.stringWidth(paragraph, FONT, font_size) <= width:
            lines.append(paragraph)
            continue
        current = ""
        for ch in paragraph:
            candidate = current + ch
            if current and pdfmetrics.stringWidth(candidate, FONT, font_size) > width:
                lines.append(current)
                current = ch
            else:
                current = candidate
        lines.append(current)
    return "\n".join(lines)


def _line_row(line: StatementLineDoc) -> list[str]:
    texts = [
        str(line.line_no),
        LINE_KIND_LABELS[line.kind],
        _boarded_text(line.boarded_at),
        line.ride_ref,
        line.program_name,
        line.district_name,
        line.vehicle,
        f"{line.meter_fare:,}",
        f"{line.rider_share:,}",
        f"{line.subsidy_amount:,}",
        line.note,
    ]
    return [
        wrap_cell(text, width - 2 * CELL_PADDING)
        for text, (_, width) in zip(texts, LINE_COLUMNS, strict=True)
    ]


def _lines_table(doc: StatementDoc) -> Table:
    header = [name for name, _ in LINE_COLUMNS]
    rows: list[list[Any]] = [header]
    rows.extend(_line_row(line) for line in doc.lines)
    partial = doc.line_count is not None
    if not doc.lines:
        empty = "通常の乗車以外の明細はありません" if partial else "明細はありません"
        rows.append(["", empty, *[""] * (len(LINE_COLUMNS) - 2)])
    if not partial:  # a total under some of the lines would not be theirs
        total_row: list[Any] = ["合計", "", "", "", "", "", ""]
        total_row += [f"{doc.fare_total:,}", f"{doc.rider_share_total:,}", f"{doc.subsidy_total:,}", ""]
        rows.append(total_row)
    last = len(rows) - 1 if not partial else -1
    table = LongTable(rows, colWidths=[width for _, width in LINE_COLUMNS], repeatRows=1)
    if not doc.lines:
        table.setStyle(TableStyle([("SPAN", (1, 1), (-1, 1))]))
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("FONTSIZE", (0, 0), (-1, -1), CELL_FONT_SIZE),
                ("LEADING", (0, 0), (-1, -1), CELL_FONT_SIZE * 1.23),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("GRID", (0, 0), (-1, -1), 0.4, GRID),
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("ALIGN", (0, 0), (-1, 0), "CENTER"),
                ("ALIGN", (0, 1), (0, -1), "RIGHT"),
                ("ALIGN", (AMOUNT_COLUMNS.start, 1), (AMOUNT_COLUMNS.stop - 1, -1), "RIGHT"),
                # No SPAN here: any span makes reportlab recompute span maps on every page split,
                # which turns a statement of thousands of lines from seconds into minutes.
                *(
                    [("BACKGROUND", (0, last), (-1, last), SHADE), ("ALIGN", (0, last), (0, last), "CENTER")]
                    if last >= 0
                    else []
                ),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
                ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
            ]
        )
    )
    return table


def _totals_table(doc: StatementDoc) -> Table:
    rows = [
        ["乗車件数", f"{doc.ride_count:,}件"],
        ["運賃合計", yen(doc.fare_total)],
        ["利用者負担合計", yen(doc.rider_share_total)],
        ["助成額合計", yen(doc.subsidy_total)],
        ["調整額", yen(doc.adjustment_total)],
        ["支払額", yen(doc.amount_due)],
    ]
    table = Table(rows, colWidths=[40 * mm, 45 * mm], hAlign="RIGHT")
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("FONTSIZE", (0, 0), (-1, -1), 9.5),
                ("FONTSIZE", (0, -1), (-1, -1), 12),
                ("LEADING", (0, -1), (-1, -1), 15),
                ("GRID", (0, 0), (-1, -1), 0.5, GRID),
                ("BACKGROUND", (0, 0), (0, -1), SHADE),
                ("ALIGN", (1, 0), (1, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table


SUMMARY_HEADER: Final = ("件数", "運賃", "本人負担", "助成額")


def _summary_table(title: str, rows: Sequence[SummaryRow]) -> Table:
    """A breakdown (by kind, program or day): label, line count and the three amounts."""
    cells: list[list[Any]] = [[title, *SUMMARY_HEADER]]
    cells.extend(
        [
            wrap_cell(row.label, 70 * mm - 2 * CELL_PADDING),
            f"{row.lines:,}",
            f"{row.meter_fare:,}",
            f"{row.rider_share:,}",
            f"{row.subsidy_amount:,}",
        ]
        for row in rows
    )
    table = LongTable(cells, colWidths=[70 * mm, 22 * mm, 30 * mm, 30 * mm, 30 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("LEADING", (0, 0), (-1, -1), 10),
                ("GRID", (0, 0), (-1, -1), 0.4, GRID),
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("ALIGN", (1, 0), (-1, 0), "CENTER"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _breakdowns(doc: StatementDoc) -> list[Any]:
    story: list[Any] = []
    for title, rows in (
        ("区分別内訳", doc.kind_summary),
        ("制度別内訳", doc.program_summary),
        ("日別内訳(当月の乗車)", doc.day_summary),
    ):
        if rows:
            story += [Spacer(1, 4 * mm), _summary_table(title, rows)]
    return story


def _lines_heading(doc: StatementDoc) -> list[Any]:
    if doc.line_count is None:
        return [_paragraph("明細", BODY)]
    attention = sum(row.lines for row in doc.kind_summary if row.label != LINE_KIND_LABELS["ride"])
    listed = (
        f"確認が必要な明細{len(doc.lines):,}件"
        if len(doc.lines) >= attention
        else f"確認が必要な明細{attention:,}件のうち{len(doc.lines):,}件"
    )
    return [
        _paragraph("明細(通常の乗車以外: 前月以前分・要確認・料金未入力・調整)", BODY),
        Spacer(1, 1 * mm),
        _paragraph(
            f"この精算書の明細は全{doc.line_count:,}件です。PDFには内訳と、{listed}を載せています。"
            f"全件の明細は精算書CSV(精算書番号 {doc.statement_number})に収録しています。",
            SMALL,
        ),
    ]


def _info_table(rows: Sequence[tuple[str, str]], label_width: float) -> Table:
    cells = [[label, _paragraph(value)] for label, value in rows]
    table = Table(cells, colWidths=[label_width, CONTENT_WIDTH - label_width])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("FONTSIZE", (0, 0), (-1, -1), 9.5),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, GRID),
                ("BACKGROUND", (0, 0), (0, -1), SHADE),
            ]
        )
    )
    return table


def _signature_boxes(doc: StatementDoc) -> Table:
    box = 28 * mm
    table = Table(
        [["作成者", "承認者"], [doc.prepared_by or "", doc.approved_by or ""]],
        colWidths=[box, box],
        rowHeights=[6 * mm, 16 * mm],
        hAlign="RIGHT",
    )
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), FONT),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                ("ALIGN", (0, 0), (-1, -1), "CENTER"),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table


def _story(doc: StatementDoc) -> list[Any]:
    status = STATUS_LABELS.get(doc.status, doc.status)
    if doc.operator_response in ("acknowledged", "disputed"):
        status = f"{status}({STATUS_LABELS[doc.operator_response]})"
    heading = _info_table(
        [
            ("精算書番号", doc.statement_number),
            ("発行日", f"{to_japanese_era(doc.issued_on)}({_western(doc.issued_on)})"),
            ("状態", status),
            ("事業者", f"{doc.operator_name} 様(事業者コード {doc.operator_code})"),
            ("発行者", f"{doc.municipality_name}(地方公共団体コード {doc.municipality_code})"),
            ("対象期間", period_text(doc.period)),
            ("振込先", _bank_text(doc.bank)),
        ],
        label_width=24 * mm,
    )
    closing = KeepTogether(
        [
            Spacer(1, 5 * mm),
            _totals_table(doc),
            Spacer(1, 5 * mm),
            _signature_boxes(doc),
            Spacer(1, 4 * mm),
            _paragraph(f"お問い合わせ先: {doc.contact}", SMALL),
        ]
    )
    return [
        _paragraph(TITLE, TITLE_STYLE),
        Spacer(1, 4 * mm),
        heading,
        Spacer(1, 4 * mm),
        _paragraph(f"下記のとおり {to_japanese_era_month(doc.period)}分の助成額を精算します。", BODY),
        Spacer(1, 2 * mm),
        _totals_table(doc),
        *_breakdowns(doc),
        Spacer(1, 6 * mm),
        *_lines_heading(doc),
        Spacer(1, 1.5 * mm),
        _lines_table(doc),
        closing,
    ]


def _draw_footer(canvas: Any, doc: StatementDoc, page: int, total_pages: int) -> None:
    canvas.saveState()
    canvas.setFont(FONT, 7.5)
    canvas.drawString(MARGIN, 9 * mm, f"{TITLE} {doc.statement_number} {doc.operator_name}")
    canvas.drawRightString(PAGE_WIDTH - MARGIN, 9 * mm, f"{page} / {total_pages} ページ")
    canvas.restoreState()


def _numbered_canvas(doc: StatementDoc) -> type[Canvas]:
    """A canvas that keeps each finished page until the end, then prints ``page / pages`` on all of
    them: the document is laid out once, not once to count its pages and again to print them."""

    class NumberedCanvas(Canvas):  # type: ignore[misc]  # reportlab ships no type hints
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802  # reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                _draw_footer(self, doc, number, total)
                super().showPage()
            super().save()

    return NumberedCanvas


def statement_pdf(doc: StatementDoc) -> bytes:
    """The statement as an A4 PDF in Japanese, paginated for any number of lines, ``page / pages`` in
    every footer. Raises ``ValueError`` (from the era conversion) for a period or issue date before 1873.
    """
    _register_font()
    buffer = io.BytesIO()
    template = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 5 * mm,
        title=f"{TITLE} {doc.statement_number}",
        author=doc.municipality_name,
        subject=f"{doc.operator_name} {to_japanese_era_month(doc.period)}分",
        creator="taxi-vouchers",
        lang="ja-JP",
    )
    template.build(_story(doc), canvasmaker=_numbered_canvas(doc))
    return buffer.getvalue()
