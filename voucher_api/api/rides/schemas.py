"""Schemas of the rides resource, and the hand-written dump of a ride answer.

Requests are loaded with these marshmallow schemas (unknown fields, wrong types and out-of-range
values are 422 problems). The ride answer is on every boarding and alighting, so it is built by
`ride_body` instead of `RideSchema().dump`: the same fields, in the same form (a test keeps the two
equal); `RideSchema` still documents it in the OpenAPI description.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from flask import Response
from marshmallow import fields, validate

from voucher_api.api.common import StrictSchema
from voucher_api.api.identity.routes import CardProofSchema, ChallengeSchema
from voucher_api.services.identity import IssuedChallenge
from voucher_api.services.rides import RideView


class BoardRequestSchema(StrictSchema):
    sequence = fields.Integer(required=True, strict=True, validate=validate.Range(1, 2**53))
    card = fields.Nested(CardProofSchema, required=True)
    driver_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 20))
    trip_ref = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))


class FareRequestSchema(StrictSchema):
    meter_fare = fields.Integer(required=True, strict=True, validate=validate.Range(0, 1_000_000))


class VoidRequestSchema(StrictSchema):
    reason = fields.String(required=True, validate=validate.Length(1, 200))


class RideSchema(StrictSchema):
    ride_id = fields.Integer()
    status = fields.String()
    given_name = fields.String()
    age_band = fields.String()
    program_name = fields.String()
    unit = fields.String()
    balance = fields.Integer()
    units_held = fields.Integer()
    boarded_at = fields.AwareDateTime()
    meter_fare = fields.Integer(allow_none=True)
    subsidy = fields.Integer(allow_none=True)
    rider_share = fields.Integer(allow_none=True, metadata={"description": "what the rider pays"})
    replayed = fields.Boolean()
    next_challenge = fields.Nested(
        ChallengeSchema,
        allow_none=True,
        metadata={"description": "a fresh boarding challenge, so the next tap needs one round trip"},
    )


class ReviewItemSchema(StrictSchema):
    ride_id = fields.Integer(allow_none=True)
    terminal_id = fields.Integer()
    sequence = fields.Integer()
    code = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    boarded_at = fields.AwareDateTime(allow_none=True)
    received_at = fields.AwareDateTime(allow_none=True)
    meter_fare = fields.Integer(allow_none=True)
    subsidy = fields.Integer(allow_none=True)
    kind = fields.String(metadata={"description": "conflict: the ride is kept; rejected: the record is kept"})


def challenge_dump(issued: IssuedChallenge) -> dict[str, Any]:
    """`ChallengeSchema().dump` of an issued challenge."""
    return {
        "nonce": issued.nonce,
        "purpose": issued.purpose,
        "context": issued.context,
        "expires_at": issued.expires_at.isoformat(),
        "message": base64.b64encode(issued.message).decode(),
    }


def ride_body(view: RideView, next_challenge: IssuedChallenge | None = None) -> dict[str, Any]:
    """`RideSchema().dump` of a ride view with its next challenge, field for field."""
    return {
        "ride_id": view.ride_id,
        "status": view.status,
        "given_name": view.given_name,
        "age_band": view.age_band,
        "program_name": view.program_name,
        "unit": view.unit,
        "balance": view.balance,
        "units_held": view.units_held,
        "boarded_at": view.boarded_at.isoformat(),
        "meter_fare": view.meter_fare,
        "subsidy": view.subsidy,
        "rider_share": view.rider_share,
        "replayed": view.replayed,
        "next_challenge": None if next_challenge is None else challenge_dump(next_challenge),
    }


def ride_response(view: RideView, next_challenge: IssuedChallenge | None, *, status: int) -> Response:
    """The ride answer as JSON (UTF-8, Japanese as is), without the generic dump-and-jsonify pass."""
    return Response(
        json.dumps(ride_body(view, next_challenge), ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )
