"""Idempotency-Key for staff writes: a retry with the same key and body gets the first answer back."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import Response, json, request
from sqlalchemy import select

from voucher_api.api.context import _authenticate, clock, db
from voucher_api.models import IdempotencyRecord
from voucher_api.services.errors import Refused

F = TypeVar("F", bound=Callable[..., Any])
MAX_KEY_LENGTH = 100


def idempotency_key(*, required: bool) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None or key.strip() == "":
        if required:
            raise Refused("idempotency.key_required", status=400)
        return None
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Refused(
            "validation", status=400, errors={"Idempotency-Key": ["at most 100 printable characters"]}
        )
    return key


def request_fingerprint() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(request.path.encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def idempotent(*, required: bool = False) -> Callable[[F], F]:
    """Wrap a view (outside its @blp.response) so its first successful answer is replayed for the key."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            principal = _authenticate()
            key = idempotency_key(required=required)
            if key is None:
                return fn(*args, **kwargs)
            scope = principal.actor
            fingerprint = request_fingerprint()
            session = db()
            record = session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            )
            if record is not None:
                if record.request_fingerprint != fingerprint:
                    raise Refused("idempotency.key_reused")
                replay = Response(
                    json.dumps(record.response_body, ensure_ascii=False),
                    status=record.status_code,
                    mimetype="application/json",
                )
                replay.headers["Idempotent-Replayed"] = "true"
                return replay
            response = fn(*args, **kwargs)
            if isinstance(response, Response) and response.status_code < 400 and response.is_json:
                session.add(
                    IdempotencyRecord(
                        scope=scope,
                        key=key,
                        request_fingerprint=fingerprint,
                        status_code=response.status_code,
                        response_body=response.get_json(),
                        created_at=clock().now(),
                    )
                )
            return response

        return cast(F, inner)

    return wrap
