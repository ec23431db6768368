from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, db, settings, staff_required
from voucher_api.models import Operator, Vehicle
from voucher_api.services import terminals
from voucher_api.services.errors import NotFound

blp = Blueprint("terminals", __name__, url_prefix="/terminals", description="In-car terminals")


class NewTerminalRequestSchema(StrictSchema):
    vehicle_id = Id(required=True)


class NewTerminalSchema(StrictSchema):
    terminal_id = fields.Integer()
    vehicle_id = fields.Integer()
    enrolment_code = fields.String(metadata={"description": "shown once; type it on the terminal"})
    expires_at = fields.AwareDateTime()


class EnrolRequestSchema(StrictSchema):
    enrolment_code = fields.String(required=True, validate=validate.Length(4, 40))
    public_key = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{43}=?$"),
        metadata={"description": "raw Ed25519 public key, base64url"},
    )


class EnrolledSchema(StrictSchema):
    terminal_id = fields.Integer()
    operator_id = fields.Integer()
    vehicle_id = fields.Integer()
    municipality_id = fields.Integer()


@blp.route("")
class Terminals(MethodView):
    @staff_required("operator_admin")
    @blp.arguments(NewTerminalRequestSchema)
    @blp.response(201, NewTerminalSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Register a terminal for a vehicle and get its one-time enrolment code."""
        principal = _authenticate()
        vehicle = db().get(Vehicle, body["vehicle_id"])
        if vehicle is None or (
            "admin" not in principal.roles and principal.operator_id not in (None, vehicle.operator_id)
        ):
            raise NotFound("not_found")
        created = terminals.create_terminal(
            db(),
            vehicle_id=vehicle.id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
            ttl=timedelta(seconds=settings().enrolment_code_ttl_seconds),
        )
        return {
            "terminal_id": created.terminal.id,
            "vehicle_id": vehicle.id,
            "enrolment_code": created.enrolment_code,
            "expires_at": created.terminal.enrolment_expires_at,
        }


@blp.route("/enrol")
class Enrol(MethodView):
    @blp.arguments(EnrolRequestSchema)
    @blp.response(201, EnrolledSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Enrol a device: the one-time code plus the device's Ed25519 public key."""
        terminal = terminals.enrol(
            db(), code=body["enrolment_code"], public_key_b64=body["public_key"], now=clock().now()
        )
        municipality_id = db().get(Operator, terminal.operator_id)
        return {
            "terminal_id": terminal.id,
            "operator_id": terminal.operator_id,
            "vehicle_id": terminal.vehicle_id,
            "municipality_id": municipality_id.municipality_id if municipality_id else None,
        }
