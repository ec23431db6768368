from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from voucher_api.db import Base, BigId, UTCDateTime
from voucher_api.models._types import str_enum

YenTotal = BigInteger().with_variant(Integer(), "sqlite")
"""A statement's sum of yen: a big operator's month passes 2**31 yen (¥2.1 billion) long before its ride
count does. SQLite's INTEGER is 64-bit already."""


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SettlementRun(Base):
    """One attempt to close a month. At most one queued or running run per period (the period lock)."""

    __tablename__ = "settlement_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    period: Mapped[date] = mapped_column(Date)  # first day of the month, Japan time
    status: Mapped[RunStatus] = mapped_column(str_enum(RunStatus, "run_status"))
    trigger: Mapped[str] = mapped_column(String(20))  # api | cli | beat
    requested_by: Mapped[str] = mapped_column(String(64))
    operators_total: Mapped[int] = mapped_column(Integer, default=0)
    operators_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        Index(
            "uq_settlement_runs_active_period",
            "municipality_id",
            "period",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
    )


class StatementStatus(enum.StrEnum):
    DRAFT = "draft"
    CONFIRMED = "confirmed"
    APPROVED = "approved"
    PAID = "paid"


class OperatorResponse(enum.StrEnum):
    """What the operator said about a confirmed statement (DESIGN §8)."""

    NONE = "none"
    ACKNOWLEDGED = "acknowledged"  # final: ends any dispute
    DISPUTED = "disputed"  # answered by adjustment lines on a later statement; may be re-opened


class Statement(Base):
    """One operator's monthly claim. Once confirmed it never changes; corrections go to a later period.

    The operator's response (acknowledged or disputed) is kept beside the claim; it never changes the
    lines or totals. `dispute_answered_at` is set when finance answers the latest dispute with an
    adjustment, and cleared when the operator disputes again.
    """

    __tablename__ = "statements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    period: Mapped[date] = mapped_column(Date)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    status: Mapped[StatementStatus] = mapped_column(str_enum(StatementStatus, "statement_status"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("settlement_runs.id"), default=None)
    ride_count: Mapped[int] = mapped_column(Integer, default=0)
    fare_total: Mapped[int] = mapped_column(YenTotal, default=0)
    rider_share_total: Mapped[int] = mapped_column(YenTotal, default=0)
    subsidy_total: Mapped[int] = mapped_column(YenTotal, default=0)
    adjustment_total: Mapped[int] = mapped_column(YenTotal, default=0)
    amount_due: Mapped[int] = mapped_column(YenTotal, default=0)
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    operator_response: Mapped[OperatorResponse] = mapped_column(
        str_enum(OperatorResponse, "operator_response"),
        default=OperatorResponse.NONE,
        server_default=OperatorResponse.NONE.value,
    )
    operator_response_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), default=None)
    operator_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    dispute_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    dispute_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    __table_args__ = (
        UniqueConstraint("operator_id", "period"),
        CheckConstraint("approved_by_id IS NULL OR approved_by_id <> confirmed_by_id", name="four_eyes"),
        CheckConstraint("amount_due = subsidy_total + adjustment_total", name="amount_due_adds_up"),
    )


class StatementLineKind(enum.StrEnum):
    RIDE = "ride"
    PRIOR_PERIOD = "prior_period"  # a ride synced after its month was closed
    OFFLINE_CONFLICT = "offline_conflict"
    FARELESS = "fareless"  # no fare entered in time; settled by the program's rule
    ADJUSTMENT = "adjustment"


class StatementLine(Base):
    """One line of a statement. The ride's program, vehicle and district are copied onto the line, so
    the statement keeps saying what it said when it was made.

    No foreign keys: on PostgreSQL they would be checked once per row, and a month's close writes a
    million rows in one statement. Migration 5e0c3a7b91d4 checks the same references once per
    statement with a trigger instead, and refuses deleting rides and statements. A line is known by its
    statement and number; `ride_id` is unique, so no ride is ever paid twice."""

    __tablename__ = "statement_lines"

    statement_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[StatementLineKind] = mapped_column(str_enum(StatementLineKind, "statement_line_kind"))
    ride_id: Mapped[int | None] = mapped_column(BigId, unique=True, default=None)
    boarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    program_id: Mapped[int | None] = mapped_column(BigId, default=None)
    vehicle_id: Mapped[int | None] = mapped_column(BigId, default=None)
    district_id: Mapped[int | None] = mapped_column(BigId, default=None)
    meter_fare: Mapped[int] = mapped_column(Integer, default=0)
    rider_share: Mapped[int] = mapped_column(Integer, default=0)
    subsidy_amount: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        CheckConstraint("(kind = 'adjustment') = (ride_id IS NULL)", name="ride_unless_adjustment"),
        # The lines a person has to look at (a big statement's PDF lists only these); partial, so the
        # ordinary ride lines, nearly all of them, cost it nothing to write.
        Index(
            "ix_statement_lines_to_look_at",
            "statement_id",
            "line_no",
            postgresql_where=text("kind <> 'ride'"),
            sqlite_where=text("kind <> 'ride'"),
        ),
    )


class StatementAdjustment(Base):
    """Finance's answer to a statement (a dispute or a correction found later): an amount in yen booked as
    an `adjustment` line on the operator's earliest draft of a later month. The answered statement itself
    never changes. Not linked to the line by id: a draft's lines are rewritten when its month is closed
    (adjustment lines are kept, renumbered)."""

    __tablename__ = "statement_adjustments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipalities.id"), index=True)
    disputed_statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    target_statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id"), index=True)
    amount: Mapped[int] = mapped_column(Integer)  # yen; positive: the city pays more
    note: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), default=None)

    __table_args__ = (
        UniqueConstraint("created_by_id", "idempotency_key"),
        CheckConstraint("amount <> 0", name="amount_not_zero"),
        CheckConstraint("target_statement_id <> disputed_statement_id", name="target_is_another_statement"),
    )
