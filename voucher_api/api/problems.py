"""One error shape for every failure: RFC 9457 problem details with a stable `code`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from sqlalchemy.exc import IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from voucher_api.services.errors import MESSAGES, DomainError, message_for

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "request.malformed",
    401: "auth.required",
    403: "auth.forbidden",
    404: "not_found",
    405: "request.method_not_allowed",
    409: "conflict",
    413: "request.too_large",
    415: "request.unsupported_media_type",
    422: "validation",
    429: "request.too_many",
}
HTTP_TITLES = {
    "request.malformed": ("リクエストの形式が正しくありません。", "The request is malformed."),
    "request.method_not_allowed": ("この操作はできません。", "Method not allowed."),
    "request.too_large": ("リクエストが大きすぎます。", "The request is too large."),
    "request.unsupported_media_type": ("JSON で送ってください。", "Send JSON."),
    "request.too_many": ("しばらくしてからお試しください。", "Too many requests."),
    "internal": (
        "システムで問題が起きました。時間をおいてお試しください。",
        "Something went wrong on our side.",
    ),
    "unavailable": ("一時的に利用できません。", "Temporarily unavailable."),
}


def language() -> str:
    """Japanese unless the client prefers English."""
    best = request.accept_languages.best_match(["ja", "en"], default="ja")
    return best or "ja"


def title_for(code: str, lang: str, **params: Any) -> str:
    if code in MESSAGES:
        return message_for(code, lang, **params)
    ja, en = HTTP_TITLES.get(code) or (code, code)
    return en if lang == "en" else ja


def problem(status: int, code: str, *, detail: Any = None, **extra: Any) -> Response:
    lang = language()
    body: dict[str, Any] = {
        "type": f"https://taxi-vouchers.example/problems/{code}",
        "title": title_for(code, lang, **extra),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    response.headers["Content-Language"] = lang
    return response


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _declares_a_body(app: Flask, endpoint: str, method: str) -> bool:
    """Whether the view takes request arguments (flask-smorest records them on the method)."""
    view = app.view_functions.get(endpoint)
    handler = getattr(getattr(view, "view_class", None), method.lower(), view)
    return bool(getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters"))


def _unexpected_body() -> Response | None:
    """A body sent to a write that takes none is refused like an unknown field, never ignored.

    Empty, `{}` and `null` are what clients send for "nothing" and pass. Without a token the view's
    own 401 comes first, as everywhere else.
    """
    raw = request.get_data(cache=True)
    if not raw.strip() or "Authorization" not in request.headers:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return problem(400, "request.malformed")
    if body is None or body == {}:
        return None
    if isinstance(body, dict):
        return problem(422, "validation", errors={str(k): ["Unknown field."] for k in body})
    return problem(422, "validation", errors={"_schema": ["This request takes no body."]})


_NUL = "\x00"
_NUL_ERROR = ["Contains a NUL character."]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return _NUL in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _nul_refusal() -> Response | None:
    """A NUL character anywhere in what the API would read: refused before anything reads it.

    No text the API keeps can hold one (PostgreSQL refuses it in text) and nobody types one: it is a
    probe or a broken client. In the query or a JSON body the fields holding it are named (422); in the
    path or the Idempotency-Key it is a malformed request (400).
    """
    if _NUL in request.path or _NUL in request.headers.get("Idempotency-Key", ""):
        return problem(400, "request.malformed", detail="NUL character")
    fields = {key for key, value in request.args.items(multi=True) if _NUL in key or _NUL in value}
    if request.method in WRITE_METHODS and request.is_json:
        raw = request.get_data(cache=True)
        if b"\\u0000" in raw:  # JSON writes the escape with a lower-case u, and 0000 has no letters
            try:
                body = json.loads(raw)
            except ValueError:
                return None  # the view's own parsing answers request.malformed
            if isinstance(body, dict):
                fields |= {str(k) for k, v in body.items() if _has_nul(k) or _has_nul(v)}
            elif _has_nul(body):
                fields.add("_schema")
    if fields:
        return problem(422, "validation", errors={name.replace(_NUL, "\\0"): _NUL_ERROR for name in fields})
    return None


def register(app: Flask) -> None:
    """Install the handlers; every error leaves as application/problem+json."""

    @app.before_request
    def _refuse_a_nul() -> Response | None:
        return _nul_refusal() if request.path.startswith("/api/") else None

    @app.before_request
    def _refuse_a_body_where_none_is_taken() -> Response | None:
        if request.method not in WRITE_METHODS or request.endpoint is None:
            return None
        if not request.path.startswith("/api/"):
            return None
        if _declares_a_body(app, request.endpoint, request.method):
            return None
        return _unexpected_body()

    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        params = {
            k: v for k, v in exc.params.items() if isinstance(v, str | int | float | bool | dict | list)
        }
        return problem(exc.status, exc.code, **params)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = HTTP_CODES.get(status, "request.malformed" if status < 500 else "internal")
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages:
            # webargs nests by location (json, query, headers): surface the fields themselves.
            errors: dict[str, Any] = {}
            for location, fields in messages.items():
                if isinstance(fields, dict):
                    errors.update(fields)
                else:
                    errors[location] = fields
            if status == 400 and "json" in messages and not isinstance(messages["json"], dict):
                return problem(400, "request.malformed", errors=errors)
            return problem(422 if status in (400, 422) else status, "validation", errors=errors)
        response = problem(status, code)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError) -> Response:
        log.info("integrity conflict: %s", type(exc.orig).__name__)
        return problem(409, "conflict")

    @app.errorhandler(OperationalError)
    def _operational(exc: OperationalError) -> Response:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return problem(503, "unavailable")

    @app.errorhandler(RecursionError)
    def _too_deep(_exc: RecursionError) -> Response:
        return problem(400, "request.malformed", detail="nesting too deep")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "internal")
