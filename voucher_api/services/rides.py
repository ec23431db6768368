"""Rides: redeemed at boarding (the entitlement is consumed then), completed at alighting, voidable briefly.

The boarding is a handful of statements; the critical write is one conditional UPDATE of the balance.
Concurrent boardings on one entitlement serialise on that row, so limits counted after it are exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter, TextClause

from voucher_api.clock import fiscal_year_of, fiscal_year_start, japan_date, japan_midnight
from voucher_api.db import JsonDoc, UTCDateTime, one_transaction_from_here
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
from voucher_api.services.errors import Conflict, Forbidden, NotFound, Refused, Unauthorized
from voucher_api.services.identity import (
    CardProof,
    CardVerifier,
    CheckedChallenge,
    check_challenge,
    use_challenge,
)
from voucher_api.services.program_rules import split_fare, units_to_hold
from voucher_api.services.tokens import Principal

HOLD_ATTEMPTS = 3
# Core tables: boarding and alighting are the hot path, so they pay for no ORM bookkeeping, and their
# statements are built once here (SQLAlchemy then reuses the cache key and the compiled form).
RIDES = cast(Table, Ride.__table__)
BINDINGS = cast(Table, CardBinding.__table__)
RESIDENTS = cast(Table, Resident.__table__)
PROGRAMS = cast(Table, Program.__table__)
ENTITLEMENTS = entitlements.ENTITLEMENTS


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


_BOARDING_READ = (
    select(
        BINDINGS.c.id.label("binding_id"),
        RESIDENTS.c.id.label("resident_id"),
        RESIDENTS.c.given_name,
        RESIDENTS.c.birth_date,
        RESIDENTS.c.status.label("resident_status"),
        ENTITLEMENTS.c.id.label("entitlement_id"),
        ENTITLEMENTS.c.status.label("entitlement_status"),
        ENTITLEMENTS.c.unit,
        ENTITLEMENTS.c.balance,
        PROGRAMS.c.id.label("program_id"),
        PROGRAMS.c.name.label("program_name"),
        PROGRAMS.c.subsidy,
        PROGRAMS.c.limits,
        PROGRAMS.c.options,
    )
    .select_from(BINDINGS)
    .join(RESIDENTS, RESIDENTS.c.id == BINDINGS.c.resident_id)
    .outerjoin(
        ENTITLEMENTS,
        and_(
            ENTITLEMENTS.c.resident_id == RESIDENTS.c.id,
            ENTITLEMENTS.c.valid_from <= bindparam("today"),
            ENTITLEMENTS.c.valid_to >= bindparam("today"),
            # Two comparisons rather than IN: an IN list is re-rendered on every execution.
            or_(
                ENTITLEMENTS.c.status == EntitlementStatus.ACTIVE,
                ENTITLEMENTS.c.status == EntitlementStatus.SUSPENDED,
            ),
        ),
    )
    .outerjoin(PROGRAMS, PROGRAMS.c.id == ENTITLEMENTS.c.program_id)
    .where(
        BINDINGS.c.cert_fingerprint == bindparam("fingerprint"),
        BINDINGS.c.status == BindingStatus.ACTIVE,
        BINDINGS.c.municipality_id == bindparam("municipality_id"),
    )
    .order_by(ENTITLEMENTS.c.status)  # 'active' sorts before 'suspended'
    .limit(1)
)


def board(
    session: Session, verifier: CardVerifier, terminal: Principal, req: BoardRequest, now: datetime
) -> RideView:
    """Redeem a boarding: the card is proven, the entitlement is consumed, the ride is recorded.

    Raises (Refused/Unauthorized/Conflict) card.* , challenge.*, signature.invalid, entitlement.none,
    entitlement.suspended, entitlement.exhausted, limit.per_day/per_month/per_year. A retry with the
    same idempotency key returns the first ride (the caller looks it up first, see `find_by_key`).
    Two statements on PostgreSQL: the read below, and one write that uses up the challenge, holds the
    units and records the ride with its ledger and audit entries (a program with limits: the hold, then
    the count with the records, see `redeem`). Nothing is written before the card's signature has been
    checked. The API runs it on a session that commits each statement by itself
    (`voucher_api.db.commit_each_statement`): the single write is atomic on its own, and `redeem` opens
    a transaction for the limited case.
    """
    if terminal.kind != "terminal" or terminal.operator_id is None or terminal.vehicle_id is None:
        raise Forbidden("auth.forbidden")
    card = verifier.verify_certificate(req.proof.certificate, req.proof.chain, now)
    today = japan_date(now)
    # The session's connection, in the session's transaction: Core statements need no ORM execution.
    row = (
        session.connection()
        .execute(
            _BOARDING_READ,
            {"fingerprint": card.fingerprint, "today": today, "municipality_id": terminal.municipality_id},
        )
        .first()
    )
    if row is None:
        raise Refused("card.not_bound")
    # A resident who moved out keeps riding until the entitlement's cut-off date (end of that month).
    if row.entitlement_id is None or row.resident_status is ResidentStatus.DECEASED:
        raise Refused("entitlement.none")
    if row.entitlement_status is EntitlementStatus.SUSPENDED:
        raise Refused("entitlement.suspended")

    method = "pin"
    challenge: CheckedChallenge | None = None
    if req.proof.signature is None or req.proof.nonce is None:
        if not row.options.get("tap_allowed", False):
            raise Refused("card.tap_not_allowed")
        method = "tap"
    else:
        challenge = check_challenge(
            verifier.challenge_key,
            nonce=req.proof.nonce,
            purpose="board",
            context=board_context(terminal.id),
            now=now,
        )
        # The signature is checked before anything is written; the challenge is used up by the write.
        verifier.verify_signature(card, challenge.message, req.proof.signature)

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
        challenge=challenge,
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


# --- the boarding's write on PostgreSQL: one statement -------------------------------------------
#
# Data-modifying CTEs run as one statement on one snapshot and talk only through RETURNING: `used`
# uses the challenge up (nothing if it was used before), `held` is the conditional UPDATE of the balance
# (only when the challenge was used up), and the ride, its ledger entry and its audit entry are inserted
# only from the row `held` returned. So either all of it happens or none of it, in one round trip.
# A program with limits must count rides *after* the UPDATE has taken the entitlement's row lock (a
# statement's snapshot is older than the lock), so there the write is two statements in one
# transaction: the hold, then the count with the records, inserted only when the count is within the
# limits (`_PG_RECORD_WITHIN_LIMITS`; its snapshot is taken after the lock).

_USE_CHALLENGE_CTE = """used AS (
    INSERT INTO card_challenges (nonce, purpose, context, municipality_id, created_at, expires_at, used_at)
    VALUES (:nonce, :purpose, :context, :municipality_id, :now, :expires_at, :now)
    ON CONFLICT (nonce) DO NOTHING
    RETURNING id
)"""
_HOLD_CTE = """held AS (
    UPDATE entitlements SET balance = balance - :held
    WHERE id = :entitlement_id AND balance - :held >= 0 AND status = 'active'{guard}
    RETURNING balance
)"""
_HELD_BEFORE_CTE = "held AS (SELECT :balance_after AS balance)"  # held by an earlier statement
_RECORD_CTES = """ride AS (
    INSERT INTO rides (
        municipality_id, entitlement_id, program_id, resident_id, operator_id, vehicle_id, terminal_id,
        driver_id, binding_id, terminal_sequence, idempotency_key, trip_ref, auth_method, offline, status,
        boarded_at, recorded_at, units_held, void_reason
    )
    SELECT :municipality_id, :entitlement_id, :program_id, :resident_id, :operator_id, :vehicle_id,
        :terminal_id, :driver_id, :binding_id, :sequence, :idempotency_key, :trip_ref, :method, :offline,
        'boarded', :now, :recorded_at, :held, ''
    FROM held{within}
    RETURNING id
), ledger AS (
    INSERT INTO ledger_entries (entitlement_id, kind, amount, balance_after, ride_id, actor, note, created_at)
    SELECT :entitlement_id, 'ride', -:held, held.balance, ride.id, :actor, 'boarding', :now
    FROM held, ride
), audit AS (
    INSERT INTO audit_entries (municipality_id, at, actor, action, entity_type, entity_id, details)
    SELECT :municipality_id, :now, :actor, 'ride.boarded', 'ride', CAST(ride.id AS VARCHAR), :details
    FROM ride
)"""
_BOARD_TYPES: tuple[BindParameter[Any], ...] = (
    bindparam("now", type_=UTCDateTime()),
    bindparam("expires_at", type_=UTCDateTime()),
    bindparam("recorded_at", type_=UTCDateTime()),
    bindparam("details", type_=JsonDoc),
    *(
        bindparam(name, type_=BigInteger())
        for name in (
            "municipality_id",
            "entitlement_id",
            "program_id",
            "resident_id",
            "operator_id",
            "vehicle_id",
            "terminal_id",
            "driver_id",
            "binding_id",
            "sequence",
        )
    ),
    *(bindparam(name, type_=UTCDateTime()) for name in ("day_start", "month_start", "year_start")),
    *(
        bindparam(name, type_=Integer())
        for name in ("held", "balance_after", "per_day", "per_month", "per_year")
    ),
    *(
        bindparam(name, type_=String())
        for name in ("nonce", "purpose", "context", "idempotency_key", "trip_ref", "method", "actor")
    ),
    bindparam("offline", type_=Boolean()),
)


def _typed_text(sql: str, types: tuple[BindParameter[Any], ...]) -> TextClause:
    """A textual statement whose parameters get their column types (psycopg then sends typed values)."""
    names = set(re.findall(r"(?<![:\w]):(\w+)", sql))
    return text(sql).bindparams(*(p for p in types if p.key in names))


def _pg_board_statement(*, challenge: bool, hold: bool, record: bool) -> TextClause:
    """One variant of the write: with or without a challenge to use up, a hold, the ride's records."""
    ctes = [_USE_CHALLENGE_CTE] if challenge else []
    if hold:
        ctes.append(_HOLD_CTE.format(guard=" AND EXISTS (SELECT 1 FROM used)" if challenge else ""))
    else:
        ctes.append(_HELD_BEFORE_CTE)
    if record:
        ctes.append(_RECORD_CTES.format(within=""))
    used = "(SELECT count(*) FROM used)" if challenge else "1"
    ride = "(SELECT id FROM ride)" if record else "NULL"
    # Fixed fragments of this module only, assembled once at import; values always go in as parameters.
    select_list = f"{used} AS used, (SELECT balance FROM held) AS balance, {ride} AS ride_id"  # noqa: S608
    return _typed_text(f"WITH {', '.join(ctes)}\nSELECT {select_list}", _BOARD_TYPES)


