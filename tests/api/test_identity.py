"""The API's identity checks with real cryptography: every failure has its stable code."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from auth_mock.issuer import Issuer
from auth_mock.issuer_http import create_issuer_app
from tests import factories as f
from tests.api.conftest import City, board
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.models import AuditEntry, CardBinding, Resident
from voucher_api.services.identity import CardVerifier
from voucher_api.services.revocation import STALE_CRL_GRACE, OcspCrlChecker, RevocationUnknown


def holder_resident(session: Session, city: City, label: str, **overrides: Any) -> Resident:
    """The registry record the card factory's holder `label` describes."""
    person = f.resident(session, city.mun, given_name=f"花子{label}", birth_date=date(1945, 6, 1))
    for name, value in overrides.items():
        setattr(person, name, value)
    session.flush()
    return person


def counter(client: FlaskClient) -> dict[str, str]:
    return f.bearer(f.staff_token(client, "madoguchi"))


def enrol(client: FlaskClient, card: Path, *, password: str = f.CARD_PASSWORD) -> Any:
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "enrol"}, headers=headers).get_json()
    message = base64.b64decode(challenge["message"])
    reader = f.card_reader(card)
    body = {
        "card": f.card_proof(card, message=message, nonce=challenge["nonce"]),
        "signature_certificate": base64.b64encode(reader.read_signature_certificate(password)).decode(),
        "signature_chain": [base64.b64encode(reader.read_signature_ca_certificate()).decode()],
        "signature": base64.b64encode(reader.sign_with_signature_key(message, password)).decode(),
    }
    return client.post("/api/v1/enrolments", json=body, headers=headers)


