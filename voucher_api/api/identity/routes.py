from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from voucher_api.api.common import Base64Bytes, Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, db, settings, staff_required, verifier
from voucher_api.api.idempotency import idempotent
from voucher_api.api.residents.routes import ResidentSchema
from voucher_api.models import BindingMethod
from voucher_api.services import enrolment, identity
from voucher_api.services.errors import Forbidden
from voucher_api.services.rides import board_context

blp = Blueprint("identity", __name__, url_prefix="", description="My Number card checks and card bindings")


class ChallengeRequestSchema(StrictSchema):
    purpose = fields.String(required=True, validate=validate.OneOf(identity.PURPOSES))


class ChallengeSchema(StrictSchema):
    nonce = fields.String()
    purpose = fields.String()
    context = fields.String()
    expires_at = fields.AwareDateTime()
    message = fields.String(metadata={"description": "base64 of the exact bytes the card signs"})


class CardProofSchema(StrictSchema):
    certificate = Base64Bytes(required=True, metadata={"description": "user-authentication certificate, DER"})
    chain = fields.List(Base64Bytes(), load_default=list, validate=validate.Length(max=4))
    nonce = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[0-9a-f]{64}$"))
    signature = Base64Bytes(load_default=None, allow_none=True, max_bytes=1024)


class BindingRequestSchema(StrictSchema):
    resident_id = Id(required=True)
    card = fields.Nested(CardProofSchema, required=True)
    replace_existing = fields.Boolean(load_default=False)


class BindingSchema(StrictSchema):
    id = fields.Integer()
    resident_id = fields.Integer()
    cert_serial = fields.String()
    subject_serial = fields.String()
    not_after = fields.AwareDateTime()
    method = fields.Function(lambda b: b.method.value)
    status = fields.Function(lambda b: b.status.value)
    bound_at = fields.AwareDateTime()


def challenge_body(issued: identity.IssuedChallenge) -> dict[str, Any]:
    return {
        "nonce": issued.nonce,
        "purpose": issued.purpose,
        "context": issued.context,
        "expires_at": issued.expires_at,
        "message": base64.b64encode(issued.message).decode(),
    }


def proof_from(body: dict[str, Any]) -> identity.CardProof:
    return identity.CardProof(
        certificate=body["certificate"],
        chain=tuple(body.get("chain") or ()),
        nonce=body.get("nonce"),
        signature=body.get("signature"),
    )


F = TypeVar("F", bound=Callable[..., Any])


def _signed_in(fn: F) -> F:
    """Staff or a terminal: the token is checked before the body, so an anonymous caller gets 401."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        _authenticate()
        return fn(*args, **kwargs)

    return cast(F, inner)


@blp.route("/card-challenges")
class Challenges(MethodView):
    @_signed_in
    @blp.arguments(ChallengeRequestSchema)
    @blp.response(201, ChallengeSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Issue a single-use nonce for the card to sign (boarding: terminals; enrolment: staff)."""
        principal = _authenticate()
        purpose = body["purpose"]
        if purpose == "board":
            if principal.kind != "terminal":
                raise Forbidden("auth.forbidden")
            context = board_context(principal.id)
        else:
            if principal.kind != "staff":
                raise Forbidden("auth.forbidden")
            context = f"staff:{principal.id}"
        issued = identity.issue_challenge(
            verifier().challenge_key,
            purpose=purpose,
            context=context,
            now=clock().now(),
            ttl=timedelta(
                seconds=settings().board_challenge_ttl_seconds
                if purpose == "board"
                else settings().challenge_ttl_seconds
            ),
        )
        return challenge_body(issued)


@blp.route("/card-bindings")
class Bindings(MethodView):
    @staff_required("counter", "mobile_office")
    @idempotent()
    @blp.arguments(BindingRequestSchema)
    @blp.response(201, BindingSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Bind a resident's card: the user certificate, proven with the PIN over a staff challenge."""
        principal = _authenticate()
        now = clock().now()
        card = identity.prove_card(
            db(),
            verifier(),
            proof_from(body["card"]),
            purpose="bind",
            context=f"staff:{principal.id}",
            now=now,
        )
        return identity.bind_card(
            db(),
            resident_id=body["resident_id"],
            municipality_id=principal.municipality_id,
            card=card,
            method=BindingMethod.PIN_SIGNATURE,
            staff_id=principal.id,
            now=now,
            replace_existing=body["replace_existing"],
        )


class EnrolmentRequestSchema(StrictSchema):
    card = fields.Nested(
        CardProofSchema, required=True, metadata={"description": "user certificate, PIN-signed"}
    )
    signature_certificate = Base64Bytes(required=True, metadata={"description": "signature certificate, DER"})
    signature_chain = fields.List(Base64Bytes(), load_default=list, validate=validate.Length(max=4))
    signature = Base64Bytes(required=True, max_bytes=1024, metadata={"description": "by the signature key"})
    replace_existing = fields.Boolean(load_default=False)


class AttestedEnrolmentRequestSchema(StrictSchema):
    resident_id = Id(required=True)
    certificate = Base64Bytes(required=True)
    chain = fields.List(Base64Bytes(), load_default=list, validate=validate.Length(max=4))
    reason = fields.String(required=True, validate=validate.OneOf(enrolment.ATTESTATION_REASONS))
    replace_existing = fields.Boolean(load_default=False)


class EnrolmentSchema(StrictSchema):
    resident = fields.Nested(ResidentSchema)
    binding = fields.Nested(BindingSchema)
    facts_checked = fields.List(fields.String())


@blp.route("/enrolments")
class Enrolments(MethodView):
    @staff_required("counter", "mobile_office")
    @idempotent()
    @blp.arguments(EnrolmentRequestSchema)
    @blp.response(201, EnrolmentSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Enrol by the card alone: the four facts (password) find the resident, the PIN proves the card."""
        principal = _authenticate()
        return enrolment.enrol_by_signature_certificate(
            db(),
            verifier(),
            user_proof=proof_from(body["card"]),
            signature_certificate=body["signature_certificate"],
            signature_chain=tuple(body["signature_chain"]),
            signature=body["signature"],
            municipality_id=principal.municipality_id,
            staff_id=principal.id,
            now=clock().now(),
            replace_existing=body["replace_existing"],
        )


@blp.route("/enrolments/attested")
class AttestedEnrolments(MethodView):
    @staff_required("counter", "mobile_office")
    @idempotent()
    @blp.arguments(AttestedEnrolmentRequestSchema)
    @blp.response(201, EnrolmentSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Enrol on a staff member's in-person check (face-recognition cards, forgotten passwords)."""
        principal = _authenticate()
        return enrolment.enrol_by_staff_attestation(
            db(),
            verifier(),
            resident_id=body["resident_id"],
            certificate=body["certificate"],
            chain=tuple(body["chain"]),
            reason=body["reason"],
            municipality_id=principal.municipality_id,
            staff_id=principal.id,
            now=clock().now(),
            replace_existing=body["replace_existing"],
        )