# (challenge, hold, record) -> statement
_PG_BOARD = {
    variant: _pg_board_statement(challenge=variant[0], hold=variant[1], record=variant[2])
    for variant in ((True, True, True), (False, True, True), (True, True, False), (False, True, False))
}
# Counted and recorded in one statement, after `_PG_BOARD[(…, True, False)]` took the row lock: the
# ride is inserted only when every count is under its limit (an unset limit is passed as _NO_LIMIT).
_PG_RECORD_WITHIN_LIMITS = _typed_text(
    # Fixed fragments of this module only, as above; values always go in as parameters.
    f"""WITH {_HELD_BEFORE_CTE}, counted AS (
    SELECT count(*) FILTER (WHERE boarded_at >= :day_start) AS day,
        count(*) FILTER (WHERE boarded_at >= :month_start) AS month,
        count(*) AS year
    FROM rides
    WHERE entitlement_id = :entitlement_id AND boarded_at >= :year_start AND status <> 'voided'
), within AS (
    SELECT 1 FROM counted WHERE day < :per_day AND month < :per_month AND year < :per_year
), {_RECORD_CTES.format(within=", within")}
SELECT (SELECT id FROM ride) AS ride_id, counted.day, counted.month, counted.year FROM counted""",  # noqa: S608
    _BOARD_TYPES,
)
_NO_LIMIT = 2**31 - 1


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


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
    challenge: CheckedChallenge | None = None,
) -> tuple[int, int, int]:
    """Consume the entitlement and record the ride: the part of a boarding after the card is proven.

    Uses up `challenge` when given, holds units with one conditional UPDATE (retrying when a concurrent
    boarding changed the balance), enforces the limits, inserts the ride, its ledger entry and its
    audit entry. Returns (ride id, units held, new balance). Raises challenge.replayed,
    entitlement.exhausted and limit.*. On PostgreSQL this is a single statement for a program without
    limits, and two in one transaction for a program with limits (see above). `now` is when the rider
    boarded; `received_at` is set when that was earlier (an offline record).
    """
    if terminal.operator_id is None or terminal.vehicle_id is None:
        raise Forbidden("auth.forbidden")
    limited = any(target.limits.get(name) for name in ("per_day", "per_month", "per_year"))
    if not _on_postgresql(session):
        return _redeem_step_by_step(
            session,
            terminal,
            target,
            sequence=sequence,
            idempotency_key=idempotency_key,
            method=method,
            now=now,
            driver_id=driver_id,
            trip_ref=trip_ref,
            audit_details=audit_details,
            received_at=received_at,
            challenge=challenge,
        )
    params: dict[str, Any] = {
        "municipality_id": terminal.municipality_id,
        "entitlement_id": target.entitlement_id,
        "program_id": target.program_id,
        "resident_id": target.resident_id,
        "operator_id": terminal.operator_id,
        "vehicle_id": terminal.vehicle_id,
        "terminal_id": terminal.id,
        "driver_id": driver_id,
        "binding_id": target.binding_id,
        "sequence": sequence,
        "idempotency_key": idempotency_key,
        "trip_ref": trip_ref,
        "method": method,
        "offline": received_at is not None,
        "now": now,
        "recorded_at": received_at or now,
        "actor": terminal.actor,
    }
    if limited:
        # The hold and the counted records must be one transaction, even when the boarding's session
        # commits each statement by itself (the read before this has nothing to commit).
        one_transaction_from_here(session)
    pending = challenge
    balance_seen = target.balance_seen
    held = 0
    new_balance: int | None = None
    ride_id: int | None = None
    for _attempt in range(HOLD_ATTEMPTS):
        held = units_to_hold(target.subsidy, target.unit, balance_seen)
        if held <= 0:
            if pending is not None:  # a replayed challenge is reported as such, as on every path
                use_challenge(session, pending, now=now, municipality_id=terminal.municipality_id)
            raise Refused("entitlement.exhausted")
        params["held"] = held
        params["details"] = {"sequence": sequence, "held": held, "method": method, **(audit_details or {})}
        if pending is not None:
            params.update(nonce=pending.nonce, purpose=pending.purpose, context=pending.context)
            params["expires_at"] = pending.expires_at
        row = session.connection().execute(_PG_BOARD[(pending is not None, True, not limited)], params).one()
        if not row.used:
            raise Unauthorized("challenge.replayed")
        pending = None
        if row.balance is not None:
            new_balance, ride_id = int(row.balance), row.ride_id
            break
        # Another boarding consumed part of the balance since we read it: read again and retry.
        balance_seen = int(
            session.scalar(select(ENTITLEMENTS.c.balance).where(ENTITLEMENTS.c.id == target.entitlement_id))
            or 0
        )
    if new_balance is None:
        raise Refused("entitlement.exhausted")
    if limited:
        # Counted now that the UPDATE holds the entitlement's row: concurrent boardings are all seen.
        day_start, month_start, year_start = _limit_windows(now)
        params.update(
            balance_after=new_balance,
            day_start=day_start,
            month_start=month_start,
            year_start=year_start,
            **{name: target.limits.get(name) or _NO_LIMIT for name in ("per_day", "per_month", "per_year")},
        )
        recorded = session.connection().execute(_PG_RECORD_WITHIN_LIMITS, params).one()
        if recorded.ride_id is None:  # over a limit: the caller's rollback returns the units held
            _refuse_over_limits(target.limits, (recorded.day, recorded.month, recorded.year))
        ride_id = recorded.ride_id
    assert ride_id is not None  # the write inserted the ride with the units it held
    return int(ride_id), held, new_balance


