"""Entitlements and their ledger. Every balance change is a conditional UPDATE plus a ledger entry."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from voucher_api.models import (
    Entitlement,
    EntitlementStatus,
    EntitlementUnit,
    LedgerEntry,
    LedgerKind,
    Program,
)
from voucher_api.services import audit
from voucher_api.services.errors import Conflict, NotFound, Refused


def grant(
    session: Session,
    *,
    resident_id: int,
    program: Program,
    application_id: int | None,
    actor: str,
    now: datetime,
) -> Entitlement:
    """Create the resident's entitlement for `program` with its grant entry (one per resident and program)."""
    entitlement = Entitlement(
        municipality_id=program.municipality_id,
        resident_id=resident_id,
        program_id=program.id,
        application_id=application_id,
        unit=EntitlementUnit(program.grant["unit"]),
        granted=int(program.grant["amount"]),
        balance=int(program.grant["amount"]),
        status=EntitlementStatus.ACTIVE,
        valid_from=program.valid_from,
        valid_to=program.valid_to,
        created_at=now,
    )
    session.add(entitlement)
    session.flush()
    session.add(
        LedgerEntry(
            entitlement_id=entitlement.id,
            kind=LedgerKind.GRANT,
            amount=entitlement.granted,
            balance_after=entitlement.balance,
            actor=actor,
            note=program.name,
            created_at=now,
        )
    )
    audit.record(
        session,
        at=now,
        actor=actor,
        action="entitlement.granted",
        entity_type="entitlement",
        entity_id=entitlement.id,
        municipality_id=program.municipality_id,
        details={"program": program.code, "unit": entitlement.unit.value, "amount": entitlement.granted},
    )
    return entitlement


# Core tables for the hot writes: plain statements, no ORM bookkeeping.
ENTITLEMENTS = cast(Table, Entitlement.__table__)
LEDGER = cast(Table, LedgerEntry.__table__)


def apply_delta(
    session: Session, *, entitlement_id: int, amount: int, require_active: bool = True
) -> int | None:
    """Add `amount` (negative to consume) in one conditional UPDATE; None if it would go below zero.

    This is the hot write of a boarding. The database CHECK (balance >= 0) backs the same rule.
    """
    t = ENTITLEMENTS
    conditions = [t.c.id == entitlement_id, t.c.balance + amount >= 0]
    if require_active:
        conditions.append(t.c.status == EntitlementStatus.ACTIVE.value)
    new_balance = session.execute(
        update(t).where(*conditions).values(balance=t.c.balance + amount).returning(t.c.balance)
    ).scalar()
    return None if new_balance is None else int(new_balance)


def append_ledger(
    session: Session,
    *,
    entitlement_id: int,
    kind: LedgerKind,
    amount: int,
    balance_after: int,
    actor: str,
    now: datetime,
    ride_id: int | None = None,
    note: str = "",
) -> None:
    session.execute(
        insert(LEDGER).values(
            entitlement_id=entitlement_id,
            kind=kind.value,
            amount=amount,
            balance_after=balance_after,
            ride_id=ride_id,
            actor=actor,
            note=note,
            created_at=now,
        )
    )


def change_balance(
    session: Session,
    *,
    entitlement_id: int,
    amount: int,
    kind: LedgerKind,
    actor: str,
    now: datetime,
    ride_id: int | None = None,
    note: str = "",
    require_active: bool = True,
) -> int | None:
    """`apply_delta` followed by its ledger entry; returns the new balance or None if refused."""
    new_balance = apply_delta(
        session, entitlement_id=entitlement_id, amount=amount, require_active=require_active
    )
    if new_balance is None:
        return None
    append_ledger(
        session,
        entitlement_id=entitlement_id,
        kind=kind,
        amount=amount,
        balance_after=new_balance,
        ride_id=ride_id,
        actor=actor,
        note=note,
        now=now,
    )
    return new_balance


def adjust(
    session: Session, *, entitlement_id: int, amount: int, reason: str, actor: str, now: datetime
) -> int:
    """A staff correction of the balance, with its reason; refuses to go below zero."""
    ent = session.get(Entitlement, entitlement_id)
    if ent is None:
        raise NotFound("not_found")
    new = change_balance(
        session,
        entitlement_id=entitlement_id,
        amount=amount,
        kind=LedgerKind.ADJUSTMENT,
        actor=actor,
        now=now,
        note=reason,
        require_active=False,
    )
    if new is None:
        raise Refused("entitlement.exhausted")
    audit.record(
        session,
        at=now,
        actor=actor,
        action="entitlement.adjusted",
        entity_type="entitlement",
        entity_id=entitlement_id,
        municipality_id=ent.municipality_id,
        details={"amount": amount, "reason": reason, "balance": new},
    )
    return new


def set_status(
    session: Session,
    *,
    entitlement_id: int,
    status: EntitlementStatus,
    reason: str,
    actor: str,
    now: datetime,
) -> Entitlement:
    """Suspend, reactivate or end an entitlement, with a reason (audited). Ended is final."""
    ent = session.get(Entitlement, entitlement_id)
    if ent is None:
        raise NotFound("not_found")
    if ent.status in (EntitlementStatus.ENDED, EntitlementStatus.EXPIRED) and status != ent.status:
        raise Conflict("conflict")
    previous = ent.status
    ent.status = status
    ent.status_reason = reason
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="entitlement.status_changed",
        entity_type="entitlement",
        entity_id=ent.id,
        municipality_id=ent.municipality_id,
        details={"from": previous.value, "to": status.value, "reason": reason},
    )
    return ent


def ledger_sum(session: Session, entitlement_id: int) -> int:
    """The balance recomputed from the ledger (what `Entitlement.balance` must always equal)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.entitlement_id == entitlement_id
            )
        )
        or 0
    )
