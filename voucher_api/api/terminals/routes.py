from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError, fields, validate, validates_schema

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import (
    _authenticate,
    clock,
    db,
    settings,
    snapshot_key,
    staff_required,
    terminal_required,
    verifier,
)
from voucher_api.api.problems import language
from voucher_api.models import Operator, Terminal, Vehicle
from voucher_api.services import offline, shifts, terminals
from voucher_api.services.errors import NotFound
from voucher_api.services.tokens import Principal

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
    snapshot_public_key = fields.String(metadata={"description": "verifies the signed snapshots"})
    terminal_id = fields.Integer()
    operator_id = fields.Integer()
    vehicle_id = fields.Integer()
    municipality_id = fields.Integer()


def _require_own(principal: Principal, operator_id: int | None) -> None:
    """An operator admin acts on their own operator's vehicles and terminals; others are not found."""
    if operator_id is None or (
        "admin" not in principal.roles and principal.operator_id not in (None, operator_id)
    ):
        raise NotFound("not_found")


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
        _require_own(principal, vehicle.operator_id if vehicle else None)
        assert vehicle is not None
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


class RevokeRequestSchema(StrictSchema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, terminals.REVOKE_REASON_MAX),
        metadata={"description": "why, for the audit log (e.g. 車両盗難)"},
    )


class RevokedSchema(StrictSchema):
    terminal_id = fields.Integer()
    status = fields.String()


@blp.route("/<int:terminal_id>/revoke")
class Revoke(MethodView):
    @staff_required("operator_admin")
    @blp.arguments(RevokeRequestSchema)
    @blp.response(200, RevokedSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], terminal_id: int) -> Any:
        """Stop a lost or stolen terminal for good: it gets no new token (the one it holds lasts its TTL
        at most). Revoking it again changes nothing. An operator admin revokes their own terminals."""
        principal = _authenticate()
        terminal = db().get(Terminal, terminal_id)
        _require_own(principal, terminal.operator_id if terminal else None)
        assert terminal is not None
        revoked = terminals.revoke_terminal(
            db(),
            terminal_id=terminal.id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            reason=body["reason"],
            now=clock().now(),
        )
        return {"terminal_id": revoked.id, "status": revoked.status.value}


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
            "snapshot_public_key": offline.public_key_b64(snapshot_key()),
        }


class SnapshotKeySchema(StrictSchema):
    public_key = fields.String(metadata={"description": "raw Ed25519 public key, base64url"})


class SignedSnapshotSchema(StrictSchema):
    snapshot = fields.Dict(metadata={"description": "the payload; signed as canonical JSON"})
    signature = fields.String()
    public_key = fields.String()


class OfflineCardSchema(StrictSchema):
    certificate = fields.String(required=True, validate=validate.Length(4, 12000))
    chain = fields.List(
        fields.String(validate=validate.Length(4, 12000)), load_default=list, validate=validate.Length(max=4)
    )
    nonce = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    signature = fields.String(load_default=None, allow_none=True, validate=validate.Length(4, 1400))


def _iso_instant(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


class OfflineRecordSchema(StrictSchema):
    kind = fields.String(required=True, validate=validate.OneOf(["board", "fare", "void"]))
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**53))
    idempotency_key = fields.String(required=True, validate=validate.Length(1, 100))
    recorded_at = fields.String(required=True, validate=_iso_instant)
    record_signature = fields.String(required=True, validate=validate.Length(10, 200))
    card = fields.Nested(OfflineCardSchema)
    driver_code = fields.String(allow_none=True, validate=validate.Length(1, 20))
    trip_ref = fields.String(allow_none=True, validate=validate.Length(1, 64))
    board_sequence = fields.Integer(strict=True, validate=validate.Range(1, 2**53))
    meter_fare = fields.Integer(strict=True, validate=validate.Range(0, 1_000_000))
    reason = fields.String(validate=validate.Length(1, 200))

    @validates_schema
    def _fields_for_kind(self, data: dict[str, Any], **_: Any) -> None:
        needed = {
            "board": ("card",),
            "fare": ("board_sequence", "meter_fare"),
            "void": ("board_sequence", "reason"),
        }
        missing = [name for name in needed[data["kind"]] if name not in data]
        if missing:
            raise ValidationError(f"a {data['kind']} record needs {', '.join(missing)}")