def _redeem_step_by_step(
    session: Session,
    terminal: Principal,
    target: RedeemTarget,
    *,
    sequence: int,
    idempotency_key: str,
    method: str,
    now: datetime,
    driver_id: int | None,
    trip_ref: str | None,
    audit_details: dict[str, Any] | None,
    received_at: datetime | None,
    challenge: CheckedChallenge | None,
) -> tuple[int, int, int]:
    """`redeem` as separate statements, for SQLite (which has no data-modifying CTEs)."""
    if challenge is not None:
        use_challenge(session, challenge, now=now, municipality_id=terminal.municipality_id)
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


def _limit_windows(now: datetime) -> tuple[datetime, datetime, datetime]:
    """Where the Japan-time day, month and fiscal year of `now` begin (the limits count from there)."""
    today = japan_date(now)
    return (
        japan_midnight(today),
        japan_midnight(today.replace(day=1)),
        japan_midnight(fiscal_year_start(fiscal_year_of(today))),
    )


def _refuse_over_limits(limits: dict[str, Any], counts: tuple[int, int, int]) -> None:
    """Raise limit.per_day / per_month / per_year when the rides already counted reach that limit."""
    for name, counted in zip(("per_day", "per_month", "per_year"), counts, strict=True):
        limit = limits.get(name)
        if limit and counted >= limit:
            raise Refused(f"limit.{name}", limit=limit)


