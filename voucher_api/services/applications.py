"""Applications: identity checked, eligibility decided on the spot, the entitlement granted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from voucher_api.clock import japan_date
from voucher_api.models import (
    Application,
    ApplicationChannel,
    ApplicationStatus,
    BindingStatus,
    CardBinding,
    Entitlement,
    Program,
    Resident,
)
from voucher_api.services import audit, eligibility, entitlements
from voucher_api.services.errors import Conflict, NotFound, Refused


@dataclass(frozen=True)
class ApplicationResult:
    application: Application
    entitlement: Entitlement | None


def apply(
    session: Session,
    *,
    municipality_id: int,
    resident_id: int,
    program_id: int,
    channel: ApplicationChannel,
    staff_id: int,
    now: datetime,
    staff_attested: bool = False,
    mobile_stop: str | None = None,
) -> ApplicationResult:
    """Take an application and decide it now; grant the entitlement when every rule holds.

    Identity: the resident needs an active card binding, or the staff member attests the check
    (face-recognition cards, forgotten passwords). A rejected application is still recorded, with its
    reasons. Raises NotFound for an unknown resident/program (or one of another city),
    Refused('application.identity_required'), Conflict('application.already_entitled').
    """
    resident = session.get(Resident, resident_id)
    if resident is None or resident.municipality_id != municipality_id:
        raise NotFound("resident.not_found")
    program = session.get(Program, program_id)
    if program is None or program.municipality_id != municipality_id:
        raise NotFound("program.not_found")
    binding_method = session.scalar(
        select(CardBinding.method).where(
            CardBinding.resident_id == resident.id, CardBinding.status == BindingStatus.ACTIVE
        )
    )
    if binding_method is None and not staff_attested:
        raise Refused("application.identity_required")
    existing = session.scalar(
        select(Entitlement.id).where(
            Entitlement.resident_id == resident.id, Entitlement.program_id == program.id
        )
    )
    if existing is not None:
        raise Conflict("application.already_entitled", entitlement_id=existing)

    decision = eligibility.decide(session, resident, program, today=japan_date(now))
    application = Application(
        municipality_id=municipality_id,
        resident_id=resident.id,
        program_id=program.id,
        channel=channel,
        status=ApplicationStatus.APPROVED if decision.eligible else ApplicationStatus.REJECTED,
        reasons=[r.as_dict() for r in decision.reasons],
        identity_method=binding_method.value if binding_method is not None else "staff_attested",
        mobile_stop=mobile_stop,
        decided_by_id=staff_id,
        decided_at=now,
    )
    session.add(application)
    session.flush()
    actor = f"staff:{staff_id}"
    audit.record(
        session,
        at=now,
        actor=actor,
        action="application.decided",
        entity_type="application",
        entity_id=application.id,
        municipality_id=municipality_id,
        details={"program": program.code, "status": application.status.value, "channel": channel.value},
    )
    granted = None
    if decision.eligible:
        granted = entitlements.grant(
            session,
            resident_id=resident.id,
            program=program,
            application_id=application.id,
            actor=actor,
            now=now,
        )
    return ApplicationResult(application=application, entitlement=granted)
