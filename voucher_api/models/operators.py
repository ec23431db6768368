from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum


class Operator(Base):
    """A taxi company designated by the city; statements are made out to it."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str] = mapped_column(String(200), default="")
    bank_code: Mapped[str] = mapped_column(String(4))
    branch_code: Mapped[str] = mapped_column(String(3))
    account_type: Mapped[str] = mapped_column(String(10))
    account_number: Mapped[str] = mapped_column(String(7))
    account_holder_kana: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("municipality_id", "code"),
        CheckConstraint("account_type IN ('ordinary', 'current')", name="account_type"),
    )


class Vehicle(Base):
    __tablename__ = "vehicles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    registration: Mapped[str] = mapped_column(String(40), unique=True)  # number plate
    label: Mapped[str] = mapped_column(String(40), default="")


class Driver(Base):
    __tablename__ = "drivers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)

    __table_args__ = (UniqueConstraint("operator_id", "code"),)


class TerminalStatus(enum.StrEnum):
    PENDING = "pending"  # created with a one-time code, not yet enrolled
    ACTIVE = "active"
    REVOKED = "revoked"


class Terminal(Base):
    """An in-car device with its own Ed25519 key pair."""

    __tablename__ = "terminals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), index=True)
    status: Mapped[TerminalStatus] = mapped_column(str_enum(TerminalStatus, "terminal_status"))
    enrolment_code_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    enrolment_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    public_key: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)  # raw, base64url
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