def check_limits(session: Session, *, entitlement_id: int, limits: dict[str, Any], now: datetime) -> None:
    """Count this entitlement's rides (the new one not yet inserted) in the Japan-time day, month, year."""
    if not any(limits.get(name) for name in ("per_day", "per_month", "per_year")):
        return
    day_start, month_start, year_start = _limit_windows(now)
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
    _refuse_over_limits(limits, (counts[0], counts[1], counts[2]))


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


_ALIGHTING_READ = (
    select(
        RIDES.c.id,
        RIDES.c.municipality_id,
        RIDES.c.operator_id,
        RIDES.c.entitlement_id,
        RIDES.c.terminal_id,
        RIDES.c.trip_ref,
        RIDES.c.status,
        RIDES.c.units_held,
        RIDES.c.meter_fare,
        RIDES.c.subsidy_amount,
        RIDES.c.rider_share,
        RIDES.c.boarded_at,
        RIDES.c.review_code,
        PROGRAMS.c.subsidy,
        PROGRAMS.c.name.label("program_name"),
        ENTITLEMENTS.c.unit,
        ENTITLEMENTS.c.balance,
        RESIDENTS.c.given_name,
        RESIDENTS.c.birth_date,
    )
    .join(PROGRAMS, PROGRAMS.c.id == RIDES.c.program_id)
    .join(ENTITLEMENTS, ENTITLEMENTS.c.id == RIDES.c.entitlement_id)
    .join(RESIDENTS, RESIDENTS.c.id == RIDES.c.resident_id)
    .where(RIDES.c.id == bindparam("ride_id"))
)
_ALIGHTING_SHARED = select(func.count()).where(
    RIDES.c.trip_ref == bindparam("trip_ref"), RIDES.c.terminal_id == bindparam("terminal_id")
)
_ALIGHTING_UPDATE = (
    update(RIDES)
    .where(RIDES.c.id == bindparam("ride_id"), RIDES.c.status == RideStatus.BOARDED.value)
    .values(
        status=RideStatus.COMPLETED.value,
        alighted_at=bindparam("now"),
        meter_fare=bindparam("meter_fare"),
        subsidy_amount=bindparam("subsidy"),
        rider_share=bindparam("rider_share"),
        units_used=bindparam("units_used"),
    )
    .returning(RIDES.c.id)
)

