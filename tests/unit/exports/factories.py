"""Plain factory functions for the export tests: a realistic Obanazawa statement by default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from settlement.exports.documents import BankAccount, StatementDoc, StatementLineDoc


def make_bank_account(**overrides: Any) -> BankAccount:
    account = BankAccount(
        bank_code="0122",
        branch_code="451",
        account_type="ordinary",
        account_number="1234567",
        holder_kana="カ）オバナザワコウツウ",
    )
    return replace(account, **overrides)


def make_line(line_no: int = 1, **overrides: Any) -> StatementLineDoc:
    line = StatementLineDoc(
        line_no=line_no,
        kind="ride",
        boarded_at=datetime(2026, 10, 1, 0, 30, tzinfo=UTC) + timedelta(hours=line_no),
        ride_ref=f"R-{line_no:06d}",
        program_name="高齢者おもいやりタクシー",
        district_name="尾花沢",
        vehicle="山形500あ12-34",
        meter_fare=2000,
        rider_share=500,
        subsidy_amount=1500,
        note="",
    )
    return replace(line, **overrides)


def make_lines(count: int) -> list[StatementLineDoc]:
    return [make_line(n) for n in range(1, count + 1)]


def make_statement(lines: Sequence[StatementLineDoc] | None = None, **overrides: Any) -> StatementDoc:
    """A statement whose totals add up from its lines, plus a ¥-1,200 adjustment."""
    lines = list(lines) if lines is not None else make_lines(3)
    fare = sum(line.meter_fare for line in lines)
    rider = sum(line.rider_share for line in lines)
    subsidy = sum(line.subsidy_amount for line in lines)
    doc = StatementDoc(
        statement_number="ST-062120-202610-0001",
        municipality_code="062120",
        municipality_name="尾花沢市",
        operator_code="OP001",
        operator_name="尾花沢交通株式会社",
        period=date(2026, 10, 1),
        status="approved",
        issued_on=date(2026, 11, 5),
        lines=lines,
        ride_count=len(lines),
        fare_total=fare,
        rider_share_total=rider,
        subsidy_total=subsidy,
        adjustment_total=-1200,
        amount_due=subsidy - 1200,
        bank=make_bank_account(),
        prepared_by="財務 一郎",
        approved_by="会計 花子",
        contact="尾花沢市 福祉介護課 0237-22-1111",
    )
    return replace(doc, **overrides)
