from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, JsonDoc, UTCDateTime


class AuditEntry(Base):
    """Who changed what, and when. Written in the same transaction as the change itself."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int | None] = mapped_column(ForeignKey("municipalities.id"), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))  # staff:12 | terminal:3 | system:beat
    action: Mapped[str] = mapped_column(String(64))  # e.g. application.decided, ride.boarded
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(40))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    __table_args__ = (
        Index("ix_audit_entries_entity", "entity_type", "entity_id"),
        Index("ix_audit_entries_municipality_at", "municipality_id", "at"),
    )
