"""The shapes the exports read: plain, frozen data with no database behind them.

The settlement service maps its statements onto these; every export (CSV, PDF, Zengin file) takes only
these, so the exports can be tested and reused without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

JST: Final = ZoneInfo("Asia/Tokyo")

ACCOUNT_TYPES: Final = ("ordinary", "current")
"""Deposit kinds a city pays into: 普通 and 当座."""

LINE_KINDS: Final = ("ride", "prior_period", "offline_conflict", "fareless", "adjustment")

ACCOUNT_TYPE_LABELS: Final[dict[str, str]] = {"ordinary": "普通", "current": "当座"}

LINE_KIND_LABELS: Final[dict[str, str]] = {
    "ride": "乗車",
    "prior_period": "前月以前分",
    "offline_conflict": "要確認(オフライン)",
    "fareless": "料金未入力",
    "adjustment": "調整",
}

STATUS_LABELS: Final[dict[str, str]] = {
    "draft": "作成中",
    "confirmed": "確認済",
    "approved": "承認済",
    "paid": "支払済",
    "disputed": "異議あり",
    "acknowledged": "事業者確認済",
}


@dataclass(frozen=True, slots=True)
class BankAccount:
    """An account money is paid into (an operator's) or drawn from (the city's).

    ``holder_kana`` may be full-width katakana; the Zengin writer converts and checks it.
    """

    bank_code: str
    branch_code: str
    account_type: str
    account_number: str
    holder_kana: str


@dataclass(frozen=True, slots=True)
class StatementLineDoc:
    """One line of a statement: a ride, a prior-period ride, a flagged offline ride or an adjustment.

    Raises ``ValueError`` for an unknown kind or a ``boarded_at`` without a timezone.
    """

    line_no: int
    kind: str
    boarded_at: datetime | None
    ride_ref: str
    program_name: str
    district_name: str
    vehicle: str
    meter_fare: int
    rider_share: int
    subsidy_amount: int
    note: str

    def __post_init__(self) -> None:
        if self.kind not in LINE_KINDS:
            raise ValueError(f"unknown statement line kind {self.kind!r}; expected one of {LINE_KINDS}")
        if self.boarded_at is not None and self.boarded_at.utcoffset() is None:
            raise ValueError(f"line {self.line_no}: boarded_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One row of a statement's breakdown (by line kind, by program or by day): how many lines, and
    their fares, riders' shares and subsidies."""

    label: str
    lines: int
    meter_fare: int
    rider_share: int
    subsidy_amount: int


@dataclass(frozen=True, slots=True)
class StatementDoc:
    """One operator's monthly statement (精算書) as the exports print it.

    Totals are taken as given (the settlement service computes them); ``period`` is the first day of
    the settled month. ``lines`` may be empty when the lines are streamed separately.

    ``line_count`` is set when ``lines`` holds only some of the statement's lines (the PDF of a large
    statement lists the lines a person must look at; every line is in the CSV). The summaries, when
    given, break the statement down by line kind, by program and by day of the month.
    """

    statement_number: str
    municipality_code: str
    municipality_name: str
    operator_code: str
    operator_name: str
    period: date
    status: str
    issued_on: date
    lines: Sequence[StatementLineDoc]
    ride_count: int
    fare_total: int
    rider_share_total: int
    subsidy_total: int
    adjustment_total: int
    amount_due: int
    bank: BankAccount | None
    prepared_by: str | None
    approved_by: str | None
    contact: str
    line_count: int | None = None
    kind_summary: Sequence[SummaryRow] = ()
    program_summary: Sequence[SummaryRow] = ()
    day_summary: Sequence[SummaryRow] = ()
    operator_response: str = "none"  # none | acknowledged | disputed (the operator's answer, §8)


@dataclass(frozen=True, slots=True)
class Remitter:
    """The city as the payer of a bulk transfer (振込依頼人)."""

    requester_code: str
    requester_name_kana: str
    bank_code: str
    branch_code: str
    account_type: str
    account_number: str


@dataclass(frozen=True, slots=True)
class Transfer:
    """One payment in a bulk transfer file: ``amount`` yen to ``payee``.

    ``customer_code`` (up to 10 digits, may be empty) comes back on the bank's result file, so the
    city can match a transfer to its statement.
    """

    payee: BankAccount
    amount: int
    customer_code: str
