from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, JsonDoc, UTCDateTime
from voucher_api.models._types import str_enum


class ResidentStatus(enum.StrEnum):
    RESIDENT = "resident"
    MOVED_OUT = "moved_out"
    DECEASED = "deceased"


class Resident(Base):
    """A person of the resident registry, as last synchronised. Never holds the individual number."""

    __tablename__ = "residents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    registry_id: Mapped[str] = mapped_column(String(32))
    household_id: Mapped[str] = mapped_column(String(32))
    family_name: Mapped[str] = mapped_column(String(50))
    given_name: Mapped[str] = mapped_column(String(50))
    family_name_kana: Mapped[str] = mapped_column(String(100))
    given_name_kana: Mapped[str] = mapped_column(String(100))
    sex: Mapped[str] = mapped_column(String(8))
    birth_date: Mapped[date] = mapped_column(Date)
    address: Mapped[str] = mapped_column(String(200))
    district_id: Mapped[int | None] = mapped_column(ForeignKey("districts.id"), default=None)
    car_licence: Mapped[str] = mapped_column(String(10))
    licence_returned_on: Mapped[date | None] = mapped_column(Date, default=None)
    # [{"kind": "physical", "grade": "1"}, ...]
    disability_certificates: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    status: Mapped[ResidentStatus] = mapped_column(str_enum(ResidentStatus, "resident_status"))
    status_since: Mapped[date | None] = mapped_column(Date, default=None)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("municipality_id", "registry_id"),)

    @property
    def full_name(self) -> str:
        return f"{self.family_name} {self.given_name}"

    @property
    def full_name_kana(self) -> str:
        return f"{self.family_name_kana} {self.given_name_kana}"

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years
