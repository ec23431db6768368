from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum


class EntitlementUnit(enum.StrEnum):
    RIDE = "ride"  # a number of rides
    TICKET = "ticket"  # a number of fixed-value tickets
    YEN = "yen"  # a yen budget


class EntitlementStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    ENDED = "ended"
    EXPIRED = "expired"


class Entitlement(Base):
    """What a resident may use in a program year. `balance` is always the sum of its ledger entries."""

    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), default=None)
    unit: Mapped[EntitlementUnit] = mapped_column(str_enum(EntitlementUnit, "entitlement_unit"))
    granted: Mapped[int] = mapped_column(Integer)
    balance: Mapped[int] = mapped_column(Integer)
    status: Mapped[EntitlementStatus] = mapped_column(str_enum(EntitlementStatus, "entitlement_status"))
    status_reason: Mapped[str] = mapped_column(String(200), default="")
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("resident_id", "program_id"),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        CheckConstraint("granted >= 0", name="granted_not_negative"),
    )


class LedgerKind(enum.StrEnum):
    GRANT = "grant"
    RIDE = "ride"  # negative at boarding (the hold); positive when unused units return at alighting
    VOID = "void"  # a voided ride's units come back
    ADJUSTMENT = "adjustment"
    EXPIRY = "expiry"


class LedgerEntry(Base):
    """One change of an entitlement's balance. Entries are never updated or deleted."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"), index=True)
    kind: Mapped[LedgerKind] = mapped_column(str_enum(LedgerKind, "ledger_kind"))
    amount: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    ride_id: Mapped[int | None] = mapped_column(ForeignKey("rides.id"), default=None, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),)
