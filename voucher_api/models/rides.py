from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum


class RideStatus(enum.StrEnum):
    BOARDED = "boarded"
    COMPLETED = "completed"
    VOIDED = "voided"


class Ride(Base):
    """One boarding redeemed against an entitlement; fare and subsidy are settled at alighting."""

    __tablename__ = "rides"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"))
    entitlement_id: Mapped[int] = mapped_column(ForeignKey("entitlements.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"))
    terminal_id: Mapped[int] = mapped_column(ForeignKey("terminals.id"))
    driver_id: Mapped[int | None] = mapped_column(ForeignKey("drivers.id"), default=None)
    binding_id: Mapped[int | None] = mapped_column(ForeignKey("card_bindings.id"), default=None)
    terminal_sequence: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(100))
    trip_ref: Mapped[str | None] = mapped_column(String(64), default=None)  # shared ride: one car, one trip
    auth_method: Mapped[str] = mapped_column(String(10))  # pin | tap
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[RideStatus] = mapped_column(str_enum(RideStatus, "ride_status"))
    boarded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    units_held: Mapped[int] = mapped_column(Integer)
    units_used: Mapped[int | None] = mapped_column(Integer, default=None)
    alighted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    meter_fare: Mapped[int | None] = mapped_column(Integer, default=None)
    subsidy_amount: Mapped[int | None] = mapped_column(Integer, default=None)
    rider_share: Mapped[int | None] = mapped_column(Integer, default=None)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    void_reason: Mapped[str] = mapped_column(String(200), default="")
    # Set on an offline ride that would have been refused online (e.g. the balance used up on another car):
    # the ride happened and is kept, finance reviews it, the program's policy says who bears it.
    review_code: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        UniqueConstraint("terminal_id", "terminal_sequence"),
        UniqueConstraint("terminal_id", "idempotency_key"),
        CheckConstraint("units_held > 0 OR review_code IS NOT NULL", name="units_held_positive"),
        CheckConstraint("meter_fare IS NULL OR meter_fare >= 0", name="fare_not_negative"),
        CheckConstraint(
            "status <> 'completed' OR (meter_fare IS NOT NULL AND subsidy_amount >= 0 AND rider_share >= 0"
            " AND subsidy_amount + rider_share = meter_fare)",
            name="completed_amounts_add_up",
        ),
        Index("ix_rides_entitlement_boarded", "entitlement_id", "boarded_at"),
        Index("ix_rides_operator_boarded", "operator_id", "boarded_at"),
    )
