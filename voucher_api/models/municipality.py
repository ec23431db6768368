from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime


class StaffRole(enum.StrEnum):
    COUNTER = "counter"
    MOBILE_OFFICE = "mobile_office"
    OPERATOR_ADMIN = "operator_admin"
    FINANCE = "finance"
    FINANCE_APPROVER = "finance_approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Municipality(Base):
    """A city using the system; every record belongs to one, identified by its local government code."""

    __tablename__ = "municipalities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(6), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100))
    prefecture: Mapped[str] = mapped_column(String(10))
    contact: Mapped[str] = mapped_column(String(200), default="")
    # 全銀 remitter for payment files: requester code and the city's account.
    remitter: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("length(code) = 6", name="code_six_digits"),)


class District(Base):
    __tablename__ = "districts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    code: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(50))
    name_kana: Mapped[str] = mapped_column(String(50), default="")

    __table_args__ = (UniqueConstraint("municipality_id", "code"),)


class StaffUser(Base):
    """A city employee or operator admin who signs in to the API."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON)
    # Set for operator_admin accounts: which taxi company they act for.
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
