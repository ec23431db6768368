"""A change in the resident registry reaches the API through the issuer's OCSP: after a move the
signature certificate is refused (card.revoked) while the user certificate still boards; after a death
the card is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from auth_mock.issuer import CardHolder
from auth_mock.issuer_http import create_issuer_app
from auth_mock.registry import REFERENCE_DATE, Registry, RegistryPerson, person_to_json
from auth_mock.registry_revocations import RegistryFollower
from tests import factories as f
from tests.api.conftest import City, board
from tests.api.test_identity import enrol
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.models import Resident
from voucher_api.services import residents
from voucher_api.services.identity import CardVerifier
from voucher_api.services.residents import RegistryPersonSchema
from voucher_api.services.revocation import OcspCrlChecker

DAY = datetime(2026, 10, 10, tzinfo=UTC).date()


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite3"
    Registry.generate(path, size=60, seed=21).close()
    return path


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> Iterator[Registry]:
    copy = tmp_path / "registry.sqlite3"
    copy.write_bytes(registry_template.read_bytes())
    with Registry.open(copy) as reg:
        yield reg


@pytest.fixture
def person(registry: Registry) -> RegistryPerson:
    return next(
        p for p in registry.iter_people() if p.status == "resident" and p.age_on(REFERENCE_DATE) >= 30
    )


@pytest.fixture
def card(issuer: Any, person: RegistryPerson, tmp_path: Path) -> Path:
    out = tmp_path / "resident.card"
    issuer.issue_card(
        CardHolder.from_person(person),
        pin=f.CARD_PIN,
        password=f.CARD_PASSWORD,
        out=out,
        now=datetime(2026, 4, 1, tzinfo=UTC),
    )
    return out


@pytest.fixture
def resident(session: Session, city: City, person: RegistryPerson) -> Resident:
    """The person as the API last synced them from the registry (before the change below)."""
    record = residents.upsert_resident(
        session, city.mun, RegistryPersonSchema().load(person_to_json(person)), f.NOW
    )
    f.entitlement(session, record, city.program)
    session.commit()
    return record


@pytest.fixture
def app(
    issuer: Any,
    registry: Registry,
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> Flask:
    """The API checking revocation over OCSP against the mock server's issuer, which follows the registry."""
    follower = RegistryFollower(issuer, registry, clock=clock.now)
    issuer_app = create_issuer_app(issuer, clock=clock.now, refresh=follower.follow)
    checker = OcspCrlChecker(
        httpx.Client(transport=httpx.WSGITransport(app=issuer_app)), cache_for=timedelta(minutes=5)
    )
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes(), checker)
    return create_app(
        settings, session_factory=session_factory, clock=clock, verifier=verifier, task_sender=None
    )


def test_after_a_move_enrolment_by_the_signature_certificate_is_refused_as_revoked(
    app: Flask, registry: Registry, person: RegistryPerson, resident: Resident, card: Path
) -> None:
    registry.record_change(
        "moved_within",
        person.registry_id,
        effective_on=DAY,
        address="山形県尾花沢市大字宮沢8番地",
        district_code="02",
    )
    r = enrol(app.test_client(), card)
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.revoked"


def test_after_a_move_the_user_certificate_still_boards(
    app: Flask,
    session: Session,
    city: City,
    registry: Registry,
    person: RegistryPerson,
    resident: Resident,
    card: Path,
    verifier: Any,
) -> None:
    f.bind_card(session, verifier, resident, card, city.counter.id)
    session.commit()
    registry.record_change(
        "moved_within",
        person.registry_id,
        effective_on=DAY,
        address="山形県尾花沢市大字宮沢8番地",
        district_code="02",
    )
    r = board(app.test_client(), city, card, key="moved")
    assert r.status_code == 201, r.get_json()


def test_after_a_death_the_card_is_refused_as_revoked(
    app: Flask,
    session: Session,
    city: City,
    registry: Registry,
    person: RegistryPerson,
    resident: Resident,
    card: Path,
    verifier: Any,
) -> None:
    f.bind_card(session, verifier, resident, card, city.counter.id)
    session.commit()
    client = app.test_client()
    registry.record_change("died", person.registry_id, effective_on=DAY)
    r = board(client, city, card, key="after-death")
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "card.revoked"
