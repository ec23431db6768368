from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from voucher_api.api.common import StrictSchema
from voucher_api.api.context import clock, db, staff_required
from voucher_api.api.identity.routes import BindingSchema
from voucher_api.api.residents.routes import STAFF_ROLES, ResidentSchema, load_resident
from voucher_api.clock import japan_date
from voucher_api.models import (
    Application,
    CardBinding,
    District,
    Entitlement,
    Operator,
    Program,
    Ride,
)

blp = Blueprint(
    "resident_records",
    __name__,
    url_prefix="/residents",
    description="One resident's record for staff: entitlements, balances, rides, card bindings",
)


class RecordQuerySchema(StrictSchema):
    rides = fields.Integer(load_default=50, validate=validate.Range(0, 500))


class RecordEntitlementSchema(StrictSchema):
    id = fields.Integer()
    program_id = fields.Integer()
    program_code = fields.String()
    program_name = fields.String()
    application_id = fields.Integer(allow_none=True)
    unit = fields.String()
    granted = fields.Integer()
    balance = fields.Integer()
    status = fields.String()
    status_reason = fields.String()
    valid_from = fields.Date()
    valid_to = fields.Date()


class RecordRideSchema(StrictSchema):
    id = fields.Integer()
    boarded_at = fields.AwareDateTime()
    alighted_at = fields.AwareDateTime(allow_none=True)
    program_name = fields.String()
    operator_name = fields.String()
    status = fields.String()
    units_held = fields.Integer()
    units_used = fields.Integer(allow_none=True)
    meter_fare = fields.Integer(allow_none=True)
    subsidy_amount = fields.Integer(allow_none=True)
    rider_share = fields.Integer(allow_none=True)
    auth_method = fields.String()
    offline = fields.Boolean()


class RecordApplicationSchema(StrictSchema):
    id = fields.Integer()
    program_name = fields.String()
    channel = fields.String()
    status = fields.String()
    mobile_stop = fields.String(allow_none=True)
    decided_at = fields.AwareDateTime()


class RecordSchema(StrictSchema):
    resident = fields.Nested(ResidentSchema)
    age = fields.Integer()
    district_code = fields.String(allow_none=True)
    district_name = fields.String(allow_none=True)
    entitlements = fields.List(fields.Nested(RecordEntitlementSchema))
    bindings = fields.List(fields.Nested(BindingSchema))
    rides = fields.List(fields.Nested(RecordRideSchema))
    applications = fields.List(fields.Nested(RecordApplicationSchema))


@blp.route("/<int:resident_id>/record")
class ResidentRecord(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.arguments(RecordQuerySchema, location="query")
    @blp.response(200, RecordSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any], resident_id: int) -> Any:
        """Everything the counter needs about one resident: entitlements with balances, ride history
        (newest first), every card binding (active, replaced, ended) and past applications."""
        session = db()
        resident = load_resident(resident_id)
        district = session.get(District, resident.district_id) if resident.district_id else None
        entitlements = session.execute(
            select(Entitlement, Program.code, Program.name)
            .join(Program, Program.id == Entitlement.program_id)
            .where(Entitlement.resident_id == resident.id)
            .order_by(Entitlement.id)
        ).all()
        rides = session.execute(
            select(Ride, Program.name, Operator.name)
            .join(Program, Program.id == Ride.program_id)
            .join(Operator, Operator.id == Ride.operator_id)
            .where(Ride.resident_id == resident.id)
            .order_by(Ride.boarded_at.desc(), Ride.id.desc())
            .limit(query["rides"])
        ).all()
        applications = session.execute(
            select(Application, Program.name)
            .join(Program, Program.id == Application.program_id)
            .where(Application.resident_id == resident.id)
            .order_by(Application.decided_at.desc(), Application.id.desc())
            .limit(50)
        ).all()
        bindings = session.scalars(
            select(CardBinding).where(CardBinding.resident_id == resident.id).order_by(CardBinding.id.desc())
        ).all()
        return {
            "resident": resident,
            "age": resident.age_on(japan_date(clock().now())),
            "district_code": district.code if district else None,
            "district_name": district.name if district else None,
            "entitlements": [
                {
                    "id": e.id,
                    "program_id": e.program_id,
                    "program_code": code,
                    "program_name": name,
                    "application_id": e.application_id,
                    "unit": e.unit.value,
                    "granted": e.granted,
                    "balance": e.balance,
                    "status": e.status.value,
                    "status_reason": e.status_reason,
                    "valid_from": e.valid_from,
                    "valid_to": e.valid_to,
                }
                for e, code, name in entitlements
            ],
            "bindings": bindings,
            "rides": [
                {
                    "id": r.id,
                    "boarded_at": r.boarded_at,
                    "alighted_at": r.alighted_at,
                    "program_name": program_name,
                    "operator_name": operator_name,
                    "status": r.status.value,
                    "units_held": r.units_held,
                    "units_used": r.units_used,
                    "meter_fare": r.meter_fare,
                    "subsidy_amount": r.subsidy_amount,
                    "rider_share": r.rider_share,
                    "auth_method": r.auth_method,
                    "offline": r.offline,
                }
                for r, program_name, operator_name in rides
            ],
            "applications": [
                {
                    "id": a.id,
                    "program_name": program_name,
                    "channel": a.channel.value,
                    "status": a.status.value,
                    "mobile_stop": a.mobile_stop,
                    "decided_at": a.decided_at,
                }
                for a, program_name in applications
            ],
        }
