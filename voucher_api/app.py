"""The application factory. Nothing connects or reads settings at import time."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from flask import Flask, Response, g, request
from flask_smorest import Api
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.routing import IntegerConverter, Map

from voucher_api.api import problems
from voucher_api.clock import Clock, SystemClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.services.identity import CardVerifier
from voucher_api.services.revocation import OcspCrlChecker
from voucher_api.services.tokens import AccessTokenReader
from voucher_api.tasks_client import CeleryTaskSender, TaskSender

log = logging.getLogger(__name__)


def _lazy_verifier(settings: Settings) -> Any:
    """Build the card verifier once, on first use (the CA file may be created after the app starts)."""
    lock = threading.Lock()
    built: list[CardVerifier] = []

    def get() -> CardVerifier:
        if not built:
            with lock:
                if not built:
                    path = settings.card_trust_anchor_path
                    if path is None or not Path(path).exists():
                        raise RuntimeError(f"card trust anchor not found: {path} (set CARD_TRUST_ANCHOR)")
                    checker = OcspCrlChecker(
                        httpx.Client(timeout=settings.ocsp_timeout_seconds),
                        cache_for=timedelta(seconds=settings.revocation_cache_seconds),
                    )
                    # Every process derives the same challenge key from the deployment's secret.
                    key = hashlib.sha256(b"card-challenge\x00" + settings.jwt_secret.encode()).digest()
                    built.append(CardVerifier.from_pem(Path(path).read_bytes(), checker, challenge_key=key))
        return built[0]

    return get


class DatabaseIdConverter(IntegerConverter):
    """`<int:...>` in every route: a whole number a BIGINT can hold. A longer one names no row and is
    simply not found (404), instead of reaching PostgreSQL, which would refuse it as out of range."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock | None = None,
    verifier: CardVerifier | None = None,
    task_sender: TaskSender | None = None,
) -> Flask:
    """Build the API. Tests pass their own session factory, clock, verifier and task sender."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseIdConverter  # before any route is added
    app.config.update(
        API_TITLE="Taxi vouchers API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if session_factory is None:
        # No pre-ping: it costs every request a round trip. A connection that went stale (the database
        # restarted) fails its first statement instead; SQLAlchemy then drops every older connection of
        # the pool at once, the request is answered 503 (problems.py), and terminals retry with the
        # same Idempotency-Key (driver_terminal's RetryPolicy), so nothing is lost or done twice.
        session_factory = make_session_factory(make_engine(settings.database_url, pre_ping=False))
    app.extensions["voucher"] = {
        "settings": settings,
        "session_factory": session_factory,
        "clock": clock or SystemClock(),
        "verifier": (lambda: verifier) if verifier is not None else _lazy_verifier(settings),
        "tasks": task_sender or CeleryTaskSender(settings.celery_broker_url, settings.celery_queue),
        "tokens": AccessTokenReader(settings.jwt_secret),
    }

    api = Api(app, spec_kwargs={"servers": [{"url": "/"}]})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from voucher_api.api import register_blueprints

    register_blueprints(api)
    problems.register(app)
    _install_transaction(app)
    from voucher_api.api.docs import register_docs

    register_docs(app)
    from voucher_api.web import register_web

    register_web(app)
    return app


def _install_transaction(app: Flask) -> None:
    """The request owns the transaction: commit on success, roll back otherwise, always close."""

    @app.before_request
    def _started() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _commit(response: Response) -> Response:
        if log.isEnabledFor(logging.INFO):  # the line is not even formatted when nobody reads it
            principal = g.get("principal")
            log.info(
                "%s %s -> %s in %.1f ms (%s)",
                request.method,
                request.path,
                response.status_code,
                (time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
                principal.actor if principal is not None else "anonymous",
            )
        session: Session | None = g.pop("db", None)
        if session is None:
            return response
        try:
            if response.status_code < 400:
                session.commit()
            else:
                session.rollback()
        except IntegrityError:
            session.rollback()
            return problems.problem(409, "conflict")
        finally:
            session.close()
        return response

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db", None)
        if session is not None:
            session.rollback()
            session.close()
