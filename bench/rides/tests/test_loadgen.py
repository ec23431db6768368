from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from sqlalchemy import select

from bench.rides.loadgen import (
    ApiClientSpec,
    ApiRider,
    FloorClientSpec,
    PhasePlan,
    split_clients,
)
from bench.rides.tests.conftest import BenchCity
from voucher_api.app import create_app
from voucher_api.config import Settings
from voucher_api.db import make_session_factory
from voucher_api.models import Entitlement, Ride, RideStatus
from voucher_api.services.identity import CardVerifier


class NoBroker:
    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        raise AssertionError("a ride sends no task")

    def ping(self) -> bool:
        return True


def test_plan_refuses_any_host_but_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        PhasePlan("http://example.org:8000", (FloorClientSpec(1),), warmup_seconds=0, seconds=1, max_rides=1)


def test_plan_needs_a_client() -> None:
    with pytest.raises(ValueError, match="client"):
        PhasePlan("http://127.0.0.1:8000", (), warmup_seconds=0, seconds=1, max_rides=1)


def test_ride_budget_is_shared_out_between_clients() -> None:
    plan = PhasePlan("http://127.0.0.1:8000", tuple(FloorClientSpec(i) for i in range(3)), 0, 1, max_rides=10)
    assert plan.rides_per_client == 4


def test_clients_are_dealt_round_robin_to_processes() -> None:
    clients = [FloorClientSpec(i) for i in range(5)]

    groups = split_clients(clients, 2)

    assert [[c.entitlement_id for c in g] for g in groups] == [[0, 2, 4], [1, 3]]  # type: ignore[union-attr]


def test_no_more_processes_than_clients() -> None:
    assert len(split_clients([FloorClientSpec(1)], 4)) == 1


def rider(bench_city: BenchCity, app: Flask | None = None, *, terminal: int = 0, first: int = 1) -> ApiRider:
    seeded = bench_city.city.terminals[terminal]
    spec = ApiClientSpec(seeded.terminal_id, seeded.private_key, bench_city.cards[0].credentials)
    transport = httpx.WSGITransport(app=app) if app is not None else None
    return ApiRider("http://127.0.0.1", spec, first, transport=transport)


def test_terminal_assertion_is_short_lived_eddsa_for_the_terminal(bench_city: BenchCity) -> None:
    seeded = bench_city.city.terminals[0]
    public = Ed25519PrivateKey.from_private_bytes(seeded.private_key).public_key()

    claims = jwt.decode(
        rider(bench_city).assertion(), public, algorithms=["EdDSA"], audience="voucher-api/terminal-token"
    )

    assert claims["iss"] == claims["sub"] == f"terminal:{seeded.terminal_id}"
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_signature_made_with_the_card_files_key_verifies_against_the_card_certificate(
    bench_city: BenchCity,
) -> None:
    card = bench_city.cards[0]
    message = b"challenge bytes"

    signature = rider(bench_city).card_key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    public = x509.load_der_x509_certificate(card.certificate_der).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def api_app(bench_city: BenchCity, tmp_path: Any) -> Flask:
    settings = Settings.from_env(
        {
            "VOUCHER_VAR_DIR": str(tmp_path),
            "JWT_SECRET": "bench-test-" + "x" * 40,
            "DATABASE_URL": bench_city.url,
        }
    )
    root_pem = bench_city.issuer.root_certificate_pem_path.read_bytes()
    return create_app(
        settings,
        session_factory=make_session_factory(bench_city.engine),
        verifier=CardVerifier.from_pem(root_pem),
        task_sender=NoBroker(),
    )


def test_a_seeded_rider_boards_and_pays_through_the_api(bench_city: BenchCity, tmp_path: Any) -> None:
    driver = rider(bench_city, api_app(bench_city, tmp_path), terminal=0, first=1)
    entitlement_id = bench_city.city.entitlement_ids[0]
    with bench_city.engine.connect() as conn:
        before = conn.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id))

    sample = driver.ride()

    assert len(sample.steps) == 3
    with bench_city.engine.connect() as conn:
        after = conn.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id))
        ride = conn.execute(
            select(Ride.status, Ride.subsidy_amount, Ride.rider_share).order_by(Ride.id.desc()).limit(1)
        ).one()
    assert before is not None
    assert after == before - 1
    # ¥1,300 fare on a 50 % program capped at ¥1,000: the city pays 650, the rider 650.
    assert (ride.status, ride.subsidy_amount, ride.rider_share) == (RideStatus.COMPLETED, 650, 650)


def test_a_later_round_continues_the_terminals_sequence(bench_city: BenchCity, tmp_path: Any) -> None:
    app = api_app(bench_city, tmp_path)
    rider(bench_city, app, terminal=1, first=1).ride()

    rider(bench_city, app, terminal=1, first=2).ride()

    terminal_id = bench_city.city.terminals[1].terminal_id
    with bench_city.engine.connect() as conn:
        sequences = conn.scalars(
            select(Ride.terminal_sequence).where(Ride.terminal_id == terminal_id).order_by(Ride.id)
        ).all()
    assert list(sequences) == [1, 2]
