from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, JsonDoc, UTCDateTime
from voucher_api.models._types import str_enum


class Program(Base):
    """One subsidy scheme for one fiscal year. Its rules are data, validated by services.program_rules."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    fiscal_year: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date] = mapped_column(Date)
    eligibility: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    subsidy: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    grant: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    limits: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    options: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("municipality_id", "code", "fiscal_year"),
        CheckConstraint("valid_from <= valid_to", name="valid_period"),
    )


class ProgramExclusion(Base):
    """A resident in `program_id` may not also be in `excluded_program_id` (stored both ways)."""

    __tablename__ = "program_exclusions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    excluded_program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))

    __table_args__ = (
        UniqueConstraint("program_id", "excluded_program_id"),
        CheckConstraint("program_id <> excluded_program_id", name="not_self"),
    )


class ApplicationChannel(enum.StrEnum):
    COUNTER = "counter"
    MOBILE_OFFICE = "mobile_office"
    ONLINE = "online"


class ApplicationStatus(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Application(Base):
    """A resident's request to join a program, decided on the spot with reasons a person can read."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    channel: Mapped[ApplicationChannel] = mapped_column(str_enum(ApplicationChannel, "application_channel"))
    status: Mapped[ApplicationStatus] = mapped_column(str_enum(ApplicationStatus, "application_status"))
    # [{"rule": "min_age", "met": true, "ja": "...", "en": "..."}]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc)
    identity_method: Mapped[str] = mapped_column(String(32))
    mobile_stop: Mapped[str | None] = mapped_column(String(100), default=None)
    decided_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
