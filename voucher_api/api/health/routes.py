from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from voucher_api.api.context import db

blp = Blueprint("health", __name__, url_prefix="/health", description="Is the service able to work?")


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})
    database = fields.String()
    broker = fields.String()


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="a dependency is down")
    def get(self) -> Any:
        """Check the database and the Celery broker."""
        result = {"status": "ok", "database": "ok", "broker": "ok"}
        try:
            db().execute(text("SELECT 1"))
        except Exception:  # any failure means "not healthy"; the detail goes to the log
            current_app.logger.exception("health: database check failed")
            result["database"] = "unavailable"
        try:
            current_app.extensions["voucher"]["tasks"].ping()
        except Exception:
            current_app.logger.exception("health: broker check failed")
            result["broker"] = "unavailable"
        if result["database"] != "ok" or result["broker"] != "ok":
            result["status"] = "degraded"
            return result, 503
        return result
