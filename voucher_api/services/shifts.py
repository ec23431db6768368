"""Driver shifts: a driver signs in on a terminal at the start of a shift and out at the end."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from voucher_api.models import Driver, DriverShift, Ride
from voucher_api.services import audit
from voucher_api.services.errors import NotFound
from voucher_api.services.tokens import Principal


def start(
    session: Session, terminal: Principal, *, driver_code: str, now: datetime
) -> tuple[DriverShift, str]:
    """Open a shift for one of the operator's active drivers; a shift left open on this terminal ends now."""
    driver = session.scalar(
        select(Driver).where(
            Driver.operator_id == terminal.operator_id, Driver.code == driver_code, Driver.active
        )
    )
    if driver is None:
        raise NotFound("not_found", field="driver_code")
    left_open = session.execute(
        update(DriverShift)
        .where(DriverShift.terminal_id == terminal.id, DriverShift.ended_at.is_(None))
        .values(ended_at=now)
        .returning(DriverShift.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    for ended_id in left_open.all():
        audit.record(
            session,
            at=now,
            actor=terminal.actor,
            action="shift.ended",
            entity_type="driver_shift",
            entity_id=ended_id,
            municipality_id=terminal.municipality_id,
            details={"reason": "next_shift_started"},
        )
    shift = DriverShift(terminal_id=terminal.id, driver_id=driver.id, started_at=now)
    session.add(shift)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=terminal.actor,
        action="shift.started",
        entity_type="driver_shift",
        entity_id=shift.id,
        municipality_id=terminal.municipality_id,
        details={"driver_id": driver.id},
    )
    return shift, driver.name


def end(
    session: Session, terminal: Principal, *, shift_id: int, now: datetime
) -> tuple[DriverShift, str, int]:
    """Close the shift (ending twice returns it unchanged); counts the rides boarded during it."""
    shift = session.get(DriverShift, shift_id)
    if shift is None or shift.terminal_id != terminal.id:
        raise NotFound("not_found")
    if shift.ended_at is None:
        shift.ended_at = now
        session.flush()
        audit.record(
            session,
            at=now,
            actor=terminal.actor,
            action="shift.ended",
            entity_type="driver_shift",
            entity_id=shift.id,
            municipality_id=terminal.municipality_id,
            details={},
        )
    name = session.scalar(select(Driver.name).where(Driver.id == shift.driver_id)) or ""
    assert shift.ended_at is not None
    count = session.scalar(
        select(func.count()).where(
            Ride.terminal_id == terminal.id,
            Ride.boarded_at >= shift.started_at,
            Ride.boarded_at <= shift.ended_at,
        )
    )
    return shift, name, int(count or 0)
