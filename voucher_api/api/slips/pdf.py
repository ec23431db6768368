"""The hand-over slip (交付のお知らせ): one A4 page in Japanese the resident takes home.

It says what was granted (or why not), how to ride step by step, the taxi companies to call, and whom to
ask at city hall. Large type: most readers are over 75. Font: reportlab's built-in CID font
HeiseiKakuGo-W5 (no font file needed), as the settlement PDF does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

FONT: Final = "HeiseiKakuGo-W5"
MARGIN: Final = 16 * mm

# Newest first: the first era whose first day is not after the date names it.
ERAS: Final = (("令和", date(2019, 5, 1)), ("平成", date(1989, 1, 8)), ("昭和", date(1926, 12, 25)))

CHANNEL_LABELS: Final = {"counter": "市役所窓口", "mobile_office": "移動市役所", "online": "オンライン"}


@dataclass(frozen=True)
class OperatorContact:
    name: str
    contact: str


@dataclass(frozen=True)
class SlipDoc:
    """Everything printed on the slip, already looked up."""

    application_id: int
    approved: bool
    issued_on: date
    city_name: str
    city_contact: str
    resident_name: str
    resident_name_kana: str
    address: str
    program_name: str
    channel: str
    place: str | None
    unit: str | None = None
    granted: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    subsidy: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    tap_allowed: bool = False
    unmet_reasons: tuple[str, ...] = ()
    operators: tuple[OperatorContact, ...] = ()


def japanese_date(d: date) -> str:
    """令和8年10月15日(2026年10月15日): the era first, as city documents write it, then the Western date."""
    western = f"{d.year}年{d.month}月{d.day}日"
    for name, first_day in ERAS:
        if d >= first_day:
            year = d.year - first_day.year + 1
            return f"{name}{'元' if year == 1 else year}年{d.month}月{d.day}日({western})"
    return western


def grant_text(unit: str | None, granted: int | None, subsidy: dict[str, Any]) -> str:
    """What the resident received, in words: 24回分, 500円券 24枚, 20,000円分."""
    if unit is None or granted is None:
        return ""
    if unit == "ticket":
        return f"{subsidy.get('ticket_value', 0):,}円券 {granted}枚"
    if unit == "yen":
        return f"{granted:,}円分"
    return f"タクシー {granted}回分"


def subsidy_text(subsidy: dict[str, Any]) -> str:
    """How the fare is shared, in the words of the program's formula."""
    formula = subsidy.get("formula")
    if formula == "ticket":
        return (
            f"1回の乗車で {subsidy.get('ticket_value', 0):,}円券を{subsidy.get('max_tickets_per_ride', 1)}枚"
            "まで使えます。おつりは出ません。残りの料金はご自身で支払います。"
        )
    if formula == "percent_capped":
        return (
            f"メーター料金の{subsidy.get('percent', 0)}%を市が負担します"
            f"(1回あたり{subsidy.get('cap_per_ride') or 0:,}円まで)。残りをご自身で支払います。"
        )
    if formula == "fixed_copay":
        cap = subsidy.get("cap_per_ride")
        text = f"お支払いは1回 {subsidy.get('copay', 0):,}円です。残りを市が負担します"
        return text + (f"(市の負担は1回{cap:,}円まで)。" if cap else "。")
    return ""


def limits_text(limits: dict[str, Any]) -> str:
    parts = []
    for key, label in (("per_day", "1日"), ("per_month", "1か月"), ("per_year", "1年度")):
        if limits.get(key):
            parts.append(f"{label}{limits[key]}回まで")
    return "、".join(parts)


def _style(size: float, *, align: int = 0, leading: float | None = None) -> ParagraphStyle:
    return ParagraphStyle(
        name=f"slip-{size}-{align}",
        fontName=FONT,
        fontSize=size,
        leading=leading or size * 1.45,
        alignment=align,
        wordWrap="CJK",
    )


TITLE: Final = _style(20, align=TA_CENTER, leading=28)
HEADING: Final = _style(14, leading=20)
BODY: Final = _style(12)
SMALL: Final = _style(10)


