from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum


class BindingMethod(enum.StrEnum):
    SIGNATURE_CERTIFICATE = "signature_certificate"  # the four facts authenticated by the card
    STAFF_ATTESTED = "staff_attested"  # face-recognition cards, forgotten passwords
    PIN_SIGNATURE = "pin_signature"  # user certificate proven with the PIN (minimal enrolment)


class BindingStatus(enum.StrEnum):
    ACTIVE = "active"
    REPLACED = "replaced"
    ENDED = "ended"


class CardBinding(Base):
    """Link between a resident and the user-authentication certificate of their card."""

    __tablename__ = "card_bindings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    cert_fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of the user certificate, hex
    cert_serial: Mapped[str] = mapped_column(String(64))
    subject_serial: Mapped[str] = mapped_column(String(64))  # the opaque CN, never the individual number
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    method: Mapped[BindingMethod] = mapped_column(str_enum(BindingMethod, "binding_method"))
    status: Mapped[BindingStatus] = mapped_column(str_enum(BindingStatus, "binding_status"))
    bound_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        Index(
            "uq_card_bindings_active_certificate",
            "cert_fingerprint",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
        Index(
            "uq_card_bindings_active_resident",
            "resident_id",
            unique=True,
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )


class CardChallenge(Base):
    """A single-use nonce the card signs; consumed by one conditional UPDATE."""

    __tablename__ = "card_challenges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(32))
    context: Mapped[str] = mapped_column(String(200))
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
