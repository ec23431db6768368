"""The counter: card bound after a challenge, application decided with reasons, entitlement granted."""

from __future__ import annotations

import base64
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City
from voucher_api.models import AuditEntry, CardBinding, Entitlement, LedgerEntry, LedgerKind


def sign_in(client: FlaskClient, username: str) -> dict[str, str]:
    return f.bearer(f.staff_token(client, username))


def bind_through_api(
    client: FlaskClient, headers: dict[str, str], resident_id: int, card: Any, **extra: Any
) -> Any:
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "bind"}, headers=headers).get_json()
    proof = f.card_proof(card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    return client.post(
        "/api/v1/card-bindings", json={"resident_id": resident_id, "card": proof, **extra}, headers=headers
    )


def test_staff_sign_in_gives_a_short_lived_token_with_roles(client: FlaskClient, city: City) -> None:
    r = client.post("/api/v1/auth/token", json={"username": "madoguchi", "password": f.PASSWORD})
    assert r.status_code == 200
    body = r.get_json()
    assert body["roles"] == ["counter"]
    assert 0 < body["expires_in"] <= 3600


def test_wrong_password_is_refused_in_japanese(client: FlaskClient, city: City) -> None:
    r = client.post("/api/v1/auth/token", json={"username": "madoguchi", "password": "nope"})
    assert r.status_code == 401
    assert r.get_json()["code"] == "auth.bad_credentials"
    assert "パスワード" in r.get_json()["title"]


def test_counter_binds_card_then_eligible_resident_is_granted(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    person = f.resident(session, city.mun, birth_date=date(1944, 2, 3), car_licence="returned")
    session.commit()
    headers = sign_in(client, "madoguchi")

    bound = bind_through_api(client, headers, person.id, card_factory("counter"))
    assert bound.status_code == 201, bound.get_json()
    assert bound.get_json()["method"] == "pin_signature"

    r = client.post(
        "/api/v1/applications",
        json={"resident_id": person.id, "program_id": city.program.id, "channel": "counter"},
        headers={**headers, "Idempotency-Key": "app-1"},
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["application"]["status"] == "approved"
    assert all(reason["met"] for reason in body["application"]["reasons"])
    assert any("82歳" in reason["ja"] for reason in body["application"]["reasons"])
    assert body["entitlement"]["balance"] == 24
    granted = session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.balance_after).where(
            LedgerEntry.entitlement_id == body["entitlement"]["id"]
        )
    ).all()
    assert [tuple(row) for row in granted] == [(LedgerKind.GRANT, 24, 24)]
    actions = set(session.scalars(select(AuditEntry.action)))
    assert {"card.bound", "application.decided", "entitlement.granted"} <= actions


def test_too_young_resident_is_rejected_with_reasons_and_gets_nothing(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun, birth_date=date(1960, 1, 1))
    session.commit()
    r = client.post(
        "/api/v1/applications",
        json={
            "resident_id": person.id,
            "program_id": city.program.id,
            "channel": "counter",
            "staff_attested": True,
        },
        headers={**sign_in(client, "madoguchi"), "Idempotency-Key": "app-young"},
    )
    assert r.status_code == 201
    assert r.get_json()["application"]["status"] == "rejected"
    failed = [x for x in r.get_json()["application"]["reasons"] if not x["met"]]
    assert failed[0]["rule"] == "min_age"
    assert r.get_json()["entitlement"] is None
    assert session.scalar(select(func.count()).select_from(Entitlement)) == 0


def test_mutually_exclusive_programs_cannot_both_be_granted(
    client: FlaskClient, session: Session, city: City
) -> None:
    other = f.program(
        session,
        city.mun,
        code="disability",
        excludes=[city.program],
        rules={
            "eligibility": [
                {"type": "disability", "certificates": [{"kind": "physical", "grades": ["1", "2"]}]}
            ],
            "subsidy": {"formula": "fixed_copay", "copay": 500},
            "grant": {"unit": "ride", "amount": 36},
        },
    )
    person = f.resident(session, city.mun, disability=[{"kind": "physical", "grade": "1"}])
    f.entitlement(session, person, city.program)
    session.commit()
    r = client.post(
        "/api/v1/applications",
        json={"resident_id": person.id, "program_id": other.id, "channel": "counter", "staff_attested": True},
        headers={**sign_in(client, "madoguchi"), "Idempotency-Key": "app-excl"},
    )
    assert r.get_json()["application"]["status"] == "rejected"
    exclusion = [x for x in r.get_json()["application"]["reasons"] if x["rule"] == "exclusion"]
    assert exclusion
    assert "併用できません" in exclusion[0]["ja"]


def test_retried_application_returns_the_first_decision(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun)
    session.commit()
    headers = {**sign_in(client, "madoguchi"), "Idempotency-Key": "same-key"}
    body = {
        "resident_id": person.id,
        "program_id": city.program.id,
        "channel": "counter",
        "staff_attested": True,
    }
    first = client.post("/api/v1/applications", json=body, headers=headers)
    again = client.post("/api/v1/applications", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert session.scalar(select(func.count()).select_from(Entitlement)) == 1


def test_application_without_identity_check_is_refused(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun)
    session.commit()
    r = client.post(
        "/api/v1/applications",
        json={"resident_id": person.id, "program_id": city.program.id, "channel": "counter"},
        headers={**sign_in(client, "madoguchi"), "Idempotency-Key": "no-id"},
    )
    assert r.status_code == 422
    assert r.get_json()["code"] == "application.identity_required"


def test_card_bound_to_someone_else_is_refused(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    first, second = f.resident(session, city.mun), f.resident(session, city.mun)
    session.commit()
    headers = sign_in(client, "madoguchi")
    card = card_factory("shared")
    assert bind_through_api(client, headers, first.id, card).status_code == 201
    r = bind_through_api(client, headers, second.id, card)
    assert r.status_code == 409
    assert r.get_json()["code"] == "card.bound_to_other"
    assert session.scalar(select(func.count()).select_from(CardBinding)) == 1


def test_eligibility_lists_every_program_with_reasons(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun, car_licence="held")
    session.commit()
    r = client.get(f"/api/v1/residents/{person.id}/eligibility", headers=sign_in(client, "madoguchi"))
    assert r.status_code == 200
    [decision] = r.get_json()
    assert decision["eligible"] is False
    assert any(not x["met"] and "運転免許あり" in x["ja"] for x in decision["reasons"])
