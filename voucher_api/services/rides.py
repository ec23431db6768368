"""Rides: redeemed at boarding (the entitlement is consumed then), completed at alighting, voidable briefly.

The boarding is a handful of statements; the critical write is one conditional UPDATE of the balance.
Concurrent boardings on one entitlement serialise on that row, so limits counted after it are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.orm import Session

from voucher_api.clock import fiscal_year_of, fiscal_year_start, japan_date, japan_midnight
from voucher_api.models import (
    BindingStatus,
    CardBinding,
    Entitlement,
    EntitlementStatus,
    LedgerKind,
    Program,
    Resident,
    ResidentStatus,
    Ride,
    RideStatus,
    StatementLine,
)
from voucher_api.services import audit, entitlements
from voucher_api.services.errors import Conflict, Forbidden, NotFound, Refused
from voucher_api.services.identity import CardProof, CardVerifier, consume_challenge
from voucher_api.services.program_rules import split_fare, units_to_hold
from voucher_api.services.tokens import Principal

HOLD_ATTEMPTS = 3
RIDES = cast(Table, Ride.__table__)  # Core for the hot writes


@dataclass(frozen=True)
class BoardRequest:
    idempotency_key: str
    sequence: int
    proof: CardProof
    driver_id: int | None = None
    trip_ref: str | None = None


@dataclass(frozen=True)
class RideView:
    """What the terminal shows: enough for a visual check, nothing more."""

    ride_id: int
    status: str
    given_name: str
    age_band: str
    program_name: str
    unit: str
    balance: int
    units_held: int
    boarded_at: datetime
    meter_fare: int | None = None
    subsidy: int | None = None
    rider_share: int | None = None
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def board_context(terminal_id: int) -> str:
    """The challenge context for a boarding: binds the card's signature to this terminal."""
    return f"terminal:{terminal_id}"


def age_band(birth_date: date, today: date) -> str:
    age = today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))
    return f"{(age // 10) * 10}代"


def find_by_key(session: Session, *, terminal_id: int, idempotency_key: str) -> RideView | None:
    """The ride a terminal already recorded under this key (a retried boarding)."""
    ride_id = session.scalar(
        select(Ride.id).where(Ride.terminal_id == terminal_id, Ride.idempotency_key == idempotency_key)
    )
    return None if ride_id is None else view(session, ride_id, replayed=True)


def view(session: Session, ride_id: int, *, replayed: bool = False) -> RideView:
    row = session.execute(
        select(
            Ride,
            Resident.given_name,
            Resident.birth_date,
            Program.name,
            Entitlement.unit,
            Entitlement.balance,
        )
        .join(Resident, Resident.id == Ride.resident_id)
        .join(Program, Program.id == Ride.program_id)
        .join(Entitlement, Entitlement.id == Ride.entitlement_id)
        .where(Ride.id == ride_id)
    ).first()
    if row is None:
        raise NotFound("ride.not_found")
    ride: Ride = row[0]
    return RideView(
        ride_id=ride.id,
        status=ride.status.value,
        given_name=row.given_name,
        age_band=age_band(row.birth_date, japan_date(ride.boarded_at)),
        program_name=row.name,
        unit=row.unit.value,
        balance=row.balance,
        units_held=ride.units_held,
        boarded_at=ride.boarded_at,
        meter_fare=ride.meter_fare,
        subsidy=ride.subsidy_amount,
        rider_share=ride.rider_share,
        replayed=replayed,
    )


