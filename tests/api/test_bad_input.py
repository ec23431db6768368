"""No request, however malformed, produces a 500 or changes anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider
from voucher_api.models import Application, AuditEntry, Entitlement, Ride, RideStatus


def counts(session: Session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (Application, Entitlement, Ride, AuditEntry)
    )


@pytest.fixture
def counter_headers(client: FlaskClient, city: City) -> dict[str, str]:
    return {**f.bearer(f.staff_token(client, "madoguchi")), "Idempotency-Key": "bad-input"}


ALL_FIELDS = {"resident_id", "program_id", "channel"}
BAD_BODIES: list[tuple[str, Any, int, set[str]]] = [
    # what is sent, and the answer: its status and the fields the errors name
    ("not json", "{resident_id: 1", 400, {"json"}),
    ("a list", [1, 2, 3], 422, {"_schema"}),
    ("wrong types", {"resident_id": "one", "program_id": True, "channel": 3}, 422, ALL_FIELDS),
    (
        "unknown field",
        {"resident_id": 1, "program_id": 1, "channel": "counter", "is_admin": True},
        422,
        {"is_admin"},
    ),
    ("huge number", {"resident_id": 10**30, "program_id": 1, "channel": "counter"}, 422, {"resident_id"}),
    ("negative number", {"resident_id": -5, "program_id": 1, "channel": "counter"}, 422, {"resident_id"}),
    ("float id", {"resident_id": 1.5, "program_id": 1, "channel": "counter"}, 422, {"resident_id"}),
    ("unknown channel", {"resident_id": 1, "program_id": 1, "channel": "fax"}, 422, {"channel"}),
    ("missing fields", {}, 422, ALL_FIELDS),
    ("deep nesting", "[" * 5000 + "]" * 5000, 400, set()),
    ("null", None, 422, ALL_FIELDS),
]


@pytest.mark.parametrize(("label", "body", "status", "named"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_application_is_a_4xx_problem_and_writes_nothing(
    client: FlaskClient,
    session: Session,
    counter_headers: dict[str, str],
    label: str,
    body: Any,
    status: int,
    named: set[str],
) -> None:
    before = counts(session)
    if isinstance(body, str):
        r = client.post(
            "/api/v1/applications", data=body, content_type="application/json", headers=counter_headers
        )
    else:
        r = client.post("/api/v1/applications", json=body, headers=counter_headers)
    assert r.status_code == status, (label, r.status_code, r.data[:200])
    assert r.headers["Content-Type"].startswith("application/problem+json")
    problem = r.get_json()
    assert problem["code"] == ("request.malformed" if status == 400 else "validation")
    assert set(problem.get("errors", {})) == named
    assert counts(session) == before


@pytest.mark.parametrize(
    "fare",
    [-1, 1_000_001, 10**20, "1000", 12.5, None, True],
    ids=["neg", "big", "huge", "str", "float", "null", "bool"],
)
def test_bad_fares_are_refused_and_the_ride_stays_open(
    client: FlaskClient, session: Session, city: City, rider: Rider, fare: Any
) -> None:
    from tests.api.conftest import board

    ride_id = board(client, city, rider.card, key="fare-bad").get_json()["ride_id"]
    token = city.terminal.token(client, f.NOW)
    r = client.post(f"/api/v1/rides/{ride_id}/fare", json={"meter_fare": fare}, headers=f.bearer(token))
    assert r.status_code == 422
    assert r.get_json()["code"] == "validation"
    assert "meter_fare" in r.get_json()["errors"]
    assert session.scalar(select(Ride.status).where(Ride.id == ride_id)) == RideStatus.BOARDED


def test_missing_token_is_401(client: FlaskClient, city: City) -> None:
    r = client.post("/api/v1/applications", json={})
    assert r.status_code == 401
    assert r.get_json()["code"] == "auth.required"


def test_wrong_role_is_403_and_writes_nothing(client: FlaskClient, session: Session, city: City) -> None:
    before = counts(session)
    headers = {**f.bearer(f.staff_token(client, "keiri")), "Idempotency-Key": "k"}
    r = client.post(
        "/api/v1/applications",
        json={"resident_id": 1, "program_id": 1, "channel": "counter"},
        headers=headers,
    )
    assert r.status_code == 403
    assert counts(session) == before


def test_staff_token_cannot_board(client: FlaskClient, city: City) -> None:
    headers = {**f.bearer(f.staff_token(client, "madoguchi")), "Idempotency-Key": "k"}
    assert client.post("/api/v1/rides", json={}, headers=headers).status_code == 403


def test_a_nul_character_is_refused_before_anything_reads_it(
    client: FlaskClient, session: Session, city: City
) -> None:
    # PostgreSQL keeps no NUL in text: each of these was a 500 there before it was refused up front.
    staff = f.bearer(f.staff_token(client, "madoguchi"))
    before = counts(session)
    r = client.post("/api/v1/auth/token", json={"username": "madoguchi\u0000", "password": "x"})
    assert (r.status_code, r.get_json()["code"]) == (422, "validation")
    assert set(r.get_json()["errors"]) == {"username"}
    r = client.get("/api/v1/residents", query_string={"kana": "ヤマ\x00"}, headers=staff)
    assert (r.status_code, set(r.get_json()["errors"])) == (422, {"kana"})
    nested = {"resident_id": 1, "program_id": 1, "channel": "counter", "answers": {"note": ["\u0000"]}}
    r = client.post("/api/v1/applications", json=nested, headers={**staff, "Idempotency-Key": "nul-1"})
    assert (r.status_code, set(r.get_json()["errors"])) == (422, {"answers"})
    r = client.post("/api/v1/applications", json={}, headers={**staff, "Idempotency-Key": "k\x00"})
    assert (r.status_code, r.get_json()["code"]) == (400, "request.malformed")
    assert client.get("/api/v1/statements/1%00").status_code == 400
    assert counts(session) == before


def test_boarding_without_idempotency_key_is_refused(client: FlaskClient, city: City) -> None:
    token = city.terminal.token(client, f.NOW)
    r = client.post(
        "/api/v1/rides", json={"sequence": 1, "card": {"certificate": "AAAA"}}, headers=f.bearer(token)
    )
    assert r.status_code == 400
    assert r.get_json()["code"] == "idempotency.key_required"


def test_garbage_certificate_is_refused_cleanly(client: FlaskClient, city: City) -> None:
    token = city.terminal.token(client, f.NOW)
    r = client.post(
        "/api/v1/rides",
        json={"sequence": 1, "card": {"certificate": "AAAAAAAA", "chain": []}},
        headers=f.bearer(token, **{"Idempotency-Key": "garbage"}),
    )
    assert r.status_code == 422
    assert r.get_json()["code"] == "card.malformed"


TOKEN_FORGERIES: list[tuple[str, Callable[[str], str]]] = [
    (
        "alg none",
        lambda secret: jwt.encode({"sub": "staff:1", "typ": "staff", "mun": 1}, "", algorithm="none"),
    ),
    (
        "wrong secret",
        lambda secret: jwt.encode(
            {
                "sub": "staff:1",
                "typ": "staff",
                "mun": 1,
                "aud": "voucher-api",
                "iat": 1,
                "exp": 4102444800,
                "roles": ["admin"],
            },
            "not-the-secret-" + "y" * 70,
            algorithm="HS256",
        ),
    ),
    ("garbage", lambda secret: "abc.def.ghi"),
    (
        "expired",
        lambda secret: jwt.encode(
            {
                "sub": "staff:1",
                "typ": "staff",
                "mun": 1,
                "aud": "voucher-api",
                "iat": 1,
                "exp": 2,
                "roles": ["admin"],
            },
            secret,
            algorithm="HS256",
        ),
    ),
    (
        "HS512 with the right secret",
        lambda secret: jwt.encode(
            {"sub": "staff:1", "typ": "staff", "mun": 1, "aud": "voucher-api", "iat": 1, "exp": 4102444800},
            secret,
            algorithm="HS512",
        ),
    ),
]


@pytest.mark.parametrize(("label", "forge"), TOKEN_FORGERIES, ids=[t[0] for t in TOKEN_FORGERIES])
def test_forged_or_expired_tokens_are_refused(
    client: FlaskClient, settings: Any, city: City, label: str, forge: Callable[[str], str]
) -> None:
    r = client.get("/api/v1/programs", headers=f.bearer(forge(settings.jwt_secret)))
    assert r.status_code == 401, label
    assert r.get_json()["code"] == "auth.invalid_token"


def test_oversized_body_is_413(client: FlaskClient, city: City) -> None:
    r = client.post("/api/v1/auth/token", data="x" * 400_000, content_type="application/json")
    assert r.status_code == 413
    assert r.get_json()["code"] == "request.too_large"


def test_unknown_path_and_method_are_problems(client: FlaskClient) -> None:
    assert client.get("/api/v1/nothing-here").get_json()["code"] == "not_found"
    r = client.delete("/api/v1/auth/token")
    assert r.status_code == 405
    assert r.get_json()["code"] == "request.method_not_allowed"


def test_english_is_available(client: FlaskClient) -> None:
    r = client.post(
        "/api/v1/auth/token", json={"username": "x", "password": "y"}, headers={"Accept-Language": "en"}
    )
    assert r.get_json()["title"] == "Wrong username or password."


def test_openapi_spec_and_docs_page_are_served(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/rides" in spec["paths"]
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "/api/v1/rides" in page.get_data(as_text=True)


def test_health_reports_database_and_broker(client: FlaskClient) -> None:
    body = client.get("/api/v1/health").get_json()
    assert body == {"status": "ok", "database": "ok", "broker": "ok"}
