"""After real, committed flows, no individual number and no card secret is in the database or the logs."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests import factories as f
from tests.conftest import CARD_SECRETS, LOG_TAP, RecordingTaskSender
from tests.privacy import SUITE_SECRETS, individual_numbers_in, scan_database, secrets_in
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import StaffRole


@pytest.fixture
def committed_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'privacy.sqlite3'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_flows_leave_no_individual_number_or_card_secret(
    committed_engine: Engine, settings: Settings, verifier: Any, card_factory: Any, clock: FixedClock
) -> None:
    factory = make_session_factory(committed_engine)
    with factory() as s:
        mun = f.municipality(s)
        f.staff_user(s, mun, StaffRole.COUNTER, username="privacy-counter")
        prog = f.program(s, mun, code="elderly")
        person = f.resident(s, mun, given_name="花子privacy", birth_date=date(1945, 6, 1))
        device = f.enrolled_terminal(s, mun, f.vehicle(s, f.operator(s, mun)))
        s.commit()
        program_id, resident_id = prog.id, person.id
    app = create_app(
        settings, session_factory=factory, clock=clock, verifier=verifier, task_sender=RecordingTaskSender()
    )
    client = app.test_client()
    card = card_factory("privacy")
    headers = f.bearer(f.staff_token(client, "privacy-counter"))
    lines_before = len(LOG_TAP.lines)

    # Enrol by the card's signature certificate (PIN and password both used), apply, ride, void.
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "enrol"}, headers=headers).get_json()
    message = base64.b64decode(challenge["message"])
    reader = f.card_reader(card)
    enrolled = client.post(
        "/api/v1/enrolments",
        json={
            "card": f.card_proof(card, message=message, nonce=challenge["nonce"]),
            "signature_certificate": base64.b64encode(
                reader.read_signature_certificate(f.CARD_PASSWORD)
            ).decode(),
            "signature_chain": [base64.b64encode(reader.read_signature_ca_certificate()).decode()],
            "signature": base64.b64encode(reader.sign_with_signature_key(message, f.CARD_PASSWORD)).decode(),
        },
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.get_json()
    applied = client.post(
        "/api/v1/applications",
        json={"resident_id": resident_id, "program_id": program_id, "channel": "counter"},
        headers={**headers, "Idempotency-Key": "privacy-app"},
    )
    assert applied.get_json()["application"]["status"] == "approved"
    token = device.token(client, clock.now())
    board = client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    proof = f.card_proof(card, message=base64.b64decode(board["message"]), nonce=board["nonce"])
    ride = client.post(
        "/api/v1/rides",
        json={"sequence": 1, "card": proof},
        headers=f.bearer(token, **{"Idempotency-Key": "p1"}),
    ).get_json()
    client.post(f"/api/v1/rides/{ride['ride_id']}/fare", json={"meter_fare": 2480}, headers=f.bearer(token))
    client.post(f"/api/v1/rides/{ride['ride_id']}/void", json={"reason": "取り消し"}, headers=f.bearer(token))

    with committed_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rides")).scalar() == 1  # the flows really committed
    assert scan_database(committed_engine, SUITE_SECRETS) == []
    new_lines = LOG_TAP.lines[lines_before:]
    assert new_lines, "the API wrote no log lines, so the guard would prove nothing"
    for line in new_lines:
        assert individual_numbers_in(line) == []
        assert secrets_in(line, CARD_SECRETS) == []
        assert SUITE_SECRETS.find(line) == []


def test_the_guard_finds_a_planted_number(committed_engine: Engine) -> None:
    with committed_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO municipalities"
                " (code, name, name_kana, prefecture, contact, remitter, created_at) "
                "VALUES ('999999', '番号市', 'バンゴウシ', '県', '123456789018', '{}', '2026-01-01 00:00:00')"
            )
        )
    findings = scan_database(committed_engine, CARD_SECRETS)
    assert len(findings) == 1
    assert "123456789018" in findings[0]
