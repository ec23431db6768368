from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from voucher_api.api.context import current_principal, db, staff_required
from voucher_api.api.slips.pdf import OperatorContact, SlipDoc, render_slip
from voucher_api.clock import japan_date
from voucher_api.models import (
    Application,
    ApplicationStatus,
    Entitlement,
    MobileStop,
    Municipality,
    Operator,
    Program,
    Resident,
)
from voucher_api.services.errors import NotFound

blp = Blueprint("slips", __name__, url_prefix="/applications", description="The hand-over slip (PDF)")


def slip_for(application: Application) -> SlipDoc:
    """Gather what the slip prints: the resident, the program's rules, the grant, the city's contact."""
    session = db()
    resident = session.get(Resident, application.resident_id)
    program = session.get(Program, application.program_id)
    city = session.get(Municipality, application.municipality_id)
    if resident is None or program is None or city is None:
        raise NotFound("not_found")
    entitlement = session.scalar(select(Entitlement).where(Entitlement.application_id == application.id))
    place = None
    if application.mobile_stop:
        place = session.scalar(
            select(MobileStop.place).where(
                MobileStop.municipality_id == city.id, MobileStop.code == application.mobile_stop
            )
        )
        place = place or application.mobile_stop
    operators = session.scalars(
        select(Operator).where(Operator.municipality_id == city.id).order_by(Operator.code)
    )
    return SlipDoc(
        application_id=application.id,
        approved=application.status is ApplicationStatus.APPROVED and entitlement is not None,
        issued_on=japan_date(application.decided_at),
        city_name=city.name,
        city_contact=city.contact,
        resident_name=resident.full_name,
        resident_name_kana=resident.full_name_kana,
        address=resident.address,
        program_name=program.name,
        channel=application.channel.value,
        place=place,
        unit=entitlement.unit.value if entitlement else None,
        granted=entitlement.granted if entitlement else None,
        valid_from=entitlement.valid_from if entitlement else None,
        valid_to=entitlement.valid_to if entitlement else None,
        subsidy=dict(program.subsidy),
        limits=dict(program.limits or {}),
        tap_allowed=bool((program.options or {}).get("tap_allowed")),
        unmet_reasons=tuple(str(r.get("ja", "")) for r in application.reasons if not r.get("met")),
        operators=tuple(OperatorContact(op.name, op.contact) for op in operators),
    )


@blp.route("/<int:application_id>/slip.pdf")
class Slip(MethodView):
    @staff_required("counter", "mobile_office")
    @blp.response(200, content_type="application/pdf")
    @blp.doc(security=[{"bearer": []}])
    def get(self, application_id: int) -> Any:
        """The hand-over slip in Japanese: the entitlement, how to ride, the city's contact (A4 PDF)."""
        application = db().get(Application, application_id)
        if application is None or application.municipality_id != current_principal().municipality_id:
            raise NotFound("not_found")
        response = Response(render_slip(slip_for(application)), mimetype="application/pdf")
        response.headers["Content-Disposition"] = f'inline; filename="slip-{application.id}.pdf"'
        response.headers["Cache-Control"] = "no-store"
        return response
