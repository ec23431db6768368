"""Tap rules (DESIGN §5): a tap (the user certificate read without the PIN, no signature) boards only
where the program allows it, and only a card first linked with the PIN; linking never accepts a tap.

Every test's work is rolled back, so the tests share two cards (RSA key generation is the slow part).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider, board
from tests.api.test_identity import holder_resident
from voucher_api.models import CardBinding, Entitlement, Program, Resident, Ride

TAP_RULES: dict[str, Any] = {
    **f.ELDERLY_RULES,
    "options": {"tap_allowed": True},
}


def tap(client: FlaskClient, city: City, card: Path, *, key: str) -> Any:
    """The terminal's boarding by tap: the certificate and its CA, no challenge, no signature."""
    now = client.application.extensions["voucher"]["clock"].now()
    token = city.terminal.token(client, now)
    body = {
        "sequence": city.terminal.next_sequence(),
        "card": f.card_proof(card, message=None, nonce=None),
    }
    return client.post("/api/v1/rides", json=body, headers=f.bearer(token, **{"Idempotency-Key": key}))


def counter(client: FlaskClient) -> dict[str, str]:
    return f.bearer(f.staff_token(client, "madoguchi"))


def bind_with_pin(client: FlaskClient, person: Resident, card: Path) -> Any:
    """The counter's first linking: the card signs a staff challenge with the PIN."""
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "bind"}, headers=headers).get_json()
    proof = f.card_proof(card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    return client.post(
        "/api/v1/card-bindings",
        json={"resident_id": person.id, "card": proof},
        headers={**headers, "Idempotency-Key": f"bind-{person.id}"},
    )


@pytest.fixture
def tap_program(session: Session, city: City) -> Program:
    return f.program(session, city.mun, code="bus_abolished", rules=TAP_RULES)


@pytest.fixture
def tap_resident(session: Session, city: City, tap_program: Program) -> Resident:
    person = f.resident(session, city.mun)
    f.entitlement(session, person, tap_program)
    session.commit()
    return person


def bindings(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(CardBinding)) or 0


def test_tap_is_refused_where_the_program_needs_the_pin(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    assert not city.program.options.get("tap_allowed")
    r = tap(client, city, rider.card, key="tap-pin-program")
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.tap_not_allowed"
    assert session.scalar(select(func.count()).select_from(Ride)) == 0
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id)) == 24


def test_tap_boards_where_the_program_allows_it_once_the_card_was_linked_with_the_pin(
    client: FlaskClient, session: Session, city: City, tap_resident: Resident, card_factory: Any
) -> None:
    card = card_factory("tap")
    bound = bind_with_pin(client, tap_resident, card)
    assert bound.status_code == 201, bound.get_json()
    assert bound.get_json()["method"] == "pin_signature"
    r = tap(client, city, card, key="tap-ok")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["balance"] == 23
    ride = session.get(Ride, r.get_json()["ride_id"])
    assert ride is not None
    assert ride.auth_method == "tap"


def test_a_pin_boarding_in_a_tap_program_is_recorded_as_pin(
    client: FlaskClient, session: Session, city: City, tap_resident: Resident, card_factory: Any
) -> None:
    card = card_factory("tap")
    assert bind_with_pin(client, tap_resident, card).status_code == 201
    r = board(client, city, card, key="pin-in-tap-program")
    assert r.status_code == 201, r.get_json()
    ride = session.get(Ride, r.get_json()["ride_id"])
    assert ride is not None
    assert ride.auth_method == "pin"


def test_tap_of_a_card_never_linked_is_refused_even_where_tap_is_allowed(
    client: FlaskClient, session: Session, city: City, tap_resident: Resident, card_factory: Any
) -> None:
    r = tap(client, city, card_factory("tap"), key="tap-unlinked")
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.not_bound"


def test_linking_a_card_by_tap_is_refused_and_binds_nothing(
    client: FlaskClient, session: Session, city: City, tap_resident: Resident, card_factory: Any
) -> None:
    card = card_factory("tap")
    r = client.post(
        "/api/v1/card-bindings",
        json={"resident_id": tap_resident.id, "card": f.card_proof(card, message=None, nonce=None)},
        headers={**counter(client), "Idempotency-Key": "bind-by-tap"},
    )
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.tap_not_allowed"
    assert bindings(session) == 0
    # ...so the card cannot board by tap either: the first linking must be with the PIN.
    assert tap(client, city, card, key="tap-after-refused-link").get_json()["code"] == "card.not_bound"


def test_linking_with_a_challenge_but_no_signature_is_refused(
    client: FlaskClient, session: Session, city: City, tap_resident: Resident, card_factory: Any
) -> None:
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "bind"}, headers=headers).get_json()
    proof = f.card_proof(card_factory("tap"), message=None, nonce=challenge["nonce"])
    r = client.post(
        "/api/v1/card-bindings",
        json={"resident_id": tap_resident.id, "card": proof},
        headers={**headers, "Idempotency-Key": "bind-nonce-only"},
    )
    assert r.get_json()["code"] == "card.tap_not_allowed"
    assert bindings(session) == 0


def test_enrolment_without_the_pin_signature_is_refused(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    holder_resident(session, city, "tap-enrol")
    session.commit()
    card = card_factory("tap-enrol")
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "enrol"}, headers=headers).get_json()
    message = base64.b64decode(challenge["message"])
    reader = f.card_reader(card)
    body = {
        "card": f.card_proof(card, message=None, nonce=challenge["nonce"]),  # the user key did not sign
        "signature_certificate": base64.b64encode(
            reader.read_signature_certificate(f.CARD_PASSWORD)
        ).decode(),
        "signature_chain": [base64.b64encode(reader.read_signature_ca_certificate()).decode()],
        "signature": base64.b64encode(reader.sign_with_signature_key(message, f.CARD_PASSWORD)).decode(),
    }
    r = client.post("/api/v1/enrolments", json=body, headers={**headers, "Idempotency-Key": "enrol-tap"})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.tap_not_allowed"
    assert bindings(session) == 0


def test_enrolment_without_the_signature_key_s_signature_is_refused(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    holder_resident(session, city, "tap-enrol")
    session.commit()
    card = card_factory("tap-enrol")
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "enrol"}, headers=headers).get_json()
    message = base64.b64decode(challenge["message"])
    reader = f.card_reader(card)
    body = {
        "card": f.card_proof(card, message=message, nonce=challenge["nonce"]),
        "signature_certificate": base64.b64encode(
            reader.read_signature_certificate(f.CARD_PASSWORD)
        ).decode(),
        "signature_chain": [base64.b64encode(reader.read_signature_ca_certificate()).decode()],
    }
    r = client.post("/api/v1/enrolments", json=body, headers={**headers, "Idempotency-Key": "enrol-nosig"})
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "validation"
    assert bindings(session) == 0
