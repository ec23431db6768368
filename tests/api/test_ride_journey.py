"""The car: terminal enrolment and sign-in, boarding, fare at alighting, void, limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider, board
from voucher_api.clock import FixedClock
from voucher_api.models import Entitlement, Ride, Vehicle
from voucher_api.services.entitlements import ledger_sum


def test_terminal_enrols_once_with_its_code_and_signs_in_with_its_key(
    client: FlaskClient, session: Session, city: City
) -> None:
    admin = f.bearer(f.staff_token(client, "jigyosha"))
    vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.operator_id == city.operator_id))
    created = client.post("/api/v1/terminals", json={"vehicle_id": vehicle_id}, headers=admin)
    assert created.status_code == 201
    code = created.get_json()["enrolment_code"]
    key = Ed25519PrivateKey.generate()
    enrolled = client.post(
        "/api/v1/terminals/enrol", json={"enrolment_code": code, "public_key": f.public_key_b64(key)}
    )
    assert enrolled.status_code == 201
    again = client.post(
        "/api/v1/terminals/enrol",
        json={"enrolment_code": code, "public_key": f.public_key_b64(Ed25519PrivateKey.generate())},
    )
    assert again.get_json()["code"] == "terminal.enrolment_invalid"
    device = f.TerminalDevice(enrolled.get_json()["terminal_id"], key)
    assert device.token(client, f.NOW)


def test_assertion_signed_by_another_key_is_refused(client: FlaskClient, city: City) -> None:
    impostor = f.TerminalDevice(city.terminal.terminal_id, Ed25519PrivateKey.generate())
    r = client.post("/api/v1/auth/terminal-token", json={"assertion": impostor.assertion(f.NOW)})
    assert r.status_code == 401
    assert r.get_json()["code"] == "terminal.bad_assertion"


def test_boarding_consumes_one_ride_and_fare_splits_per_formula(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    r = board(client, city, rider.card, key="ride-1")
    assert r.status_code == 201, r.get_json()
    ride = r.get_json()
    assert ride["status"] == "boarded"
    assert ride["balance"] == 23
    assert ride["given_name"] == "花子"
    assert ride["age_band"] == "80代"

    token = city.terminal.token(client, f.NOW)
    fare = client.post(
        f"/api/v1/rides/{ride['ride_id']}/fare", json={"meter_fare": 1840}, headers=f.bearer(token)
    )
    assert fare.status_code == 200
    assert (fare.get_json()["subsidy"], fare.get_json()["rider_share"]) == (920, 920)
    assert ledger_sum(session, rider.entitlement.id) == 23


def test_retried_boarding_returns_the_first_ride_and_changes_nothing(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    first = board(client, city, rider.card, key="retry-me", sequence=7)
    again = board(client, city, rider.card, key="retry-me", sequence=7)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.get_json()["ride_id"] == first.get_json()["ride_id"]
    assert again.get_json()["replayed"] is True
    assert session.scalar(select(func.count()).select_from(Ride)) == 1
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id)) == 23


def test_reused_sequence_number_with_a_new_key_is_a_conflict(
    client: FlaskClient, city: City, rider: Rider
) -> None:
    assert board(client, city, rider.card, key="a", sequence=3).status_code == 201
    r = board(client, city, rider.card, key="b", sequence=3)
    assert r.status_code == 409
    assert r.get_json()["code"] == "ride.sequence_reused"


def test_daily_limit_refuses_the_third_ride_of_the_day(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    assert board(client, city, rider.card, key="d1").status_code == 201
    assert board(client, city, rider.card, key="d2").status_code == 201
    third = board(client, city, rider.card, key="d3")
    assert third.status_code == 422
    assert third.get_json()["code"] == "limit.per_day"
    assert "本日" in third.get_json()["title"]
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id)) == 22


def test_exhausted_entitlement_is_refused_with_what_to_tell_the_passenger(
    client: FlaskClient, session: Session, city: City, card_factory: Any, verifier: Any
) -> None:
    person = f.resident(session, city.mun)
    f.entitlement(session, person, city.program, balance=0)
    card = card_factory("empty")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    r = board(client, city, card, key="empty-1")
    assert r.status_code == 422
    assert r.get_json()["code"] == "entitlement.exhausted"
    assert "通常料金" in r.get_json()["title"]


def test_unbound_card_is_refused(client: FlaskClient, city: City, card_factory: Any) -> None:
    r = board(client, city, card_factory("stranger"), key="x")
    assert r.get_json()["code"] == "card.not_bound"


def test_void_within_the_window_returns_the_ride(
    client: FlaskClient, session: Session, city: City, rider: Rider, clock: FixedClock
) -> None:
    ride_id = board(client, city, rider.card, key="v1").get_json()["ride_id"]
    token = f.bearer(city.terminal.token(client, clock.now()))
    clock.advance(timedelta(minutes=5))
    r = client.post(f"/api/v1/rides/{ride_id}/void", json={"reason": "乗車取り消し"}, headers=token)
    assert r.status_code == 200
    assert r.get_json()["status"] == "voided"
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id)) == 24
    assert ledger_sum(session, rider.entitlement.id) == 24


def test_void_after_the_window_is_refused(
    client: FlaskClient, session: Session, city: City, rider: Rider, clock: FixedClock
) -> None:
    ride_id = board(client, city, rider.card, key="v2").get_json()["ride_id"]
    clock.advance(timedelta(minutes=30))
    token = f.bearer(city.terminal.token(client, clock.now()))
    r = client.post(f"/api/v1/rides/{ride_id}/void", json={"reason": "late"}, headers=token)
    assert r.status_code == 422
    assert r.get_json()["code"] == "ride.void_window_passed"


def test_challenge_cannot_be_replayed(client: FlaskClient, city: City, rider: Rider) -> None:
    import base64

    token = city.terminal.token(client, f.NOW)
    challenge = client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    proof = f.card_proof(rider.card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    first = client.post(
        "/api/v1/rides",
        json={"sequence": 1, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "k1"}),
    )
    assert first.status_code == 201
    second = client.post(
        "/api/v1/rides",
        json={"sequence": 2, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "k2"}),
    )
    assert second.get_json()["code"] == "challenge.replayed"


def test_expired_challenge_is_refused(
    client: FlaskClient, city: City, rider: Rider, clock: FixedClock
) -> None:
    import base64

    token = city.terminal.token(client, clock.now())
    challenge = client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    proof = f.card_proof(rider.card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    clock.advance(timedelta(minutes=11))  # past BOARD_CHALLENGE_TTL
    token = city.terminal.token(client, clock.now())
    r = client.post(
        "/api/v1/rides",
        json={"sequence": 1, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "k"}),
    )
    assert r.get_json()["code"] == "challenge.expired"


def test_signature_over_other_bytes_is_refused(client: FlaskClient, city: City, rider: Rider) -> None:
    token = city.terminal.token(client, f.NOW)
    challenge = client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    proof = f.card_proof(rider.card, message=b"something else", nonce=challenge["nonce"])
    r = client.post(
        "/api/v1/rides",
        json={"sequence": 1, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "k"}),
    )
    assert r.status_code == 401
    assert r.get_json()["code"] == "signature.invalid"


def test_each_ride_answer_hands_over_the_next_boarding_challenge(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    import base64

    first = board(client, city, rider.card, key="chain-1").get_json()
    challenge = first["next_challenge"]
    assert challenge["purpose"] == "board"
    token = city.terminal.token(client, f.NOW)
    proof = f.card_proof(rider.card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    second = client.post(
        "/api/v1/rides",
        json={"sequence": 99, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "chain-2"}),
    )
    assert second.status_code == 201
    assert second.get_json()["next_challenge"]["nonce"] != challenge["nonce"]