# The alighting's write on PostgreSQL, one statement (see the boarding's above): the conditional
# UPDATE of the ride, the units that come back with their ledger entry, and the audit entry.
_ALIGHTING_CTES = """WITH done AS (
    UPDATE rides SET status = 'completed', alighted_at = :now, meter_fare = :meter_fare,
        subsidy_amount = :subsidy, rider_share = :rider_share, units_used = :units_used
    WHERE id = :ride_id AND status = 'boarded'
    RETURNING id
){release}, audit AS (
    INSERT INTO audit_entries (municipality_id, at, actor, action, entity_type, entity_id, details)
    SELECT :municipality_id, :now, :actor, 'ride.completed', 'ride', CAST(done.id AS VARCHAR), :details
    FROM done
)
SELECT (SELECT id FROM done) AS ride_id, {balance} AS balance"""
_RELEASE_CTES = """, returned AS (
    UPDATE entitlements SET balance = balance + :release
    WHERE id = :entitlement_id AND balance + :release >= 0 AND EXISTS (SELECT 1 FROM done)
    RETURNING balance
), ledger AS (
    INSERT INTO ledger_entries (entitlement_id, kind, amount, balance_after, ride_id, actor, note, created_at)
    SELECT :entitlement_id, 'ride', :release, returned.balance, :ride_id, :actor,
        'unused units returned at alighting', :now
    FROM returned
)"""
_ALIGHTING_TYPES: tuple[BindParameter[Any], ...] = (
    bindparam("now", type_=UTCDateTime()),
    bindparam("details", type_=JsonDoc),
    *(bindparam(name, type_=BigInteger()) for name in ("ride_id", "municipality_id", "entitlement_id")),
    *(
        bindparam(name, type_=Integer())
        for name in ("meter_fare", "subsidy", "rider_share", "units_used", "release")
    ),
    bindparam("actor", type_=String()),
)


