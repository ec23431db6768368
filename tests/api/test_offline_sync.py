"""Offline terminals: the signed snapshot, and syncing records so nothing is lost or applied twice."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider
from voucher_api.clock import FixedClock
from voucher_api.models import AuditEntry, Entitlement, Ride, StaffRole, TerminalRecord
from voucher_api.services.entitlements import ledger_sum
from voucher_api.services.offline import b64url, b64url_decode, canonical_json, offline_board_message


def signed(device: f.TerminalDevice, record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "record_signature": b64url(device.key.sign(canonical_json(record)))}


def board_record(
    device: f.TerminalDevice, card: Path, sequence: int, at: datetime, **extra: Any
) -> dict[str, Any]:
    nonce = secrets.token_bytes(32)
    reader = f.card_reader(card)
    signature = reader.sign_with_user_key(
        offline_board_message(nonce, device.terminal_id, sequence), f.CARD_PIN
    )
    record = {
        "kind": "board",
        "sequence": sequence,
        "idempotency_key": f"off-{device.terminal_id}-{sequence}",
        "recorded_at": at.isoformat(),
        "card": {
            "certificate": base64.b64encode(reader.read_user_certificate()).decode(),
            "chain": [base64.b64encode(reader.read_user_ca_certificate()).decode()],
            "nonce": nonce.hex(),
            "signature": base64.b64encode(signature).decode(),
        },
        "driver_code": None,
        "trip_ref": None,
        **extra,
    }
    return signed(device, record)


def fare_record(
    device: f.TerminalDevice, sequence: int, board_sequence: int, fare: int, at: datetime
) -> dict[str, Any]:
    return signed(
        device,
        {
            "kind": "fare",
            "sequence": sequence,
            "idempotency_key": f"off-{device.terminal_id}-{sequence}",
            "recorded_at": at.isoformat(),
            "board_sequence": board_sequence,
            "meter_fare": fare,
        },
    )


def sync(client: FlaskClient, device: f.TerminalDevice, records: list[dict[str, Any]]) -> Any:
    token = device.token(client, f.NOW)
    r = client.post("/api/v1/terminals/sync", json={"records": records}, headers=f.bearer(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_snapshot_is_signed_and_lists_bound_cards(
    client: FlaskClient, city: City, rider: Rider, session: Session
) -> None:
    token = city.terminal.token(client, f.NOW)
    body = client.get("/api/v1/terminals/snapshot", headers=f.bearer(token)).get_json()
    key = Ed25519PublicKey.from_public_bytes(b64url_decode(body["public_key"]))
    key.verify(b64url_decode(body["signature"]), canonical_json(body["snapshot"]))  # raises if tampered
    [binding] = body["snapshot"]["bindings"]
    assert binding["balance"] == 24
    assert binding["given_name"] == "花子"
    assert body["snapshot"]["programs"][0]["subsidy"]["formula"] == "percent_capped"
    assert body["snapshot"]["trust_anchors"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert client.get("/api/v1/terminals/snapshot-key").get_json()["public_key"] == body["public_key"]


def test_offline_ride_is_applied_at_the_time_it_happened(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    boarded = f.NOW - timedelta(hours=2)
    result = sync(
        client,
        city.terminal,
        [
            board_record(city.terminal, rider.card, 1, boarded),
            fare_record(city.terminal, 2, 1, 1840, boarded + timedelta(minutes=20)),
        ],
    )
    assert [r["status"] for r in result["results"]] == ["accepted", "accepted"]
    assert result["gaps"] == []
    ride = session.scalar(select(Ride))
    assert ride is not None
    assert ride.offline is True
    assert ride.boarded_at == boarded
    assert (ride.meter_fare, ride.subsidy_amount) == (1840, 920)
    assert ledger_sum(session, rider.entitlement.id) == 23


def test_resending_the_same_records_changes_nothing(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    records = [board_record(city.terminal, rider.card, 1, f.NOW - timedelta(hours=1))]
    first = sync(client, city.terminal, records)
    again = sync(client, city.terminal, records)
    assert first["results"][0]["status"] == "accepted"
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["ride_id"] == first["results"][0]["ride_id"]
    assert session.scalar(select(func.count()).select_from(Ride)) == 1


def test_exhausted_entitlement_used_offline_on_two_cars_is_one_conflict_for_finance(
    client: FlaskClient, session: Session, city: City, card_factory: Any, verifier: Any
) -> None:
    person = f.resident(session, city.mun)
    ent = f.entitlement(session, person, city.program, balance=1)
    card = card_factory("two-cars")
    f.bind_card(session, verifier, person, card, city.counter.id)
    second_car = f.enrolled_terminal(session, city.mun, f.vehicle(session, f.operator(session, city.mun)))
    finance = f.staff_user(session, city.mun, StaffRole.FINANCE, username="review-keiri")
    session.commit()

    first = sync(client, city.terminal, [board_record(city.terminal, card, 1, f.NOW - timedelta(hours=3))])
    second = sync(client, second_car, [board_record(second_car, card, 1, f.NOW - timedelta(hours=2))])

    assert first["results"][0]["status"] == "accepted"
    assert second["results"][0]["status"] == "conflict"
    assert second["results"][0]["code"] == "entitlement.exhausted"
    assert second["results"][0]["title"]  # plain words for the driver
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == ent.id)) == 0
    assert session.scalar(select(func.count()).select_from(Ride)) == 2  # the ride happened; it is kept
    review = client.get(
        "/api/v1/rides/under-review", headers=f.bearer(f.staff_token(client, finance.username))
    )
    [item] = review.get_json()
    assert (item["kind"], item["code"], item["ride_id"]) == (
        "conflict",
        "entitlement.exhausted",
        second["results"][0]["ride_id"],
    )


def test_tampered_record_is_rejected_but_kept(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    record = board_record(city.terminal, rider.card, 1, f.NOW - timedelta(hours=1))
    record["recorded_at"] = (f.NOW - timedelta(days=40)).isoformat()  # changed after signing
    result = sync(client, city.terminal, [record])
    assert result["results"][0]["status"] == "rejected"
    assert session.scalar(select(func.count()).select_from(Ride)) == 0
    kept = session.scalar(select(TerminalRecord))
    assert kept is not None
    assert kept.payload["recorded_at"] == record["recorded_at"]


def test_missing_sequence_numbers_are_reported_as_gaps(client: FlaskClient, city: City, rider: Rider) -> None:
    at = f.NOW - timedelta(hours=1)
    result = sync(
        client,
        city.terminal,
        [board_record(city.terminal, rider.card, 1, at), fare_record(city.terminal, 3, 1, 900, at)],
    )
    assert result["gaps"] == [2]
    assert result["last_sequence"] == 3


def test_more_offline_rides_than_allowed_in_a_day_are_flagged(
    client: FlaskClient, city: City, rider: Rider
) -> None:
    at = f.NOW - timedelta(hours=5)
    records = [board_record(city.terminal, rider.card, n, at + timedelta(hours=n)) for n in (1, 2, 3)]
    statuses = [(r["status"], r["code"]) for r in sync(client, city.terminal, records)["results"]]
    assert statuses == [("accepted", None), ("accepted", None), ("conflict", "limit.offline_per_day")]


def test_malformed_sync_request_is_a_problem(client: FlaskClient, city: City) -> None:
    token = city.terminal.token(client, f.NOW)
    r = client.post(
        "/api/v1/terminals/sync",
        json={"records": [{"kind": "board", "sequence": "x"}]},
        headers=f.bearer(token),
    )
    assert r.status_code == 422
    assert r.get_json()["code"] == "validation"


def test_driver_signs_in_and_out_of_a_shift(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    from tests.api.conftest import board

    f.driver(session, city.operator_id, "D01", "運転 一郎")
    session.commit()
    headers = f.bearer(city.terminal.token(client, f.NOW))
    started = client.post("/api/v1/terminals/shifts", json={"driver_code": "D01"}, headers=headers)
    assert started.status_code == 201
    assert started.get_json()["driver_name"] == "運転 一郎"
    assert board(client, city, rider.card, key="shift-ride").status_code == 201
    ended = client.post(f"/api/v1/terminals/shifts/{started.get_json()['shift_id']}/end", headers=headers)
    assert ended.get_json()["rides"] == 1
    unknown = client.post("/api/v1/terminals/shifts", json={"driver_code": "NOPE"}, headers=headers)
    assert unknown.status_code == 404


def test_a_shift_left_open_is_ended_by_the_next_one_and_both_changes_are_audited(
    client: FlaskClient, session: Session, city: City, clock: FixedClock
) -> None:
    f.driver(session, city.operator_id, "D01", "運転 一郎")
    f.driver(session, city.operator_id, "D02", "運転 二郎")
    session.commit()
    headers = f.bearer(city.terminal.token(client, clock.now()))
    first = client.post("/api/v1/terminals/shifts", json={"driver_code": "D01"}, headers=headers).get_json()
    clock.advance(timedelta(hours=4))
    headers = f.bearer(city.terminal.token(client, clock.now()))
    second = client.post("/api/v1/terminals/shifts", json={"driver_code": "D02"}, headers=headers).get_json()
    entries = [
        (e.action, e.entity_id, e.actor, e.at)
        for e in session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "driver_shift").order_by(AuditEntry.id)
        )
    ]
    who = f"terminal:{city.terminal.terminal_id}"
    assert entries == [
        ("shift.started", str(first["shift_id"]), who, f.NOW),
        ("shift.ended", str(first["shift_id"]), who, f.NOW + timedelta(hours=4)),
        ("shift.started", str(second["shift_id"]), who, f.NOW + timedelta(hours=4)),
    ]
