from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, current_principal, db, staff_required
from voucher_api.api.entitlements.routes import EntitlementSchema
from voucher_api.api.idempotency import idempotent
from voucher_api.api.residents.routes import ReasonSchema
from voucher_api.models import Application, ApplicationChannel
from voucher_api.services import applications
from voucher_api.services.errors import NotFound

blp = Blueprint("applications", __name__, url_prefix="/applications", description="Applications to programs")


class ApplicationRequestSchema(StrictSchema):
    resident_id = Id(required=True)
    program_id = Id(required=True)
    channel = fields.String(required=True, validate=validate.OneOf([c.value for c in ApplicationChannel]))
    staff_attested = fields.Boolean(
        load_default=False, metadata={"description": "staff checked identity in person (no card signature)"}
    )
    mobile_stop = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 100))


class ApplicationSchema(StrictSchema):
    id = fields.Integer()
    resident_id = fields.Integer()
    program_id = fields.Integer()
    channel = fields.Function(lambda a: a.channel.value)
    status = fields.Function(lambda a: a.status.value)
    reasons = fields.List(fields.Nested(ReasonSchema))
    identity_method = fields.String()
    mobile_stop = fields.String(allow_none=True)
    decided_at = fields.AwareDateTime()


class ApplicationResultSchema(StrictSchema):
    application = fields.Nested(ApplicationSchema)
    entitlement = fields.Nested(EntitlementSchema, allow_none=True)


@blp.route("")
class Applications(MethodView):
    @staff_required("counter", "mobile_office")
    @idempotent(required=True)
    @blp.arguments(ApplicationRequestSchema)
    @blp.response(201, ApplicationResultSchema)
    @blp.doc(
        security=[{"bearer": []}], parameters=[{"in": "header", "name": "Idempotency-Key", "required": True}]
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Take an application and decide it on the spot; an eligible resident is granted the entitlement."""
        principal = _authenticate()
        result = applications.apply(
            db(),
            municipality_id=principal.municipality_id,
            resident_id=body["resident_id"],
            program_id=body["program_id"],
            channel=ApplicationChannel(body["channel"]),
            staff_id=principal.id,
            now=clock().now(),
            staff_attested=body["staff_attested"],
            mobile_stop=body["mobile_stop"],
        )
        return {"application": result.application, "entitlement": result.entitlement}


@blp.route("/<int:application_id>")
class ApplicationById(MethodView):
    @staff_required("counter", "mobile_office", "auditor")
    @blp.response(200, ApplicationSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, application_id: int) -> Any:
        """One application with its decision and reasons."""
        application = db().get(Application, application_id)
        if application is None or application.municipality_id != current_principal().municipality_id:
            raise NotFound("not_found")
        return application
