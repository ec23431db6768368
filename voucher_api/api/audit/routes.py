from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from voucher_api.api.common import StrictSchema
from voucher_api.api.context import current_principal, db, staff_required
from voucher_api.models import AuditEntry

blp = Blueprint("audit", __name__, url_prefix="/audit", description="The audit log")


class AuditQuerySchema(StrictSchema):
    entity_type = fields.String(validate=validate.Length(1, 32))
    entity_id = fields.String(validate=validate.Length(1, 40))
    action = fields.String(validate=validate.Length(1, 64))
    before_id = fields.Integer(validate=validate.Range(1, 2**53))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class AuditEntrySchema(StrictSchema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    actor = fields.String()
    action = fields.String()
    entity_type = fields.String()
    entity_id = fields.String()
    details = fields.Dict()


@blp.route("")
class Audit(MethodView):
    @staff_required("auditor")
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEntrySchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """Newest first; page with `before_id`."""
        stmt = select(AuditEntry).where(AuditEntry.municipality_id == current_principal().municipality_id)
        for name in ("entity_type", "entity_id", "action"):
            if name in query:
                stmt = stmt.where(getattr(AuditEntry, name) == query[name])
        if "before_id" in query:
            stmt = stmt.where(AuditEntry.id < query["before_id"])
        return db().scalars(stmt.order_by(AuditEntry.id.desc()).limit(query["limit"])).all()
