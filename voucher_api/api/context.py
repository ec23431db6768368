"""Per-request plumbing: the session, the clock, the caller; role checks; the transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import current_app, g, request
from sqlalchemy.orm import Session

from voucher_api.clock import Clock
from voucher_api.config import Settings
from voucher_api.db import commit_each_statement
from voucher_api.services.errors import Forbidden, Unauthorized
from voucher_api.services.identity import CardVerifier
from voucher_api.services.offline import load_or_create_signing_key
from voucher_api.services.tokens import AccessTokenReader, Principal

F = TypeVar("F", bound=Callable[..., Any])


def db() -> Session:
    """The request's session; the request commits it when the response is a success."""
    if "db" not in g:
        g.db = current_app.extensions["voucher"]["session_factory"]()
    return cast(Session, g.db)


def db_committing_each_statement() -> Session:
    """The request's session for a hot path whose writes are single statements (boarding, alighting).

    On PostgreSQL each statement commits by itself, so the request pays no BEGIN and COMMIT round
    trips; see `voucher_api.db.commit_each_statement` for when that holds and when it does not apply.
    Call it before anything else uses the request's session.
    """
    session = db()
    commit_each_statement(session)
    return session


def clock() -> Clock:
    return cast(Clock, current_app.extensions["voucher"]["clock"])


def settings() -> Settings:
    return cast(Settings, current_app.extensions["voucher"]["settings"])


def verifier() -> CardVerifier:
    return cast(CardVerifier, current_app.extensions["voucher"]["verifier"]())


def snapshot_key() -> Ed25519PrivateKey:
    """The key that signs terminal snapshots, loaded (or, embedded default, made) once per process."""
    ext = current_app.extensions["voucher"]
    if "snapshot_key" not in ext:
        path = settings().snapshot_signing_key_path
        if path is None:
            raise RuntimeError("SNAPSHOT_SIGNING_KEY is not configured")
        ext["snapshot_key"] = load_or_create_signing_key(path)
    return cast(Ed25519PrivateKey, ext["snapshot_key"])


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized("auth.required")
    return cast(Principal, principal)


def access_tokens() -> AccessTokenReader:
    """The app's token reader (it remembers tokens already verified with the app's secret)."""
    ext = current_app.extensions["voucher"]
    reader = ext.get("tokens")
    if reader is None:
        reader = ext.setdefault("tokens", AccessTokenReader(settings().jwt_secret))
    return cast(AccessTokenReader, reader)


def _authenticate() -> Principal:
    """The caller, from the bearer token; decoded once per request (and verified once per token)."""
    cached = g.get("principal")
    if cached is not None:
        return cast(Principal, cached)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("auth.required")
    principal = access_tokens().read(token.strip(), now=clock().now())
    g.principal = principal
    return principal


def staff_required(*roles: str) -> Callable[[F], F]:
    """Allow staff with any of `roles` (admin always); 401 without a token, 403 with the wrong role."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticate()
            if principal.kind != "staff":
                raise Forbidden("auth.forbidden")
            if roles and not (principal.roles & set(roles)) and "admin" not in principal.roles:
                raise Forbidden("auth.forbidden")
            return fn(*args, **kwargs)

        return cast(F, inner)

    return wrap


def terminal_required(fn: F) -> F:
    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        if _authenticate().kind != "terminal":
            raise Forbidden("auth.forbidden")
        return fn(*args, **kwargs)

    return cast(F, inner)


def terminal_or_staff(*roles: str) -> Callable[[F], F]:
    """A terminal, or staff with one of `roles` (e.g. an operator admin voiding a ride)."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticate()
            if (
                principal.kind == "staff"
                and not (principal.roles & set(roles))
                and "admin" not in principal.roles
            ):
                raise Forbidden("auth.forbidden")
            return fn(*args, **kwargs)

        return cast(F, inner)

    return wrap
