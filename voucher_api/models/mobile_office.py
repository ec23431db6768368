"""The mobile office (移動市役所): a round of stops and the numbered queue at each stop."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum


class MobileRound(Base):
    """One round of the mobile-office vehicle: an ordered route of stops over one or more days."""

    __tablename__ = "mobile_rounds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StopStatus(enum.StrEnum):
    PLANNED = "planned"
    OPEN = "open"
    CLOSED = "closed"


class MobileStop(Base):
    """A place the vehicle stops at, in a district, within a time window; opened and closed by staff.

    `code` (e.g. R3-07) is what applications taken at the stop carry in `Application.mobile_stop`.
    """

    __tablename__ = "mobile_stops"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("mobile_rounds.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(20))
    place: Mapped[str] = mapped_column(String(100))
    district_id: Mapped[int] = mapped_column(ForeignKey("districts.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[StopStatus] = mapped_column(str_enum(StopStatus, "stop_status"))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        UniqueConstraint("round_id", "position"),
        UniqueConstraint("municipality_id", "code"),
        CheckConstraint("starts_at < ends_at", name="window_in_order"),
    )


class TicketStatus(enum.StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    DONE = "done"
    SKIPPED = "skipped"


class QueueTicket(Base):
    """A numbered ticket handed to a resident waiting at a stop (待たない: the display shows the queue)."""

    __tablename__ = "queue_tickets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    stop_id: Mapped[int] = mapped_column(ForeignKey("mobile_stops.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[TicketStatus] = mapped_column(str_enum(TicketStatus, "ticket_status"))
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id"), default=None)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    called_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    called_by: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (
        UniqueConstraint("stop_id", "number"),
        CheckConstraint("number > 0", name="number_positive"),
    )
