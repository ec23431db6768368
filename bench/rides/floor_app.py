"""The floor: the least a boarding can cost on this server stack.

One endpoint does only the critical write of a boarding — the conditional UPDATE of the balance and
the ledger INSERT, in one transaction, through SQLAlchemy Core — behind the same Flask + gunicorn
settings as the API. Whatever the API costs above this is the Python request path: parsing, tokens,
the card check, the ride row, the audit entry.

Served by gunicorn as ``bench.rides.floor_app:create_floor_app()``; DATABASE_URL names the database.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import Engine, bindparam, text

from voucher_api.clock import SystemClock
from voucher_api.db import UTCDateTime, make_engine

CONSUME = text(
    "UPDATE entitlements SET balance = balance - 1 WHERE id = :id AND balance >= 1 RETURNING balance"
)
RECORD = text(
    "INSERT INTO ledger_entries"
    " (entitlement_id, kind, amount, balance_after, ride_id, actor, note, created_at)"
    " VALUES (:entitlement_id, 'ride', -1, :balance_after, NULL, :actor, 'floor', :created_at)"
).bindparams(bindparam("created_at", type_=UTCDateTime()))


def redeem_one(engine: Engine, entitlement_id: int, now: datetime) -> int | None:
    """Take one unit from the entitlement and write its ledger entry; None when the balance is zero.

    The same rule as a boarding's hot write: the balance never goes below zero, and every change has
    its ledger entry in the same transaction.
    """
    with engine.begin() as conn:
        balance = conn.execute(CONSUME, {"id": entitlement_id}).scalar()
        if balance is None:
            return None
        conn.execute(
            RECORD,
            {
                "entitlement_id": entitlement_id,
                "balance_after": balance,
                "actor": "bench:floor",
                "created_at": now,
            },
        )
    return int(balance)


def create_floor_app(database_url: str | None = None, *, now: Callable[[], datetime] | None = None) -> Flask:
    """The floor server. Reads DATABASE_URL here (never at import time) when no URL is given."""
    url = database_url or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    engine = make_engine(url)
    clock = now or SystemClock().now
    app = Flask(__name__)

    @app.post("/floor/rides")
    def ride() -> tuple[Response, int]:
        body: Any = request.get_json(silent=True)
        entitlement_id = body.get("entitlement_id") if isinstance(body, dict) else None
        if not isinstance(entitlement_id, int) or isinstance(entitlement_id, bool):
            return jsonify({"code": "validation", "title": "entitlement_id が必要です"}), 400
        balance = redeem_one(engine, entitlement_id, clock())
        if balance is None:
            return jsonify({"code": "entitlement.exhausted", "title": "残高がありません"}), 409
        return jsonify({"entitlement_id": entitlement_id, "balance": balance}), 201

    @app.get("/health")
    def health() -> Response:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify({"status": "ok"})

    return app