def board(
    session: Session, verifier: CardVerifier, terminal: Principal, req: BoardRequest, now: datetime
) -> RideView:
    """Redeem a boarding: the card is proven, the entitlement is consumed, the ride is recorded.

    Raises (Refused/Unauthorized/Conflict) card.* , challenge.*, signature.invalid, entitlement.none,
    entitlement.suspended, entitlement.exhausted, limit.per_day/per_month/per_year. A retry with the
    same idempotency key returns the first ride (the caller looks it up first, see `find_by_key`).
    """
    if terminal.kind != "terminal" or terminal.operator_id is None or terminal.vehicle_id is None:
        raise Forbidden("auth.forbidden")
    card = verifier.verify_certificate(req.proof.certificate, req.proof.chain, now)
    today = japan_date(now)
    row = session.execute(
        select(
            CardBinding.id.label("binding_id"),
            Resident.id.label("resident_id"),
            Resident.given_name,
            Resident.birth_date,
            Resident.status.label("resident_status"),
            Entitlement.id.label("entitlement_id"),
            Entitlement.status.label("entitlement_status"),
            Entitlement.unit,
            Entitlement.balance,
            Program.id.label("program_id"),
            Program.name.label("program_name"),
            Program.subsidy,
            Program.limits,
            Program.options,
        )
        .select_from(CardBinding)
        .join(Resident, Resident.id == CardBinding.resident_id)
        .outerjoin(
            Entitlement,
            and_(
                Entitlement.resident_id == Resident.id,
                Entitlement.valid_from <= today,
                Entitlement.valid_to >= today,
                Entitlement.status.in_([EntitlementStatus.ACTIVE, EntitlementStatus.SUSPENDED]),
            ),
        )
        .outerjoin(Program, Program.id == Entitlement.program_id)
        .where(
            CardBinding.cert_fingerprint == card.fingerprint,
            CardBinding.status == BindingStatus.ACTIVE,
            CardBinding.municipality_id == terminal.municipality_id,
        )
        .order_by(Entitlement.status)  # 'active' sorts before 'suspended'
        .limit(1)
    ).first()
    if row is None:
        raise Refused("card.not_bound")
    # A resident who moved out keeps riding until the entitlement's cut-off date (end of that month).
    if row.entitlement_id is None or row.resident_status is ResidentStatus.DECEASED:
        raise Refused("entitlement.none")
    if row.entitlement_status is EntitlementStatus.SUSPENDED:
        raise Refused("entitlement.suspended")

    method = "pin"
    if req.proof.signature is None or req.proof.nonce is None:
        if not row.options.get("tap_allowed", False):
            raise Refused("card.tap_not_allowed")
        method = "tap"
    else:
        message = consume_challenge(
            session,
            verifier.challenge_key,
            nonce=req.proof.nonce,
            purpose="board",
            context=board_context(terminal.id),
            now=now,
            municipality_id=terminal.municipality_id,
        )
        verifier.verify_signature(card, message, req.proof.signature)

    target = RedeemTarget(
        entitlement_id=row.entitlement_id,
        resident_id=row.resident_id,
        program_id=row.program_id,
        unit=row.unit.value,
        balance_seen=int(row.balance),
        subsidy=row.subsidy,
        limits=row.limits,
        binding_id=row.binding_id,
    )
    ride_id, held, new_balance = redeem(
        session,
        terminal,
        target,
        sequence=req.sequence,
        idempotency_key=req.idempotency_key,
        method=method,
        now=now,
        driver_id=req.driver_id,
        trip_ref=req.trip_ref,
    )
    return RideView(
        ride_id=ride_id,
        status=RideStatus.BOARDED.value,
        given_name=row.given_name,
        age_band=age_band(row.birth_date, today),
        program_name=row.program_name,
        unit=row.unit.value,
        balance=new_balance,
        units_held=held,
        boarded_at=now,
    )


@dataclass(frozen=True)
class RedeemTarget:
    """The entitlement a boarding consumes, as read just before the conditional write."""

    entitlement_id: int
    resident_id: int
    program_id: int
    unit: str
    balance_seen: int
    subsidy: dict[str, Any]
    limits: dict[str, Any]
    binding_id: int | None


def redeem(
    session: Session,
    terminal: Principal,
    target: RedeemTarget,
    *,
    sequence: int,
    idempotency_key: str,
    method: str,
    now: datetime,
    driver_id: int | None = None,
    trip_ref: str | None = None,
    audit_details: dict[str, Any] | None = None,
    received_at: datetime | None = None,
) -> tuple[int, int, int]:
    """Consume the entitlement and record the ride: the part of a boarding after the card is proven.

    Holds units with one conditional UPDATE (retrying when a concurrent boarding changed the balance),
    enforces the limits, inserts the ride, its ledger entry and its audit entry. Returns
    (ride id, units held, new balance). Raises entitlement.exhausted and limit.*.
    `now` is when the rider boarded; `received_at` is set when that was earlier (an offline record).
    """
    if terminal.operator_id is None or terminal.vehicle_id is None:
        raise Forbidden("auth.forbidden")
    balance_seen = target.balance_seen
    held = 0
    new_balance: int | None = None
    for _attempt in range(HOLD_ATTEMPTS):
        held = units_to_hold(target.subsidy, target.unit, balance_seen)
        if held <= 0:
            raise Refused("entitlement.exhausted")
        new_balance = entitlements.apply_delta(session, entitlement_id=target.entitlement_id, amount=-held)
        if new_balance is not None:
            break
        # Another boarding consumed part of the balance since we read it: read again and retry.
        balance_seen = int(
            session.scalar(select(Entitlement.balance).where(Entitlement.id == target.entitlement_id)) or 0
        )
    if new_balance is None:
        raise Refused("entitlement.exhausted")

    check_limits(session, entitlement_id=target.entitlement_id, limits=target.limits, now=now)

    ride_id = session.execute(
        insert(RIDES)
        .values(
            municipality_id=terminal.municipality_id,
            entitlement_id=target.entitlement_id,
            program_id=target.program_id,
            resident_id=target.resident_id,
            operator_id=terminal.operator_id,
            vehicle_id=terminal.vehicle_id,
            terminal_id=terminal.id,
            driver_id=driver_id,
            binding_id=target.binding_id,
            terminal_sequence=sequence,
            idempotency_key=idempotency_key,
            trip_ref=trip_ref,
            auth_method=method,
            offline=received_at is not None,
            status=RideStatus.BOARDED.value,
            boarded_at=now,
            recorded_at=received_at or now,
            units_held=held,
        )
        .returning(RIDES.c.id)
    ).scalar_one()
    entitlements.append_ledger(
        session,
        entitlement_id=target.entitlement_id,
        kind=LedgerKind.RIDE,
        amount=-held,
        balance_after=new_balance,
        ride_id=ride_id,
        actor=terminal.actor,
        now=now,
        note="boarding",
    )
    audit.record(
        session,
        at=now,
        actor=terminal.actor,
        action="ride.boarded",
        entity_type="ride",
        entity_id=ride_id,
        municipality_id=terminal.municipality_id,
        details={"sequence": sequence, "held": held, "method": method, **(audit_details or {})},
    )
    return ride_id, held, new_balance


