from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, JsonDoc, UTCDateTime
from voucher_api.models._types import str_enum


class RecordStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    CONFLICT = "conflict"  # the ride happened but would have been refused online: finance reviews it
    REJECTED = "rejected"  # not verifiable (bad signature, unknown card): kept for review, never lost


class TerminalRecord(Base):
    """Every record a terminal synced after working offline, kept verbatim with the server's answer."""

    __tablename__ = "terminal_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))
    sequence: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))  # board | fare | void
    recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)  # the terminal's clock
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    status: Mapped[RecordStatus] = mapped_column(str_enum(RecordStatus, "record_status"))
    code: Mapped[str | None] = mapped_column(String(64), default=None)
    ride_id: Mapped[int | None] = mapped_column(ForeignKey("rides.id"), default=None)

    __table_args__ = (
        UniqueConstraint("terminal_id", "sequence"),
        UniqueConstraint("terminal_id", "idempotency_key"),
        Index("ix_terminal_records_status", "status"),
    )


class DriverShift(Base):
    """A driver signed in on a terminal, from the start of a shift to its end."""

    __tablename__ = "driver_shifts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"), index=True)
    driver_id: Mapped[int] = mapped_column(ForeignKey("drivers.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
