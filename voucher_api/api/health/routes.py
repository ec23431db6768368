from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from voucher_api.api.context import db
from voucher_api.tasks_client import TaskSender

blp = Blueprint("health", __name__, url_prefix="/health", description="Is the service able to work?")

OK = "ok"
UNAVAILABLE = "unavailable"


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok", "description": "ok, or degraded when any part is down"})
    database = fields.String(metadata={"example": "ok", "description": "ok or unavailable"})
    broker = fields.String(metadata={"example": "ok", "description": "ok or unavailable"})


def _database_status() -> str:
    try:
        db().execute(text("SELECT 1"))
    except Exception:  # any failure means "not healthy"; the detail goes to the log
        current_app.logger.exception("health: database check failed")
        return UNAVAILABLE
    return OK


def _broker_status() -> str:
    sender: TaskSender = current_app.extensions["voucher"]["tasks"]
    try:
        reachable = sender.ping()
    except Exception:  # an unreachable broker raises (connection refused, timeout, DNS, bad URL)
        current_app.logger.exception("health: broker check failed")
        return UNAVAILABLE
    if reachable is not True:
        current_app.logger.error("health: broker ping answered %r", reachable)
        return UNAVAILABLE
    return OK


@blp.route("")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="the database or the broker is down")
    def get(self) -> Any:
        """Check the database (SELECT 1) and the Celery broker (one connection, no task sent).

        200 with every part `ok`; 503 with `status: degraded` and the part that is `unavailable`.
        Cheap enough to poll: one round trip to each, no retries.
        """
        result = {"status": OK, "database": _database_status(), "broker": _broker_status()}
        if result["database"] != OK or result["broker"] != OK:
            result["status"] = "degraded"
            return result, 503
        return result
