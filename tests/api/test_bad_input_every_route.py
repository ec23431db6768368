"""Every write route of the API, found in the app's url_map, answers each class of bad input with a 4xx
problem (application/problem+json with a `code`) and changes no row (issue 2, point 9); every read route
answers a bad query string with a 2xx or a 4xx problem, never a 500.

A route added later is covered without touching this file. Classes: malformed JSON, a JSON list, an
unknown field, wrong types, a huge number (10**30), a negative number, a NUL character in the strings, a
missing token, a wrong role.

How strong each check is:
- body classes are sent by a caller the route lets in (found per route: the all-roles staff member, the
  terminal, or the operator admin), so the answer is never a mere 401/403;
- where the OpenAPI spec documents a JSON body, the answer must be the validation's own: 400
  `request.malformed` for broken JSON, 422 `validation` naming the offending fields otherwise (a 404 for
  the made-up path id would not do: the body is checked before anything is looked up);
- routes without a JSON body (actions, CSV uploads) must still answer 4xx and change nothing;
- path ids point at rows that do not exist, so even a route that ignored its body could not act.

One app and one database for the module (the city is built once); every test runs in a savepoint that
is rolled back, and compares a snapshot of every table (row counts, and the content of the tables that
have rows) before and after.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import sessionmaker
from werkzeug.test import TestResponse

from tests import factories as f
from tests.conftest import RecordingTaskSender
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.db import Base
from voucher_api.models import StaffRole

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
MISSING_ID = "987654321"  # no row has this id
HUGE = 10**30
NEGATIVE = -5
CLASSES = (
    "malformed json",
    "json list",
    "unknown field",
    "wrong types",
    "huge number",
    "negative number",
    "nul character",
    "missing token",
    "wrong role",
)
BODY_CLASSES = CLASSES[:7]
# Callers holding a valid token of a narrow kind; every protected write route refuses one of them
# (auditors may still POST what only reads, such as a reconciliation, so terminals are asked too).
WRONG_ROLE_CALLERS = ("auditor", "terminal", "operator_admin")
# Where the role allowed depends on the body: per caller, the body that makes its role the wrong one.
ROLE_DEPENDS_ON_BODY: dict[str, dict[str, Any]] = {
    # boarding challenges are for terminals, the others for staff
    "/api/v1/card-challenges": {
        "auditor": {"purpose": "board"},
        "operator_admin": {"purpose": "board"},
        "terminal": {"purpose": "bind"},
    },
}


def _discover_routes(methods: tuple[str, ...]) -> list[tuple[str, str]]:
    """(method, rule) of every route under /api/v1 answering one of `methods`, from an app built only to
    read its url_map."""
    settings = Settings.from_env(
        {"VOUCHER_VAR_DIR": tempfile.gettempdir(), "JWT_SECRET": "x" * 80, "DATABASE_URL": "sqlite://"}
    )
    app = create_app(settings, session_factory=sessionmaker(), task_sender=RecordingTaskSender())
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in methods
        if method in (rule.methods or set())
    )


WRITE_ROUTES = _discover_routes(WRITE_METHODS)
READ_ROUTES = _discover_routes(("GET",))
# What a mistyped link, a truncated copy-and-paste or a probe puts in a query string.
BAD_QUERY_VALUES = ("", "x", "-1", "0", "1e309", "9" * 40, "2026-13", "2026-02-30", "\x00", "'; --", "[]")


def concrete(rule: str) -> str:
    return re.sub(r"<[^>]+>", MISSING_ID, rule)


def spec_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


# --- the world: one city, one app, for the whole module ------------------------------------------------


@dataclass
class World:
    app: Flask
    client: FlaskClient
    connection: Connection
    spec: dict[str, Any]
    headers: dict[str, dict[str, str]]
    allowed: dict[tuple[str, str], str] = field(default_factory=dict)
    keys: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    def send(self, method: str, rule: str, *, caller: str | None, body: Any, raw: str | None = None) -> Any:
        headers = {"Idempotency-Key": f"bad-input-{next(self.keys)}", **self.headers.get(caller or "", {})}
        if raw is not None:
            return self.client.open(
                concrete(rule), method=method, data=raw, content_type="application/json", headers=headers
            )
        return self.client.open(concrete(rule), method=method, json=body, headers=headers)

    def operation(self, method: str, rule: str) -> dict[str, Any]:
        op: dict[str, Any] = self.spec["paths"].get(spec_path(rule), {}).get(method.lower(), {})
        return op

    def json_body_schema(self, method: str, rule: str) -> dict[str, Any] | None:
        """The documented JSON request body, refs resolved one level; None when the route takes none."""
        body = self.operation(method, rule).get("requestBody", {}).get("content", {}).get("application/json")
        if body is None:
            return None
        return self.resolve(body.get("schema", {}))

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            resolved: dict[str, Any] = self.spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            return resolved
        return schema

    def is_protected(self, method: str, rule: str) -> bool:
        return bool(self.operation(method, rule).get("security"))

    def caller_let_in(self, method: str, rule: str) -> str:
        """The first caller the route does not turn away (401/403) with an empty body."""
        key = (method, rule)
        if key not in self.allowed:
            for caller in ("boss", "terminal", "operator_admin"):
                r = self.send(method, rule, caller=caller, body={})
                if r.status_code not in (401, 403):
                    self.allowed[key] = caller
                    break
            else:
                pytest.fail(f"{method} {rule}: every caller is refused, so its input is never checked")
        return self.allowed[key]


@pytest.fixture(scope="module")
def world(engine: Engine, settings: Settings, verifier: Any) -> Iterator[World]:
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    with factory() as session:
        mun = f.municipality(session)
        op = f.operator(session, mun)
        vehicle = f.vehicle(session, op)
        everything = [r for r in StaffRole if r is not StaffRole.OPERATOR_ADMIN]
        f.staff_user(session, mun, *everything, username="bad-input-boss")
        f.staff_user(session, mun, StaffRole.AUDITOR, username="bad-input-auditor")
        f.staff_user(session, mun, StaffRole.OPERATOR_ADMIN, username="bad-input-op", operator_id=op.id)
        f.program(session, mun, code="bad-input")
        terminal = f.enrolled_terminal(session, mun, vehicle)
        session.commit()
    app = create_app(
        settings,
        session_factory=factory,
        clock=FixedClock(f.NOW),
        verifier=verifier,
        task_sender=RecordingTaskSender(),
    )
    client = app.test_client()
    headers = {
        "boss": f.bearer(f.staff_token(client, "bad-input-boss")),
        "auditor": f.bearer(f.staff_token(client, "bad-input-auditor")),
        "operator_admin": f.bearer(f.staff_token(client, "bad-input-op")),
        "terminal": f.bearer(terminal.token(client, f.NOW)),
    }
    spec = client.get("/api/v1/openapi.json").get_json()
    yield World(app, client, connection, spec, headers)
    outer.rollback()
    connection.close()


@pytest.fixture
def world_in_savepoint(world: World) -> Iterator[World]:
    savepoint = world.connection.begin_nested()
    yield world
    if savepoint.is_active:
        savepoint.rollback()


# --- what "nothing changed" means ------------------------------------------------------------------------


def snapshot(connection: Connection) -> dict[str, Any]:
    """Row counts of every table (one query), and the rows of the tables that have any.

    Raw SQL built once: no compilation and no type processing, so a snapshot costs a few milliseconds.
    """
    counts = {str(name): int(n) for name, n in connection.exec_driver_sql(COUNT_ALL_TABLES)}
    rows = {
        name: sorted(repr(tuple(row)) for row in connection.exec_driver_sql(f'SELECT * FROM "{name}"'))
        for name, n in counts.items()
        if n
    }
    return {"counts": counts, "rows": rows}


COUNT_ALL_TABLES = " UNION ALL ".join(
    f"SELECT '{t.name}', COUNT(*) FROM \"{t.name}\"" for t in Base.metadata.sorted_tables
)


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        name: (before["counts"][name], after["counts"][name])
        for name in before["counts"]
        if before["counts"][name] != after["counts"][name]
        or before["rows"].get(name) != after["rows"].get(name)
    }


# --- the bad bodies --------------------------------------------------------------------------------------


def wrong_type_for(prop: dict[str, Any]) -> Any:
    return (
        "not-a-number" if prop.get("type") in ("integer", "number", "boolean", "array", "object") else 12345
    )


@dataclass
class BadBody:
    body: Any = None
    raw: str | None = None
    must_name: set[str] = field(default_factory=set)  # fields the validation errors must mention


def bad_body(label: str, schema: dict[str, Any] | None, world: World) -> BadBody:
    props = {k: world.resolve(v) for k, v in (schema or {}).get("properties", {}).items()}
    numeric = {k: p for k, p in props.items() if p.get("type") in ("integer", "number")}
    if label == "malformed json":
        return BadBody(raw='{"resident_id": 1, program_id: ')
    if label == "json list":
        return BadBody(body=[1, 2, 3])
    if label == "unknown field":
        return BadBody(body={"zzz_unknown_field": 1}, must_name={"zzz_unknown_field"})
    if label == "wrong types":
        if not props:
            return BadBody(body={"zzz_unknown_field": [1]})
        return BadBody(body={k: wrong_type_for(p) for k, p in props.items()}, must_name=set(props))
    if label == "huge number":
        if not numeric:
            return BadBody(body={k: HUGE for k in props} or {"amount": HUGE})
        return BadBody(body={k: HUGE for k in numeric}, must_name=set(numeric))
    if label == "negative number":
        refused = {k for k, p in numeric.items() if p.get("minimum") is not None and p["minimum"] > NEGATIVE}
        if not numeric:
            return BadBody(body={k: NEGATIVE for k in props} or {"amount": NEGATIVE})
        return BadBody(body={k: NEGATIVE for k in numeric}, must_name=refused)
    if label == "nul character":  # PostgreSQL can keep no NUL in text: refused before anything reads it
        strings = {k for k, p in props.items() if p.get("type") == "string"}
        return BadBody(body={k: "a\u0000b" for k in strings or {"note"}}, must_name=strings or {"note"})
    raise AssertionError(label)


# --- the tests -------------------------------------------------------------------------------------------


def assert_problem(r: TestResponse, what: str) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (what, r.status_code, r.get_data(as_text=True)[:300])
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), (what, r.headers)
    body = json.loads(r.get_data(as_text=True))
    assert isinstance(body, dict), (what, body)
    assert body.get("code"), (what, body)
    return body


def test_the_routes_were_found() -> None:
    """The discovery cannot silently find nothing: known write routes of every kind are in it."""
    found = {rule for _, rule in WRITE_ROUTES}
    assert {
        "/api/v1/applications",
        "/api/v1/rides",
        "/api/v1/rides/<int:ride_id>/fare",
        "/api/v1/terminals/sync",
        "/api/v1/settlement-runs",
        "/api/v1/auth/token",
    } <= found
    assert len(WRITE_ROUTES) >= 30


@pytest.mark.parametrize("label", CLASSES)
@pytest.mark.parametrize(("method", "rule"), WRITE_ROUTES, ids=[f"{m} {r}" for m, r in WRITE_ROUTES])
def test_bad_input_is_a_4xx_problem_and_changes_nothing(
    world_in_savepoint: World, method: str, rule: str, label: str
) -> None:
    world = world_in_savepoint
    what = f"{method} {rule} [{label}]"
    protected = world.is_protected(method, rule)
    schema = world.json_body_schema(method, rule)
    caller = world.caller_let_in(method, rule) if label in BODY_CLASSES else None
    before = snapshot(world.connection)

    if label == "missing token":
        body = assert_problem(world.send(method, rule, caller=None, body={}), what)
        if protected:
            assert body["code"] == "auth.required", (what, body)
    elif label == "wrong role":
        bodies = ROLE_DEPENDS_ON_BODY.get(rule, {})
        codes = {
            caller: assert_problem(
                world.send(method, rule, caller=caller, body=bodies.get(caller, {})), what
            )["code"]
            for caller in WRONG_ROLE_CALLERS
        }
        if protected:  # each route refuses at least one of them, by role, before anything else
            assert "auth.forbidden" in codes.values(), (what, codes)
    else:
        bad = bad_body(label, schema, world)
        r = world.send(method, rule, caller=caller, body=bad.body, raw=bad.raw)
        body = assert_problem(r, what)
        assert r.status_code not in (401, 403), (what, caller, body)
        if schema is not None:
            if label == "malformed json":
                assert (r.status_code, body["code"]) == (400, "request.malformed"), (what, body)
            else:
                assert (r.status_code, body["code"]) == (422, "validation"), (what, body)
                missing = bad.must_name - set(body.get("errors", {}))
                assert not missing, (what, "not named in errors", missing, body.get("errors"))

    assert changed(before, snapshot(world.connection)) == {}, what


def query_parameters(world: World, rule: str) -> list[str]:
    """The documented query parameters of a read route, plus one it does not know."""
    documented = [
        p["name"] for p in world.operation("GET", rule).get("parameters", []) if p.get("in") == "query"
    ]
    return [*documented, "zzz_unknown"]


def test_the_read_routes_were_found() -> None:
    found = {rule for _, rule in READ_ROUTES}
    assert {"/api/v1/statements", "/api/v1/reports/monthly", "/api/v1/settlement-runs"} <= found
    assert len(READ_ROUTES) >= 20


@pytest.mark.parametrize(("method", "rule"), READ_ROUTES, ids=[r for _, r in READ_ROUTES])
def test_a_bad_query_string_on_a_read_route_is_never_a_server_error(
    world_in_savepoint: World, method: str, rule: str
) -> None:
    world = world_in_savepoint
    caller = world.caller_let_in(method, rule)
    headers = world.headers[caller]
    names = query_parameters(world, rule)
    asked: list[dict[str, str | list[str]]] = [{name: value} for name in names for value in BAD_QUERY_VALUES]
    asked.append({name: "x" for name in names})  # every parameter wrong at once
    asked.append({name: ["1", "2"] for name in names})  # every parameter twice
    for query in asked:
        r = world.client.get(concrete(rule), query_string=query, headers=headers)
        what = f"GET {rule}?{query}"
        if r.status_code >= 400:
            assert_problem(r, what)
        else:
            assert r.status_code < 300, (what, r.status_code)


ID_ROUTES = [(m, r) for m, r in WRITE_ROUTES + READ_ROUTES if "<int:" in r]


@pytest.mark.parametrize(("method", "rule"), ID_ROUTES, ids=[f"{m} {r}" for m, r in ID_ROUTES])
def test_an_id_beyond_any_row_is_not_found(world_in_savepoint: World, method: str, rule: str) -> None:
    # A BIGINT holds at most 2**63 - 1; PostgreSQL refuses anything larger as out of range (once a 500).
    world = world_in_savepoint
    for too_big in (2**63, 10**30):
        path = re.sub(r"<int:[^>]+>", str(too_big), rule)
        path = re.sub(r"<[^>]+>", MISSING_ID, path)
        r = world.client.open(path, method=method, headers=world.headers["boss"], json={})
        body = assert_problem(r, f"{method} {path}")
        assert (r.status_code, body["code"]) == (404, "not_found"), (method, path, body)
    last = re.sub(r"<int:[^>]+>", str(2**63 - 1), rule)  # the largest id is still looked up
    r = world.client.open(
        re.sub(r"<[^>]+>", MISSING_ID, last), method=method, headers=world.headers["boss"], json={}
    )
    assert r.status_code < 500, (method, last, r.status_code)
