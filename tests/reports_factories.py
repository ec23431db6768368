"""Rides written straight to the table for the finance reports and pages: any resident, entitlement,
program and car, at any instant, with amounts from the program's own formula (so they pass the ride checks).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from voucher_api.models import Entitlement, Program, Ride, RideStatus
from voucher_api.services.program_rules import split_fare

_seq = itertools.count(1)


def ride_of(
    session: Session,
    ent: Entitlement,
    program: Program,
    *,
    operator_id: int,
    vehicle_id: int,
    terminal_id: int,
    boarded_at: datetime,
    fare: int | None,
    voided: bool = False,
) -> Ride:
    """A ride boarded at `boarded_at`: completed with `fare`, still on board when `fare` is None."""
    n = next(_seq)
    values: dict[str, Any] = {}
    status = RideStatus.BOARDED
    if fare is not None:
        split = split_fare(program.subsidy, ent.unit.value, 1, fare)
        values = {
            "meter_fare": fare,
            "subsidy_amount": split.subsidy,
            "rider_share": split.rider_share,
            "units_used": split.units_used,
            "alighted_at": boarded_at + timedelta(minutes=20),
        }
        status = RideStatus.COMPLETED
    if voided:
        status = RideStatus.VOIDED
        values["voided_at"] = boarded_at + timedelta(minutes=5)
        values["void_reason"] = "誤操作"
    made = Ride(
        municipality_id=ent.municipality_id,
        entitlement_id=ent.id,
        program_id=program.id,
        resident_id=ent.resident_id,
        operator_id=operator_id,
        vehicle_id=vehicle_id,
        terminal_id=terminal_id,
        terminal_sequence=n,
        idempotency_key=f"finance-ride-{n}",
        auth_method="pin",
        status=status,
        boarded_at=boarded_at,
        recorded_at=boarded_at,
        units_held=1,
        **values,
    )
    session.add(made)
    return made
