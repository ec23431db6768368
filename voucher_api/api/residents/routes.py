from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import func, select

from voucher_api.api.common import StrictSchema
from voucher_api.api.context import clock, current_principal, db, staff_required
from voucher_api.clock import japan_date
from voucher_api.models import Resident
from voucher_api.services import eligibility
from voucher_api.services.errors import NotFound

blp = Blueprint("residents", __name__, url_prefix="/residents", description="Resident registry look-up")

STAFF_ROLES = ("counter", "mobile_office", "auditor")


class ResidentQuerySchema(StrictSchema):
    kana = fields.String(validate=validate.Length(1, 50))
    birth_date = fields.Date()
    registry_id = fields.String(validate=validate.Length(1, 32))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class ResidentSchema(StrictSchema):
    id = fields.Integer()
    registry_id = fields.String()
    family_name = fields.String()
    given_name = fields.String()
    family_name_kana = fields.String()
    given_name_kana = fields.String()
    birth_date = fields.Date()
    sex = fields.String()
    address = fields.String()
    car_licence = fields.String()
    disability_certificates = fields.List(fields.Dict())
    status = fields.Function(lambda r: r.status.value)


class ReasonSchema(StrictSchema):
    rule = fields.String()
    met = fields.Boolean()
    ja = fields.String()
    en = fields.String()


class DecisionSchema(StrictSchema):
    program_id = fields.Integer()
    program_code = fields.String()
    program_name = fields.String()
    eligible = fields.Boolean()
    reasons = fields.List(fields.Nested(ReasonSchema))


def to_katakana(text: str) -> str:
    """Hiragana typed by staff matches katakana in the registry; spaces are ignored."""
    text = unicodedata.normalize("NFKC", text).replace(" ", "").replace("\u3000", "")
    return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)


def load_resident(resident_id: int) -> Resident:
    resident = db().get(Resident, resident_id)
    if resident is None or resident.municipality_id != current_principal().municipality_id:
        raise NotFound("resident.not_found")
    return resident


@blp.route("")
class Residents(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.arguments(ResidentQuerySchema, location="query")
    @blp.response(200, ResidentSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """Search residents by kana (prefix of family+given name) and birth date, or by registry id."""
        stmt = select(Resident).where(Resident.municipality_id == current_principal().municipality_id)
        if "kana" in query:
            stmt = stmt.where(
                func.replace(Resident.family_name_kana + Resident.given_name_kana, " ", "").like(
                    to_katakana(query["kana"]).replace("%", "").replace("_", "") + "%"
                )
            )
        if "birth_date" in query:
            stmt = stmt.where(Resident.birth_date == query["birth_date"])
        if "registry_id" in query:
            stmt = stmt.where(Resident.registry_id == query["registry_id"])
        return db().scalars(stmt.order_by(Resident.family_name_kana, Resident.id).limit(query["limit"])).all()


@blp.route("/<int:resident_id>")
class ResidentById(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, ResidentSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, resident_id: int) -> Any:
        """One resident as last synchronised from the registry."""
        return load_resident(resident_id)


@blp.route("/<int:resident_id>/eligibility")
class Eligibility(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, DecisionSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, resident_id: int) -> Any:
        """For every running program: eligible or not, with the reasons and exclusions in plain words."""
        resident = load_resident(resident_id)
        today: date = japan_date(clock().now())
        return [
            {
                "program_id": d.program.id,
                "program_code": d.program.code,
                "program_name": d.program.name,
                "eligible": d.eligible,
                "reasons": [r.as_dict() for r in d.reasons],
            }
            for d in eligibility.decide_all(db(), resident, today=today)
        ]
