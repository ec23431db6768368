from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from voucher_api.api.common import StrictSchema
from voucher_api.api.context import clock, db, settings
from voucher_api.services import staff, terminals
from voucher_api.services.tokens import issue_access_token

blp = Blueprint("auth", __name__, url_prefix="/auth", description="Sign-in for staff and terminals")


class SignInSchema(StrictSchema):
    username = fields.String(required=True, validate=validate.Length(1, 64))
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 200))


class TerminalTokenRequestSchema(StrictSchema):
    assertion = fields.String(required=True, validate=validate.Length(20, 4000))


class TokenSchema(StrictSchema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()
    roles = fields.List(fields.String())
    display_name = fields.String()
    municipality_id = fields.Integer()
    operator_id = fields.Integer(allow_none=True)
    vehicle_id = fields.Integer(allow_none=True)


@blp.route("/token")
class StaffToken(MethodView):
    @blp.arguments(SignInSchema)
    @blp.response(200, TokenSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Sign a staff member in; returns a short-lived access token."""
        principal = staff.authenticate(db(), username=body["username"], password=body["password"])
        ttl = settings().access_token_ttl_seconds
        token = issue_access_token(
            principal, secret=settings().jwt_secret, now=clock().now(), ttl=timedelta(seconds=ttl)
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "roles": sorted(principal.roles),
            "display_name": principal.name,
            "municipality_id": principal.municipality_id,
            "operator_id": principal.operator_id,
        }


@blp.route("/terminal-token")
class TerminalToken(MethodView):
    @blp.arguments(TerminalTokenRequestSchema)
    @blp.response(200, TokenSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Exchange a terminal's EdDSA-signed client assertion for a short-lived access token."""
        principal = terminals.authenticate_terminal(db(), assertion=body["assertion"], now=clock().now())
        ttl = settings().terminal_token_ttl_seconds
        token = issue_access_token(
            principal, secret=settings().jwt_secret, now=clock().now(), ttl=timedelta(seconds=ttl)
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "roles": ["terminal"],
            "display_name": f"terminal {principal.id}",
            "municipality_id": principal.municipality_id,
            "operator_id": principal.operator_id,
            "vehicle_id": principal.vehicle_id,
        }
