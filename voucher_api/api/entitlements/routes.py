from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, current_principal, db, staff_required
from voucher_api.api.idempotency import idempotent
from voucher_api.models import Entitlement, EntitlementStatus, LedgerEntry
from voucher_api.services import entitlements
from voucher_api.services.errors import NotFound

blp = Blueprint(
    "entitlements", __name__, url_prefix="/entitlements", description="Entitlements and their ledger"
)


class EntitlementSchema(StrictSchema):
    id = fields.Integer()
    resident_id = fields.Integer()
    program_id = fields.Integer()
    unit = fields.Function(lambda e: e.unit.value)
    granted = fields.Integer()
    balance = fields.Integer()
    status = fields.Function(lambda e: e.status.value)
    status_reason = fields.String()
    valid_from = fields.Date()
    valid_to = fields.Date()


class LedgerEntrySchema(StrictSchema):
    id = fields.Integer()
    kind = fields.Function(lambda e: e.kind.value)
    amount = fields.Integer()
    balance_after = fields.Integer()
    ride_id = fields.Integer(allow_none=True)
    actor = fields.String()
    note = fields.String()
    created_at = fields.AwareDateTime()


class EntitlementQuerySchema(StrictSchema):
    resident_id = Id(required=True)


class StatusChangeSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["active", "suspended", "ended"]))
    reason = fields.String(required=True, validate=validate.Length(1, 200))


class AdjustmentSchema(StrictSchema):
    amount = fields.Integer(required=True, strict=True, validate=validate.Range(-100_000, 100_000))
    reason = fields.String(required=True, validate=validate.Length(1, 200))


def load_entitlement(entitlement_id: int) -> Entitlement:
    ent = db().get(Entitlement, entitlement_id)
    if ent is None or ent.municipality_id != current_principal().municipality_id:
        raise NotFound("not_found")
    return ent


@blp.route("")
class Entitlements(MethodView):
    @staff_required("counter", "mobile_office", "auditor", "finance")
    @blp.arguments(EntitlementQuerySchema, location="query")
    @blp.response(200, EntitlementSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """A resident's entitlements."""
        return (
            db()
            .scalars(
                select(Entitlement)
                .where(
                    Entitlement.resident_id == query["resident_id"],
                    Entitlement.municipality_id == current_principal().municipality_id,
                )
                .order_by(Entitlement.id)
            )
            .all()
        )


@blp.route("/<int:entitlement_id>/ledger")
class Ledger(MethodView):
    @staff_required("counter", "mobile_office", "auditor", "finance")
    @blp.response(200, LedgerEntrySchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, entitlement_id: int) -> Any:
        """Every balance change; their sum is the balance."""
        load_entitlement(entitlement_id)
        return (
            db()
            .scalars(
                select(LedgerEntry)
                .where(LedgerEntry.entitlement_id == entitlement_id)
                .order_by(LedgerEntry.id)
            )
            .all()
        )


@blp.route("/<int:entitlement_id>/status")
class Status(MethodView):
    @staff_required("counter", "mobile_office")
    @idempotent()
    @blp.arguments(StatusChangeSchema)
    @blp.response(200, EntitlementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], entitlement_id: int) -> Any:
        """Suspend, reactivate or end an entitlement, with a reason (audited)."""
        load_entitlement(entitlement_id)
        return entitlements.set_status(
            db(),
            entitlement_id=entitlement_id,
            status=EntitlementStatus(body["status"]),
            reason=body["reason"],
            actor=_authenticate().actor,
            now=clock().now(),
        )


@blp.route("/<int:entitlement_id>/adjustments")
class Adjustments(MethodView):
    @staff_required("counter", "finance")
    @idempotent(required=True)
    @blp.arguments(AdjustmentSchema)
    @blp.response(201, EntitlementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], entitlement_id: int) -> Any:
        """Correct a balance by a ledger adjustment (never below zero)."""
        load_entitlement(entitlement_id)
        entitlements.adjust(
            db(),
            entitlement_id=entitlement_id,
            amount=body["amount"],
            reason=body["reason"],
            actor=_authenticate().actor,
            now=clock().now(),
        )
        ent = load_entitlement(entitlement_id)
        db().refresh(ent)
        return ent