def check_limits(session: Session, *, entitlement_id: int, limits: dict[str, Any], now: datetime) -> None:
    """Count this entitlement's rides (the new one not yet inserted) in the Japan-time day, month, year."""
    per_day, per_month, per_year = limits.get("per_day"), limits.get("per_month"), limits.get("per_year")
    if not (per_day or per_month or per_year):
        return
    today = japan_date(now)
    day_start = japan_midnight(today)
    month_start = japan_midnight(today.replace(day=1))
    year_start = japan_midnight(fiscal_year_start(fiscal_year_of(today)))
    counts = session.execute(
        select(
            func.count().filter(Ride.boarded_at >= day_start),
            func.count().filter(Ride.boarded_at >= month_start),
            func.count(),
        ).where(
            Ride.entitlement_id == entitlement_id,
            Ride.boarded_at >= year_start,
            Ride.status != RideStatus.VOIDED,
        )
    ).one()
    if per_day and counts[0] >= per_day:
        raise Refused("limit.per_day", limit=per_day)
    if per_month and counts[1] >= per_month:
        raise Refused("limit.per_month", limit=per_month)
    if per_year and counts[2] >= per_year:
        raise Refused("limit.per_year", limit=per_year)


def _load_for_terminal(session: Session, terminal: Principal, ride_id: int) -> tuple[Ride, Program]:
    row = session.execute(
        select(Ride, Program).join(Program, Program.id == Ride.program_id).where(Ride.id == ride_id)
    ).first()
    if row is None or row[0].municipality_id != terminal.municipality_id:
        raise NotFound("ride.not_found")
    ride, program = row
    if terminal.kind == "terminal" and ride.operator_id != terminal.operator_id:
        raise Forbidden("auth.forbidden")
    return ride, program


