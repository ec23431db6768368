from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields
from sqlalchemy import select

from voucher_api.api.common import StrictSchema
from voucher_api.api.context import current_principal, db, staff_required
from voucher_api.models import Driver, Operator, Vehicle
from voucher_api.services.errors import NotFound

blp = Blueprint(
    "operators", __name__, url_prefix="/operators", description="Taxi operators, vehicles, drivers"
)


class OperatorSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_kana = fields.String()
    contact = fields.String()


class VehicleSchema(StrictSchema):
    id = fields.Integer()
    operator_id = fields.Integer()
    registration = fields.String()
    label = fields.String()


class DriverSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    active = fields.Boolean()


def load_operator(operator_id: int) -> Operator:
    principal = current_principal()
    operator = db().get(Operator, operator_id)
    if operator is None or operator.municipality_id != principal.municipality_id:
        raise NotFound("not_found")
    if "operator_admin" in principal.roles and principal.operator_id not in (None, operator.id):
        raise NotFound("not_found")
    return operator


@blp.route("")
class Operators(MethodView):
    @staff_required()
    @blp.response(200, OperatorSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """The city's designated taxi operators."""
        return (
            db()
            .scalars(
                select(Operator)
                .where(Operator.municipality_id == current_principal().municipality_id)
                .order_by(Operator.code)
            )
            .all()
        )


@blp.route("/<int:operator_id>/vehicles")
class Vehicles(MethodView):
    @staff_required()
    @blp.response(200, VehicleSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, operator_id: int) -> Any:
        """An operator's vehicles."""
        load_operator(operator_id)
        return (
            db().scalars(select(Vehicle).where(Vehicle.operator_id == operator_id).order_by(Vehicle.id)).all()
        )


@blp.route("/<int:operator_id>/drivers")
class Drivers(MethodView):
    @staff_required()
    @blp.response(200, DriverSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, operator_id: int) -> Any:
        """An operator's drivers."""
        load_operator(operator_id)
        return (
            db().scalars(select(Driver).where(Driver.operator_id == operator_id).order_by(Driver.code)).all()
        )
