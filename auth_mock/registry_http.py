"""The mock resident registry over HTTP: a tiny read-only JSON service the API can follow.

Endpoints (JSON field names are the dataclass field names, dates are ISO 8601):

- ``GET /residents?after=<registry_id>&limit=N[&municipality_code=062120]`` — people in registry_id
  order; ``next`` is the ``after`` for the following page, or null on the last page.
- ``GET /residents/<registry_id>`` — one person in any status, 404 if unknown.
- ``GET /changes?after=<seq>&limit=N`` — feed entries after ``seq``; ``next`` is the cursor to keep
  (the last seq returned, or ``after`` itself when nothing is new).
- ``GET /search?kana=...&birth_date=YYYY-MM-DD[&limit=N]`` — staff look-up by kana prefix.

Errors are RFC 9457 problem details with a stable ``code`` and a Japanese ``detail``.
"""

from __future__ import annotations

from datetime import date

from flask import Flask, Response, jsonify, request

from auth_mock.registry import Registry, change_to_json, person_to_json

DEFAULT_PAGE = 100
MAX_PAGE = 1000


class _BadRequest(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _problem(status: int, code: str, title: str, detail: str) -> tuple[Response, int]:
    response = jsonify(
        {"type": "about:blank", "title": title, "status": status, "code": code, "detail": detail}
    )
    response.mimetype = "application/problem+json"
    return response, status


def _limit_arg(default: int) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _BadRequest("request.invalid_limit", f"limit は1〜{MAX_PAGE}の整数で指定してください")
    return int(raw)


def create_registry_app(registry: Registry) -> Flask:
    """A Flask app serving ``registry`` read-only as JSON.

    The registry is shared by the app's threads (it serialises its own calls); closing it is left
    to the caller that opened it.
    """
    app = Flask("auth_mock.registry_http")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider has it

    @app.errorhandler(_BadRequest)
    def bad_request(exc: _BadRequest) -> tuple[Response, int]:
        return _problem(400, exc.code, "リクエストが不正です", exc.detail)

    @app.errorhandler(404)
    def not_found(exc: Exception) -> tuple[Response, int]:
        return _problem(404, "not_found", "見つかりません", "指定されたURLはありません")

    @app.errorhandler(405)
    def method_not_allowed(exc: Exception) -> tuple[Response, int]:
        return _problem(405, "method_not_allowed", "許可されていないメソッドです", "この台帳は参照専用です")

    @app.get("/residents")
    def list_residents() -> Response:
        limit = _limit_arg(DEFAULT_PAGE)
        after = request.args.get("after") or None
        municipality_code = request.args.get("municipality_code") or None
        # One extra row tells whether another page exists, so the last page says next=null.
        people = registry.list_people(after=after, limit=limit + 1, municipality_code=municipality_code)
        next_after = people[limit - 1].registry_id if len(people) > limit else None
        people = people[:limit]
        return jsonify({"residents": [person_to_json(p) for p in people], "next": next_after})

    @app.get("/residents/<registry_id>")
    def get_resident(registry_id: str) -> Response | tuple[Response, int]:
        person = registry.get(registry_id)
        if person is None:
            return _problem(
                404, "resident.not_found", "住民が見つかりません", f"住民番号 {registry_id} はありません"
            )
        return jsonify(person_to_json(person))

    @app.get("/changes")
    def list_changes() -> Response:
        limit = _limit_arg(500)
        raw_after = request.args.get("after", "0")
        if not raw_after.isdigit():
            raise _BadRequest("request.invalid_after", "after は0以上の整数 (seq) で指定してください")
        after = int(raw_after)
        changes = registry.changes_since(after, limit=limit)
        next_seq = changes[-1].seq if changes else after
        return jsonify({"changes": [change_to_json(c) for c in changes], "next": next_seq})

    @app.get("/search")
    def search() -> Response:
        limit = _limit_arg(20)
        kana = request.args.get("kana", "")
        birth_date: date | None = None
        raw_birth_date = request.args.get("birth_date")
        if raw_birth_date:
            try:
                birth_date = date.fromisoformat(raw_birth_date)
            except ValueError:
                raise _BadRequest(
                    "request.invalid_birth_date", "birth_date は YYYY-MM-DD で指定してください"
                ) from None
        try:
            people = registry.search(kana=kana, birth_date=birth_date, limit=limit)
        except ValueError as exc:
            raise _BadRequest("request.invalid_kana", str(exc)) from exc
        return jsonify({"residents": [person_to_json(p) for p in people]})

    return app