def complete(
    session: Session, terminal: Principal, *, ride_id: int, meter_fare: int, now: datetime
) -> RideView:
    """Record the meter fare at alighting; the formula splits it and unused held units return.

    Entering the same fare again returns the same result (a retried request); a different fare on a
    completed ride is refused (ride.already_completed); a voided ride is refused (ride.voided).
    One read, one conditional update, the audit entry (and a ledger entry when units return).
    """
    row = session.execute(
        select(
            Ride.id,
            Ride.municipality_id,
            Ride.operator_id,
            Ride.entitlement_id,
            Ride.terminal_id,
            Ride.trip_ref,
            Ride.status,
            Ride.units_held,
            Ride.meter_fare,
            Ride.subsidy_amount,
            Ride.rider_share,
            Ride.boarded_at,
            Ride.review_code,
            Program.subsidy,
            Program.name.label("program_name"),
            Entitlement.unit,
            Entitlement.balance,
            Resident.given_name,
            Resident.birth_date,
        )
        .join(Program, Program.id == Ride.program_id)
        .join(Entitlement, Entitlement.id == Ride.entitlement_id)
        .join(Resident, Resident.id == Ride.resident_id)
        .where(Ride.id == ride_id)
    ).first()
    if row is None or row.municipality_id != terminal.municipality_id:
        raise NotFound("ride.not_found")
    if terminal.kind == "terminal" and row.operator_id != terminal.operator_id:
        raise Forbidden("auth.forbidden")

    def answer(
        status: RideStatus,
        balance: int,
        fare: int | None,
        subsidy: int | None,
        share: int | None,
        replayed: bool,
    ) -> RideView:
        return RideView(
            ride_id=row.id,
            status=status.value,
            given_name=row.given_name,
            age_band=age_band(row.birth_date, japan_date(row.boarded_at)),
            program_name=row.program_name,
            unit=row.unit.value,
            balance=balance,
            units_held=row.units_held,
            boarded_at=row.boarded_at,
            meter_fare=fare,
            subsidy=subsidy,
            rider_share=share,
            replayed=replayed,
        )

    if row.status is RideStatus.VOIDED:
        raise Conflict("ride.voided")
    if row.status is RideStatus.COMPLETED:
        if row.meter_fare == meter_fare:
            return answer(
                RideStatus.COMPLETED, row.balance, row.meter_fare, row.subsidy_amount, row.rider_share, True
            )
        raise Conflict("ride.already_completed")
    shared = (
        row.trip_ref is not None
        and (
            session.scalar(
                select(func.count()).where(Ride.trip_ref == row.trip_ref, Ride.terminal_id == row.terminal_id)
            )
            or 0
        )
        > 1
    )
    unit = row.unit.value
    # A ride under review held nothing (the balance was already used): price it as if it had, so the
    # statement can show what the program's loss policy assigns; nothing is returned to the balance.
    held = row.units_held if row.review_code is None else units_to_hold(row.subsidy, unit, 10**9)
    split = split_fare(row.subsidy, unit, held, meter_fare, shared=shared)
    updated = session.execute(
        update(RIDES)
        .where(RIDES.c.id == row.id, RIDES.c.status == RideStatus.BOARDED.value)
        .values(
            status=RideStatus.COMPLETED.value,
            alighted_at=now,
            meter_fare=meter_fare,
            subsidy_amount=split.subsidy,
            rider_share=split.rider_share,
            units_used=split.units_used,
        )
        .returning(RIDES.c.id)
    ).scalar()
    if updated is None:
        raise Conflict("conflict")
    balance = int(row.balance)
    release = row.units_held - split.units_used
    if release > 0 and row.review_code is None:
        balance = (
            entitlements.change_balance(
                session,
                entitlement_id=row.entitlement_id,
                amount=release,
                kind=LedgerKind.RIDE,
                actor=terminal.actor,
                now=now,
                ride_id=row.id,
                note="unused units returned at alighting",
                require_active=False,
            )
            or balance
        )
    audit.record(
        session,
        at=now,
        actor=terminal.actor,
        action="ride.completed",
        entity_type="ride",
        entity_id=row.id,
        municipality_id=row.municipality_id,
        details={"fare": meter_fare, "subsidy": split.subsidy, "rider_share": split.rider_share},
    )
    return answer(RideStatus.COMPLETED, balance, meter_fare, split.subsidy, split.rider_share, False)


def void(session: Session, actor: Principal, *, ride_id: int, reason: str, now: datetime) -> RideView:
    """Cancel a ride within the program's void window, before settlement; its units come back.

    Raises ride.void_window_passed, ride.settled, ride.voided (already voided returns it unchanged).
    """
    ride, program = _load_for_terminal(session, actor, ride_id)
    if ride.status is RideStatus.VOIDED:
        return view(session, ride.id, replayed=True)
    window = timedelta(minutes=int(program.options.get("void_window_minutes", 10)))
    reference = ride.alighted_at or ride.boarded_at
    if actor.kind == "terminal" and now > reference + window:
        raise Refused("ride.void_window_passed")
    settled = select(StatementLine.id).where(StatementLine.ride_id == ride.id)
    if session.scalar(settled) is not None:
        raise Conflict("ride.settled")
    updated = session.execute(
        update(Ride)
        # The NOT EXISTS repeats the check inside the write, so a line added meanwhile is still seen.
        .where(Ride.id == ride.id, Ride.status == ride.status, ~settled.exists())
        .values(status=RideStatus.VOIDED, voided_at=now, void_reason=reason)
        .returning(Ride.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    if updated is None:
        raise Conflict("conflict")
    consumed = ride.units_used if ride.units_used is not None else ride.units_held
    if ride.review_code is not None:
        consumed = 0  # a ride under review never took anything from the balance
    if consumed > 0:
        entitlements.change_balance(
            session,
            entitlement_id=ride.entitlement_id,
            amount=consumed,
            kind=LedgerKind.VOID,
            actor=actor.actor,
            now=now,
            ride_id=ride.id,
            note=reason[:200],
            require_active=False,
        )
    audit.record(
        session,
        at=now,
        actor=actor.actor,
        action="ride.voided",
        entity_type="ride",
        entity_id=ride.id,
        municipality_id=ride.municipality_id,
        details={"reason": reason, "returned": consumed},
    )
    session.expire(ride)
    return view(session, ride.id)