class SyncRequestSchema(StrictSchema):
    records = fields.List(fields.Nested(OfflineRecordSchema), required=True, validate=validate.Length(1, 500))


class RecordResultSchema(StrictSchema):
    sequence = fields.Integer()
    status = fields.String(metadata={"description": "accepted | duplicate | conflict | rejected"})
    ride_id = fields.Integer(allow_none=True)
    code = fields.String(allow_none=True)
    title = fields.String(
        allow_none=True, metadata={"description": "what to tell the driver, in plain words"}
    )


class SyncResultSchema(StrictSchema):
    results = fields.List(fields.Nested(RecordResultSchema))
    last_sequence = fields.Integer()
    gaps = fields.List(fields.Integer(), metadata={"description": "sequence numbers never received"})


class ShiftRequestSchema(StrictSchema):
    driver_code = fields.String(required=True, validate=validate.Length(1, 20))


class ShiftSchema(StrictSchema):
    shift_id = fields.Integer()
    driver_name = fields.String()
    started_at = fields.AwareDateTime()
    ended_at = fields.AwareDateTime(allow_none=True)
    rides = fields.Integer(allow_none=True)


@blp.route("/snapshot-key")
class SnapshotKey(MethodView):
    @blp.response(200, SnapshotKeySchema)
    def get(self) -> Any:
        """The public key that verifies terminal snapshots."""
        return {"public_key": offline.public_key_b64(snapshot_key())}


@blp.route("/snapshot")
class Snapshot(MethodView):
    @terminal_required
    @blp.response(200, SignedSnapshotSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """A signed snapshot for working offline: trust anchors, revocations, bound cards, programs."""
        payload = offline.build_snapshot(
            db(),
            verifier(),
            _authenticate(),
            now=clock().now(),
            valid_for=timedelta(hours=settings().snapshot_valid_hours),
        )
        key = snapshot_key()
        return {
            "snapshot": payload,
            "signature": offline.b64url(key.sign(offline.canonical_json(payload))),
            "public_key": offline.public_key_b64(key),
        }


@blp.route("/sync")
class Sync(MethodView):
    @terminal_required
    @blp.arguments(SyncRequestSchema)
    @blp.response(200, SyncResultSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, _body: dict[str, Any]) -> Any:
        """Apply records made offline, in sequence order; each gets its own answer. Safe to resend.

        While the card issuer's revocation services (OCSP and CRL) cannot be asked, the whole batch is
        answered 503 `card.revocation_unknown` and nothing is kept: send it again later."""
        raw = request.get_json()["records"]  # exactly as signed by the terminal
        result = offline.sync(db(), verifier(), _authenticate(), raw, now=clock().now())
        lang = language()
        return {
            "results": [r.as_dict(lang) for r in result.results],
            "last_sequence": result.last_sequence,
            "gaps": result.gaps,
        }


@blp.route("/shifts")
class Shifts(MethodView):
    @terminal_required
    @blp.arguments(ShiftRequestSchema)
    @blp.response(201, ShiftSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """A driver signs in on this terminal (an open shift on it is ended first)."""
        shift, name = shifts.start(db(), _authenticate(), driver_code=body["driver_code"], now=clock().now())
        return {"shift_id": shift.id, "driver_name": name, "started_at": shift.started_at, "ended_at": None}


@blp.route("/shifts/<int:shift_id>/end")
class ShiftEnd(MethodView):
    @terminal_required
    @blp.response(200, ShiftSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, shift_id: int) -> Any:
        """The driver signs out; returns how many rides the shift had."""
        shift, name, count = shifts.end(db(), _authenticate(), shift_id=shift_id, now=clock().now())
        return {
            "shift_id": shift.id,
            "driver_name": name,
            "started_at": shift.started_at,
            "ended_at": shift.ended_at,
            "rides": count,
        }