def _p(text: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(text), style)


def _table(rows: list[tuple[str, str]], *, label_width: float = 38 * mm) -> Table:
    table = Table(
        [[_p(label), _p(value)] for label, value in rows],
        colWidths=[label_width, A4[0] - 2 * MARGIN - label_width],
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.6, colors.black),
                ("BACKGROUND", (0, 0), (0, -1), colors.Color(0.92, 0.92, 0.92)),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("TOPPADDING", (0, 0), (-1, -1), 4),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 4),
            ]
        )
    )
    return table


def how_to_ride(doc: SlipDoc) -> list[str]:
    """The steps from hailing the taxi to paying, for this program."""
    pin_step = (
        "車内の端末にマイナンバーカードをかざします。この制度は、かざすだけでも使えます"
        "(暗証番号を求められたら、数字4桁の暗証番号を入力してください)。"
        if doc.tap_allowed
        else "車内の端末にマイナンバーカードをかざし、数字4桁の暗証番号(利用者証明用)を入力します。"
    )
    steps = [
        "市が指定したタクシー会社に電話して、タクシーを呼びます(下の一覧をご覧ください)。",
        "乗るときに運転手へ「タクシー助成を使います」と伝えます。",
        pin_step,
        "降りるとき、端末に表示された金額を支払います。" + subsidy_text(doc.subsidy),
    ]
    limits = limits_text(doc.limits)
    if limits:
        steps.append(f"利用できる回数: {limits}。")
    steps.append(
        "この紙は、なくしても利用できます。カードをなくしたときは、すぐに下のお問い合わせ先へ連絡してください。"
    )
    return steps


def render_slip(doc: SlipDoc) -> bytes:
    """The slip as PDF bytes (one A4 page for a grant; the reasons for a refusal)."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    buffer = io.BytesIO()
    title = "タクシー助成 交付のお知らせ" if doc.approved else "タクシー助成 申請結果のお知らせ"
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=title,
        author=doc.city_name,
        subject=doc.program_name,
        lang="ja",
    )
    where = CHANNEL_LABELS.get(doc.channel, doc.channel) + (f"({doc.place})" if doc.place else "")
    story: list[Any] = [
        _p(title, TITLE),
        Spacer(1, 4 * mm),
        _p(f"{doc.resident_name} 様({doc.resident_name_kana})", HEADING),
        _p(doc.address, SMALL),
        Spacer(1, 4 * mm),
    ]
    rows = [
        ("制度", doc.program_name),
        ("受付日", japanese_date(doc.issued_on)),
        ("受付場所", where),
        ("受付番号", f"{doc.application_id:08d}"),
    ]
    if doc.approved:
        story.append(_p("次のとおり、タクシー助成を交付しました。", BODY))
        rows[1:1] = [("交付内容", grant_text(doc.unit, doc.granted, doc.subsidy))]
        if doc.valid_from and doc.valid_to:
            period = f"{japanese_date(doc.valid_from)} から {japanese_date(doc.valid_to)} まで"
            rows.insert(2, ("使える期間", period))
        story += [Spacer(1, 2 * mm), _table(rows), Spacer(1, 6 * mm), _p("乗り方", HEADING)]
        story += [_p(f"{n}. {step}") for n, step in enumerate(how_to_ride(doc), start=1)]
        if doc.operators:
            story += [Spacer(1, 4 * mm), _p("使えるタクシー会社", HEADING)]
            story.append(_table([(op.name, op.contact) for op in doc.operators], label_width=90 * mm))
    else:
        story.append(_p("今回は、この制度の対象になりませんでした。理由は次のとおりです。", BODY))
        story += [Spacer(1, 2 * mm), _table(rows), Spacer(1, 4 * mm)]
        story += [_p(f"・{reason}") for reason in doc.unmet_reasons]
        story.append(_p("ほかの制度の対象になることがあります。お気軽にご相談ください。"))
    story += [
        Spacer(1, 8 * mm),
        _p("お問い合わせ", HEADING),
        _p(doc.city_contact or doc.city_name),
    ]
    pdf.build(story)
    return buffer.getvalue()