def test_signature_certificate_finds_the_resident_and_binds_the_card(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    person = holder_resident(session, city, "enrol")
    session.commit()
    r = enrol(client, card_factory("enrol"))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["resident"]["id"] == person.id
    assert body["binding"]["method"] == "signature_certificate"
    assert body["facts_checked"] == ["name", "birth_date", "sex", "address"]


def test_address_mismatch_is_explained(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    holder_resident(session, city, "moved", address="山形県尾花沢市大字玉野1234番地")
    session.commit()
    r = enrol(client, card_factory("moved"))
    assert r.status_code == 422
    assert r.get_json()["code"] == "enrolment.facts_mismatch"
    assert r.get_json()["mismatched"] == ["address"]
    assert "住所" in r.get_json()["title"]


def test_card_of_someone_not_in_the_registry_is_not_found(
    client: FlaskClient, city: City, card_factory: Any
) -> None:
    r = enrol(client, card_factory("visitor"))
    assert r.status_code == 404
    assert r.get_json()["code"] == "resident.not_found"


def test_face_recognition_card_is_bound_on_staff_attestation_and_recorded(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    person = holder_resident(session, city, "face")
    session.commit()
    reader = f.card_reader(card_factory("face", kind="face_recognition"))
    r = client.post(
        "/api/v1/enrolments/attested",
        json={
            "resident_id": person.id,
            "certificate": base64.b64encode(reader.read_user_certificate()).decode(),
            "chain": [base64.b64encode(reader.read_user_ca_certificate()).decode()],
            "reason": "face_recognition_card",
        },
        headers=counter(client),
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["binding"]["method"] == "staff_attested"
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "card.attested"))
    assert entry is not None
    assert entry.actor == f"staff:{city.counter.id}"
    assert entry.details["reason"] == "face_recognition_card"


def test_reissued_card_replaces_the_old_binding_and_the_old_card_stops_working(
    client: FlaskClient, session: Session, city: City, card_factory: Any, verifier: Any
) -> None:
    person = f.resident(session, city.mun)
    f.entitlement(session, person, city.program)
    old_card, new_card = card_factory("lost"), card_factory("reissued")
    f.bind_card(session, verifier, person, old_card, city.counter.id)
    session.commit()
    headers = counter(client)
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "bind"}, headers=headers).get_json()
    proof = f.card_proof(new_card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    refused = client.post(
        "/api/v1/card-bindings", json={"resident_id": person.id, "card": proof}, headers=headers
    )
    assert refused.get_json()["code"] == "card.already_bound"
    challenge = client.post("/api/v1/card-challenges", json={"purpose": "bind"}, headers=headers).get_json()
    proof = f.card_proof(new_card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    rebound = client.post(
        "/api/v1/card-bindings",
        json={"resident_id": person.id, "card": proof, "replace_existing": True},
        headers=headers,
    )
    assert rebound.status_code == 201
    statuses = sorted(b.status.value for b in session.scalars(select(CardBinding)))
    assert statuses == ["active", "replaced"]
    assert board(client, city, old_card, key="old").get_json()["code"] == "card.not_bound"
    assert board(client, city, new_card, key="new").status_code == 201


def test_expired_card_is_refused(
    client: FlaskClient, session: Session, city: City, card_factory: Any
) -> None:
    r = board(client, city, card_factory("old", kind="expired"), key="expired")
    assert r.status_code == 422
    assert r.get_json()["code"] == "card.expired"


def test_card_from_an_unknown_issuer_is_refused(
    client: FlaskClient, city: City, tmp_path: Path, card_factory: Any
) -> None:
    from auth_mock.issuer import CardHolder

    rogue = Issuer.create(
        tmp_path / "rogue", base_url="http://127.0.0.1:9", now=datetime(2026, 4, 1, tzinfo=UTC)
    )
    holder = CardHolder(
        "偽", "造", "ギ", "ゾウ", "male", date(1950, 1, 1), "どこか", "062120", "062120-0000001"
    )
    rogue.issue_card(
        holder,
        pin=f.CARD_PIN,
        password=f.CARD_PASSWORD,
        out=tmp_path / "rogue.json",
        now=datetime(2026, 4, 1, tzinfo=UTC),
    )
    r = board(client, city, tmp_path / "rogue.json", key="rogue")
    assert r.status_code == 422
    assert r.get_json()["code"] == "card.unknown_issuer"


# --- revocation over HTTP (the issuer's OCSP and CRL served in-process: no network) -----------------


class Outage(httpx.BaseTransport):
    """An issuer whose OCSP responder is down while its CRL is still published."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/ocsp"):
            raise httpx.ConnectError("responder down", request=request)
        return self.inner.handle_request(request)


def revocation_app(
    issuer: Any, settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock, transport: Any
) -> Flask:
    checker = OcspCrlChecker(httpx.Client(transport=transport), cache_for=timedelta(minutes=5))
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes(), checker)
    return create_app(
        settings, session_factory=session_factory, clock=clock, verifier=verifier, task_sender=None
    )


@pytest.fixture
def revoked_rider(session: Session, city: City, issuer: Any, card_factory: Any, verifier: Any) -> Path:
    person = f.resident(session, city.mun)
    f.entitlement(session, person, city.program)
    card: Path = card_factory("revoked-later")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    [issued] = [c for c in issuer.list_cards() if Path(c.path) == card]
    issuer.revoke(issued.card_id, "loss", datetime(2026, 10, 1, tzinfo=UTC))
    return card


@pytest.mark.parametrize("ocsp_up", [True, False], ids=["ocsp", "crl-fallback"])
def test_revoked_card_is_refused(
    issuer: Any,
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    city: City,
    revoked_rider: Path,
    ocsp_up: bool,
) -> None:
    issuer_app = create_issuer_app(issuer, crl_lag=timedelta(hours=1), clock=clock.now)
    transport: httpx.BaseTransport = httpx.WSGITransport(app=issuer_app)
    if not ocsp_up:
        transport = Outage(transport)
    app = revocation_app(issuer, settings, session_factory, clock, transport)
    r = board(app.test_client(), city, revoked_rider, key="revoked")
    assert r.status_code == 422
    assert r.get_json()["code"] == "card.revoked"


def test_good_card_passes_the_ocsp_check(
    issuer: Any,
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    city: City,
    card_factory: Any,
    session: Session,
    verifier: Any,
) -> None:
    person = f.resident(session, city.mun)
    f.entitlement(session, person, city.program)
    card = card_factory("good")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    transport = httpx.WSGITransport(app=create_issuer_app(issuer, clock=clock.now))
    app = revocation_app(issuer, settings, session_factory, clock, transport)
    assert board(app.test_client(), city, card, key="good").status_code == 201


class Switch(httpx.BaseTransport):
    """The issuer behind a line that can be cut: `ocsp` and `crl` say which of the two still answer."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.ocsp = False
        self.crl = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        up = self.ocsp if request.url.path.startswith("/ocsp") else self.crl
        if not up:
            raise httpx.ConnectError("issuer out of reach", request=request)
        return self.inner.handle_request(request)


def test_a_stale_crl_is_relied_on_for_a_day_past_its_next_update_then_the_answer_is_unknown(
    issuer: Any, card_factory: Any, clock: FixedClock
) -> None:
    line = Switch(httpx.WSGITransport(app=create_issuer_app(issuer, clock=clock.now)))
    checker = OcspCrlChecker(httpx.Client(transport=line), cache_for=timedelta(minutes=5))
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes(), checker)
    reader = f.card_reader(card_factory("stale-crl"))
    leaf, chain = reader.read_user_certificate(), [reader.read_user_ca_certificate()]
    fetched = clock.now()
    verifier.verify_certificate(leaf, chain, fetched)  # OCSP down: the CRL is fetched and says good
    line.crl = False  # now neither answers
    next_update = fetched + timedelta(days=1)  # the mock issuer's CRLs are valid for a day
    verifier.verify_certificate(leaf, chain, next_update + timedelta(hours=23))  # within the grace
    with pytest.raises(RevocationUnknown):
        verifier.verify_certificate(leaf, chain, next_update + STALE_CRL_GRACE + timedelta(minutes=10))
    line.crl = True  # the issuer is back: a fresh CRL answers again
    verifier.verify_certificate(leaf, chain, next_update + STALE_CRL_GRACE + timedelta(minutes=20))
