"""The operator's answer to a statement, and finance's adjustments that answer disputes (DESIGN §8).

Rules:

- Only a statement that finance has confirmed (confirmed, approved or paid) can be answered by its
  operator; a draft is still being built (Refused statement.not_confirmed).
- Only the statement's own operator answers it; for anyone else it does not exist (statement.not_found).
- Acknowledging is final: it ends any dispute, and a second acknowledgement changes nothing. After an
  acknowledgement the operator can no longer dispute (Conflict statement.already_acknowledged); finance
  can still book corrections.
- A dispute can be raised again, with a new reason, when the answer did not satisfy the operator; that
  re-opens it (`dispute_answered_at` is cleared). Disputing again with the same reason while the dispute
  is still open changes nothing (a retry).
- Finance answers with an adjustment: an amount in yen (non-zero, at most ¥10,000,000 either way) booked
  as an `adjustment` line on the operator's earliest draft statement of a later month, created (empty,
  numbered as usual) when there is none. The answered statement never changes: not its lines, not its
  totals; only the record that its dispute was answered. A later close of the target's month rebuilds its
  ride lines and keeps the adjustment line (settlement.service._rebuild).
- An adjustment may not take the target's amount due below zero (Refused adjustment.amount_due_negative):
  a deduction bigger than the target month's claim waits until that month is closed, or is split.
- Adjustments can also correct a statement nobody disputed (a correction found later); they then answer no
  dispute. An adjustment is retry-safe with an idempotency key (per staff member): the same key returns
  the first adjustment; the same key with another statement, amount or note is Refused
  idempotency.key_reused.

Every function takes the caller's Session and `now`, and only flushes. Each state change writes an audit
entry. Rows that change are taken FOR UPDATE, so two adjustments can never lose one another's update.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from settlement import service
from voucher_api.clock import next_month
from voucher_api.models import (
    Operator,
    OperatorResponse,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementLineKind,
    StatementStatus,
)
from voucher_api.services import audit
from voucher_api.services.errors import Conflict, NotFound, Refused

ANSWERABLE = (StatementStatus.CONFIRMED, StatementStatus.APPROVED, StatementStatus.PAID)
MAX_ADJUSTMENT = 10_000_000
"""Yen, either way: one adjustment never moves more than this."""
NOTE_MAX = 200
REASON_MAX = 500
_DIGIT = "[0-9０-９]"
_TWELVE_DIGITS = re.compile(
    rf"(?<!{_DIGIT}){_DIGIT}{{4}}[-\s‐－ー]?{_DIGIT}{{4}}[-\s‐－ー]?{_DIGIT}{{4}}(?!{_DIGIT})"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class AdjustmentResult:
    """The adjustment and the draft statement it was booked on; `replayed` for a retried key."""

    adjustment: StatementAdjustment
    target: Statement
    replayed: bool


# --- the operator's answer -----------------------------------------------------------------------


def acknowledge_statement(
    session: Session,
    *,
    statement_id: int,
    municipality_id: int,
    operator_id: int,
    staff_id: int,
    now: datetime,
) -> Statement:
    """The operator accepts a confirmed statement (or the answer to their dispute); this is final.

    Acknowledging twice changes nothing. Raises NotFound statement.not_found (another city's or another
    operator's statement) and Refused statement.not_confirmed (still a draft).
    """
    statement = _operators_statement(session, statement_id, municipality_id, operator_id)
    if statement.operator_response is OperatorResponse.ACKNOWLEDGED:
        return statement
    before = statement.operator_response
    statement.operator_response = OperatorResponse.ACKNOWLEDGED
    statement.operator_response_by_id = staff_id
    statement.operator_response_at = now
    session.flush()
    audit.record(
        session,
        at=now,
        actor=_actor(staff_id),
        action="statement.acknowledged",
        entity_type="statement",
        entity_id=statement.id,
        municipality_id=statement.municipality_id,
        details={
            "number": statement.number,
            "amount_due": statement.amount_due,
            "after_dispute": before is OperatorResponse.DISPUTED,
        },
    )
    return statement


def dispute_statement(
    session: Session,
    *,
    statement_id: int,
    municipality_id: int,
    operator_id: int,
    staff_id: int,
    reason: str,
    now: datetime,
) -> Statement:
    """The operator disputes a confirmed statement, saying why; finance answers with an adjustment.

    Disputing again with a new reason re-opens the dispute; the same reason on an open dispute changes
    nothing. Raises Refused validation (an empty or too long reason, control characters, a 12-digit
    number), NotFound statement.not_found, Refused statement.not_confirmed and Conflict
    statement.already_acknowledged.
    """
    text = _free_text(reason, "reason", REASON_MAX, allow_newlines=True)
    statement = _operators_statement(session, statement_id, municipality_id, operator_id)
    if statement.operator_response is OperatorResponse.ACKNOWLEDGED:
        raise Conflict("statement.already_acknowledged")
    if (
        statement.operator_response is OperatorResponse.DISPUTED
        and statement.dispute_reason == text
        and statement.dispute_answered_at is None
    ):
        return statement
    reopened = statement.operator_response is OperatorResponse.DISPUTED
    statement.operator_response = OperatorResponse.DISPUTED
    statement.operator_response_by_id = staff_id
    statement.operator_response_at = now
    statement.dispute_reason = text
    statement.dispute_answered_at = None
    session.flush()
    audit.record(
        session,
        at=now,
        actor=_actor(staff_id),
        action="statement.disputed",
        entity_type="statement",
        entity_id=statement.id,
        municipality_id=statement.municipality_id,
        details={"number": statement.number, "reason": text, "reopened": reopened},
    )
    return statement


# --- finance's answer ----------------------------------------------------------------------------


def adjust_statement(
    session: Session,
    *,
    statement_id: int,
    municipality_id: int,
    amount: int,
    note: str,
    staff_id: int,
    now: datetime,
    idempotency_key: str | None = None,
) -> AdjustmentResult:
    """Finance books `amount` yen against a confirmed statement on the operator's next draft statement.

    The line lands on the operator's earliest draft of a month after the statement's (a new draft for the
    month after the operator's latest statement when there is none), and that draft's adjustment total
    and amount due move with it; the answered statement is only marked as answered when it is disputed.
    Raises Refused validation (amount zero or beyond ±MAX_ADJUSTMENT, bad note), NotFound
    statement.not_found, Refused statement.not_confirmed, Refused adjustment.amount_due_negative,
    Refused idempotency.key_reused and Conflict conflict (the target month's statement was created and
    confirmed by someone else at the same moment; try again).
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0 or abs(amount) > MAX_ADJUSTMENT:
        raise Refused(
            "validation", errors={"amount": [f"a non-zero whole number of yen within ±{MAX_ADJUSTMENT:,}"]}
        )
    text = _free_text(note, "note", NOTE_MAX, allow_newlines=False)
    # The answered statement is locked first: adjustments of one statement queue up behind each other,
    # so a retried idempotency key always finds the first adjustment.
    answered = service.locked_statement(session, statement_id, municipality_id)
    if answered.status not in ANSWERABLE:
        raise Refused("statement.not_confirmed")
    if idempotency_key is not None:
        earlier = session.scalar(
            select(StatementAdjustment).where(
                StatementAdjustment.created_by_id == staff_id,
                StatementAdjustment.idempotency_key == idempotency_key,
            )
        )
        if earlier is not None:
            if (earlier.disputed_statement_id, earlier.amount, earlier.note) != (answered.id, amount, text):
                raise Refused("idempotency.key_reused")
            booked_on = service.locked_statement(session, earlier.target_statement_id, municipality_id)
            return AdjustmentResult(earlier, booked_on, replayed=True)

    target = _earliest_later_draft(session, answered)
    if target is None:
        if amount < 0:
            raise Refused("adjustment.amount_due_negative", amount_due=0)
        target = _open_draft_after(session, answered, staff_id, now)
    if target.amount_due + amount < 0:
        raise Refused("adjustment.amount_due_negative", amount_due=target.amount_due)

    last_line = session.scalar(
        select(func.max(StatementLine.line_no)).where(StatementLine.statement_id == target.id)
    )
    session.add(
        StatementLine(
            statement_id=target.id,
            line_no=(last_line or 0) + 1,
            kind=StatementLineKind.ADJUSTMENT,
            ride_id=None,
            boarded_at=None,
            program_id=None,
            vehicle_id=None,
            meter_fare=0,
            rider_share=0,
            subsidy_amount=amount,
            note=f"{answered.number} の調整: {text}"[:NOTE_MAX],
        )
    )
    target.adjustment_total += amount
    target.amount_due += amount
    answers_dispute = answered.operator_response is OperatorResponse.DISPUTED
    if answers_dispute and answered.dispute_answered_at is None:
        answered.dispute_answered_at = now
    adjustment = StatementAdjustment(
        municipality_id=answered.municipality_id,
        disputed_statement_id=answered.id,
        target_statement_id=target.id,
        amount=amount,
        note=text,
        created_by_id=staff_id,
        created_at=now,
        idempotency_key=idempotency_key,
    )
    session.add(adjustment)
    session.flush()
    details = {
        "adjustment_id": adjustment.id,
        "amount": amount,
        "statement_id": answered.id,
        "number": answered.number,
        "target_statement_id": target.id,
        "target_number": target.number,
        "target_amount_due": target.amount_due,
        "answers_dispute": answers_dispute,
    }
    audit.record(
        session,
        at=now,
        actor=_actor(staff_id),
        action="statement.adjusted",
        entity_type="statement",
        entity_id=answered.id,
        municipality_id=answered.municipality_id,
        details=details,
    )
    audit.record(
        session,
        at=now,
        actor=_actor(staff_id),
        action="statement.adjustment_booked",
        entity_type="statement",
        entity_id=target.id,
        municipality_id=target.municipality_id,
        details=details,
    )
    return AdjustmentResult(adjustment, target, replayed=False)


def adjustments_answering(session: Session, *, statement_id: int) -> Sequence[StatementAdjustment]:
    """The adjustments booked against a statement, oldest first. The caller checks who may see it."""
    return session.scalars(
        select(StatementAdjustment)
        .where(StatementAdjustment.disputed_statement_id == statement_id)
        .order_by(StatementAdjustment.created_at, StatementAdjustment.id)
    ).all()


# --- helpers -------------------------------------------------------------------------------------


def _actor(staff_id: int) -> str:
    return f"staff:{staff_id}"


def _operators_statement(
    session: Session, statement_id: int, municipality_id: int, operator_id: int
) -> Statement:
    statement = service.locked_statement(session, statement_id, municipality_id)
    if statement.operator_id != operator_id:
        raise NotFound("statement.not_found")  # another operator's statement does not exist for them
    if statement.status not in ANSWERABLE:
        raise Refused("statement.not_confirmed")
    return statement


def _earliest_later_draft(session: Session, answered: Statement) -> Statement | None:
    return session.scalars(
        select(Statement)
        .where(
            Statement.operator_id == answered.operator_id,
            Statement.period > answered.period,
            Statement.status == StatementStatus.DRAFT,
        )
        .order_by(Statement.period)
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def _open_draft_after(session: Session, answered: Statement, staff_id: int, now: datetime) -> Statement:
    """An empty draft for the month after the operator's latest statement (every later one is closed),
    locked for this transaction. Raises Conflict conflict when that month's statement appears meanwhile
    and is no longer a draft."""
    # Looked for once more, in a fresh snapshot: on PostgreSQL a draft confirmed while the first look
    # waited for its lock hides a later draft from that look (the lock re-checks only the row it found).
    found = _earliest_later_draft(session, answered)
    if found is not None:
        return found
    latest = session.scalar(
        select(func.max(Statement.period)).where(Statement.operator_id == answered.operator_id)
    )
    period = next_month(latest or answered.period)
    operator_code = session.scalar(select(Operator.code).where(Operator.id == answered.operator_id))
    assert operator_code is not None  # the statement's foreign key guarantees it
    statement = service.empty_draft(
        session,
        municipality_id=answered.municipality_id,
        operator_id=answered.operator_id,
        operator_code=operator_code,
        period=period,
        run_id=None,
        now=now,
    )
    try:
        with session.begin_nested():
            session.add(statement)
            session.flush()
    except IntegrityError as exc:
        # A run (or an adjustment of another statement) created that month's statement at the same
        # moment: book on theirs if it is still a draft.
        theirs = _earliest_later_draft(session, answered)
        if theirs is None:
            raise Conflict("conflict") from exc
        return theirs
    audit.record(
        session,
        at=now,
        actor=_actor(staff_id),
        action="statement.opened_for_adjustment",
        entity_type="statement",
        entity_id=statement.id,
        municipality_id=statement.municipality_id,
        details={"number": statement.number, "for_statement_id": answered.id},
    )
    return statement


def _free_text(value: str, field: str, limit: int, *, allow_newlines: bool) -> str:
    """Trimmed text of 1..`limit` characters, without control characters or anything like a My Number."""
    text = value.strip() if isinstance(value, str) else ""
    if allow_newlines:
        text = text.replace("\r\n", "\n")
    problems: list[str] = []
    if not text or len(text) > limit:
        problems.append(f"1 to {limit} characters")
    if _CONTROL.search(text) or (not allow_newlines and ("\n" in text or "\t" in text)):
        problems.append("no control characters" + ("" if allow_newlines else " or line breaks"))
    if _TWELVE_DIGITS.search(text):
        # DESIGN §4: the individual number is never stored; a 12-digit run may be one.
        problems.append("no 12-digit numbers (個人番号は入力できません)")
    if problems:
        raise Refused("validation", errors={field: problems})
    return text


__all__ = [
    "ANSWERABLE",
    "MAX_ADJUSTMENT",
    "NOTE_MAX",
    "REASON_MAX",
    "AdjustmentResult",
    "acknowledge_statement",
    "adjust_statement",
    "adjustments_answering",
    "dispute_statement",
]