def _pg_alighting_statement(*, release: bool) -> TextClause:
    sql = _ALIGHTING_CTES.format(
        release=_RELEASE_CTES if release else "",
        balance="(SELECT balance FROM returned)" if release else "NULL",
    )
    return _typed_text(sql, _ALIGHTING_TYPES)


_PG_ALIGHTING = {release: _pg_alighting_statement(release=release) for release in (False, True)}


def complete(
    session: Session, terminal: Principal, *, ride_id: int, meter_fare: int, now: datetime
) -> RideView:
    """Record the meter fare at alighting; the formula splits it and unused held units return.

    Entering the same fare again returns the same result (a retried request); a different fare on a
    completed ride is refused (ride.already_completed); a voided ride is refused (ride.voided).
    One read, one conditional update, the audit entry (and a ledger entry when units return); on
    PostgreSQL the writes are one statement.
    """
    row = session.connection().execute(_ALIGHTING_READ, {"ride_id": ride_id}).first()
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
            session.scalar(_ALIGHTING_SHARED, {"trip_ref": row.trip_ref, "terminal_id": row.terminal_id}) or 0
        )
        > 1
    )
    unit = row.unit.value
    # A ride under review held nothing (the balance was already used): price it as if it had, so the
    # statement can show what the program's loss policy assigns; nothing is returned to the balance.
    held = row.units_held if row.review_code is None else units_to_hold(row.subsidy, unit, 10**9)
    split = split_fare(row.subsidy, unit, held, meter_fare, shared=shared)
    balance = int(row.balance)
    release = row.units_held - split.units_used
    returns = release > 0 and row.review_code is None
    values = {
        "ride_id": row.id,
        "now": now,
        "meter_fare": meter_fare,
        "subsidy": split.subsidy,
        "rider_share": split.rider_share,
        "units_used": split.units_used,
    }
    details = {"fare": meter_fare, "subsidy": split.subsidy, "rider_share": split.rider_share}
    if _on_postgresql(session):
        written = (
            session.connection()
            .execute(
                _PG_ALIGHTING[returns],
                {
                    **values,
                    "municipality_id": row.municipality_id,
                    "entitlement_id": row.entitlement_id,
                    "release": release,
                    "actor": terminal.actor,
                    "details": details,
                },
            )
            .one()
        )
        if written.ride_id is None:
            raise Conflict("conflict")
        if returns and written.balance is not None:
            balance = int(written.balance)
        return answer(RideStatus.COMPLETED, balance, meter_fare, split.subsidy, split.rider_share, False)

    if session.execute(_ALIGHTING_UPDATE, values).scalar() is None:
        raise Conflict("conflict")
    if returns:
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
        details=details,
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
    settled = select(StatementLine.ride_id).where(StatementLine.ride_id == ride.id)
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
