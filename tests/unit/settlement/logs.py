"""Plain factories for reconciliation tests: a statement with lines written straight to the tables, and an
operator's ride log as the CSV bytes a taxi company would upload."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session

from tests.unit.settlement.factories import City, Fleet, statement_with
from voucher_api.clock import JST
from voucher_api.models import Ride, Statement, StatementLine, StatementLineKind

SEPTEMBER = date(2026, 9, 1)
LOG_HEADER = ("乗車日時", "車両番号", "メーター料金", "助成額", "乗車番号")


def statement_of(
    session: Session,
    town: City,
    where: Fleet,
    rides: Sequence[Ride | tuple[Ride, StatementLineKind]],
    *,
    period: date = SEPTEMBER,
    adjustments: Sequence[int] = (),
) -> Statement:
    """A draft statement of `where`'s operator with one line per ride (kind `ride` unless given), then
    one adjustment line per amount. A fareless line pays nothing and shows no fare."""
    lines: list[StatementLine] = []
    for item in rides:
        ride, kind = item if isinstance(item, tuple) else (item, StatementLineKind.RIDE)
        fareless = kind == StatementLineKind.FARELESS
        lines.append(
            StatementLine(
                line_no=len(lines) + 1,
                kind=kind,
                ride_id=ride.id,
                boarded_at=ride.boarded_at,
                program_id=ride.program_id,
                vehicle_id=ride.vehicle_id,
                meter_fare=0 if fareless else ride.meter_fare or 0,
                rider_share=0 if fareless else ride.rider_share or 0,
                subsidy_amount=0 if fareless else ride.subsidy_amount or 0,
            )
        )
    for amount in adjustments:
        lines.append(
            StatementLine(
                line_no=len(lines) + 1,
                kind=StatementLineKind.ADJUSTMENT,
                subsidy_amount=amount,
                note="前月分の調整",
            )
        )
    return statement_with(session, town, where, lines, period=period)


def when(moment: datetime) -> str:
    """A boarding time as a taxi company's log writes it: Japan time, to the minute."""
    return moment.astimezone(JST).strftime("%Y/%m/%d %H:%M")


def log_csv(
    rows: Sequence[Sequence[object]],
    *,
    header: Sequence[str] = LOG_HEADER,
    encoding: str = "utf-8",
    bom: bool = False,
) -> bytes:
    """A log file: the header, then the rows, CRLF line ends like Excel."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    return ("\ufeff".encode() + data) if bom else data
