from __future__ import annotations

from datetime import date
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError
from sqlalchemy import select

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, current_principal, db, staff_required
from voucher_api.models import Program, ProgramExclusion
from voucher_api.services import audit
from voucher_api.services.program_rules import validate_rules

blp = Blueprint("programs", __name__, url_prefix="/programs", description="Subsidy programs (rules as data)")


class ProgramSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9_-]{2,40}$"))
    name = fields.String(required=True, validate=validate.Length(1, 100))
    name_en = fields.String(required=True, validate=validate.Length(1, 100))
    fiscal_year = fields.Integer(required=True, validate=validate.Range(2000, 2100))
    valid_from = fields.Date(required=True)
    valid_to = fields.Date(required=True)
    eligibility = fields.List(fields.Dict(), required=True, validate=validate.Length(max=20))
    subsidy = fields.Dict(required=True)
    grant = fields.Dict(required=True)
    limits = fields.Dict(load_default=dict)
    options = fields.Dict(load_default=dict)
    excludes = fields.List(Id(), load_default=list, validate=validate.Length(max=20))

    @validates_schema
    def _period(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("valid_from"), data.get("valid_to")
        if isinstance(start, date) and isinstance(end, date) and start > end:
            raise ValidationError("valid_from must not be after valid_to", field_name="valid_to")


class ProgramOutSchema(ProgramSchema):
    excludes = fields.Method("_excludes")  # type: ignore[assignment]  # computed on output

    def _excludes(self, program: Program) -> list[int]:
        return list(
            db().scalars(
                select(ProgramExclusion.excluded_program_id).where(ProgramExclusion.program_id == program.id)
            )
        )


@blp.route("")
class Programs(MethodView):
    @staff_required()
    @blp.response(200, ProgramOutSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """All programs of the caller's city."""
        return (
            db()
            .scalars(
                select(Program)
                .where(Program.municipality_id == current_principal().municipality_id)
                .order_by(Program.id)
            )
            .all()
        )

    @staff_required("admin")
    @blp.arguments(ProgramSchema)
    @blp.response(201, ProgramOutSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Create a program; its rules are validated as data. `excludes` lists mutually exclusive programs."""
        principal = _authenticate()
        rules = validate_rules({k: body[k] for k in ("eligibility", "subsidy", "grant", "limits", "options")})
        now = clock().now()
        program = Program(
            municipality_id=principal.municipality_id,
            code=body["code"],
            name=body["name"],
            name_en=body["name_en"],
            fiscal_year=body["fiscal_year"],
            valid_from=body["valid_from"],
            valid_to=body["valid_to"],
            created_at=now,
            **rules,
        )
        session = db()
        session.add(program)
        session.flush()
        for other_id in body["excludes"]:
            other = session.get(Program, other_id)
            if other is None or other.municipality_id != principal.municipality_id:
                from voucher_api.services.errors import NotFound

                raise NotFound("program.not_found", program_id=other_id)
            session.add(ProgramExclusion(program_id=program.id, excluded_program_id=other_id))
            session.add(ProgramExclusion(program_id=other_id, excluded_program_id=program.id))
        audit.record(
            session,
            at=now,
            actor=principal.actor,
            action="program.created",
            entity_type="program",
            entity_id=program.id,
            municipality_id=principal.municipality_id,
            details={"code": program.code, "fiscal_year": program.fiscal_year},
        )
        session.flush()
        return program
