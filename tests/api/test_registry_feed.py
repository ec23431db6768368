"""The API follows the registry's change feed and reacts: death, moving out, licence return."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from auth_mock.registry import Registry, RegistryPerson, person_to_json
from auth_mock.registry_http import create_registry_app
from tests import factories as f
from voucher_api.models import (
    AuditEntry,
    BindingStatus,
    CardBinding,
    Entitlement,
    EntitlementStatus,
    Municipality,
    Resident,
)
from voucher_api.services import residents
from voucher_api.services.residents import HttpRegistryClient, RegistryPersonSchema, follow_changes


@pytest.fixture(scope="module")
def registry_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite3"
    Registry.generate(path, size=400, seed=7).close()
    return path


@pytest.fixture
def registry(registry_path: Path, tmp_path: Path) -> Any:
    copy = tmp_path / "registry.sqlite3"
    copy.write_bytes(registry_path.read_bytes())  # each test gets its own feed
    reg = Registry.open(copy)
    yield reg
    reg.close()


@pytest.fixture
def city(session: Session, registry: Any) -> Municipality:
    mun = f.municipality(session)
    for person in registry.iter_people():
        residents.upsert_resident(session, mun, RegistryPersonSchema().load(person_to_json(person)), f.NOW)
    session.flush()
    return mun


def client_for(registry: Any) -> HttpRegistryClient:
    return HttpRegistryClient(
        "http://registry", httpx.Client(transport=httpx.WSGITransport(app=create_registry_app(registry)))
    )


def resident_for(session: Session, person: RegistryPerson) -> Resident:
    found = session.scalar(select(Resident).where(Resident.registry_id == person.registry_id))
    assert found is not None
    return found


def elderly(registry: Any) -> RegistryPerson:
    person: RegistryPerson = next(
        p for p in registry.iter_people() if p.status == "resident" and p.age_on(date(2026, 4, 1)) >= 80
    )
    return person


def test_death_ends_entitlements_and_card_bindings(
    session: Session, city: Municipality, registry: Any, card_factory: Any, verifier: Any
) -> None:
    person = elderly(registry)
    resident = resident_for(session, person)
    ent = f.entitlement(session, resident, f.program(session, city))
    f.bind_card(session, verifier, resident, card_factory("feed-death"), f.staff_user(session, city).id)
    registry.record_change("died", person.registry_id, effective_on=date(2026, 10, 10))

    applied = follow_changes(session, client_for(registry), municipality_code=city.code, now=f.NOW)

    assert [a.kind for a in applied] == ["died"]
    session.refresh(ent)
    assert ent.status is EntitlementStatus.ENDED
    assert (
        session.scalar(select(CardBinding.status).where(CardBinding.resident_id == resident.id))
        is BindingStatus.ENDED
    )


def test_moving_out_ends_the_entitlement_at_the_end_of_that_month(
    session: Session, city: Municipality, registry: Any
) -> None:
    person = elderly(registry)
    ent = f.entitlement(session, resident_for(session, person), f.program(session, city))
    registry.record_change("moved_out", person.registry_id, effective_on=date(2026, 10, 12))

    follow_changes(session, client_for(registry), municipality_code=city.code, now=f.NOW)

    session.refresh(ent)
    assert ent.valid_to == date(2026, 10, 31)
    assert ent.status is EntitlementStatus.ACTIVE  # rides until the month ends


def test_licence_return_flags_a_resident_who_may_now_be_eligible(
    session: Session, city: Municipality, registry: Any
) -> None:
    person = next(
        p
        for p in registry.iter_people()
        if p.status == "resident" and p.car_licence == "held" and p.age_on(date(2026, 4, 1)) >= 76
    )
    f.program(session, city, code="elderly")
    registry.record_change("licence_returned", person.registry_id, effective_on=date(2026, 10, 1))

    [applied] = follow_changes(session, client_for(registry), municipality_code=city.code, now=f.NOW)

    assert applied.reactions == ("may_be_eligible:elderly",)
    flagged = session.scalar(select(AuditEntry).where(AuditEntry.action == "resident.may_be_eligible"))
    assert flagged is not None
    assert flagged.details == {"programs": ["elderly"]}


def test_following_twice_applies_each_change_once(
    session: Session, city: Municipality, registry: Any
) -> None:
    registry.simulate_changes(count=12, seed=3, start=date(2026, 10, 1), end=date(2026, 10, 14))
    client = client_for(registry)
    first = follow_changes(session, client, municipality_code=city.code, now=f.NOW)
    again = follow_changes(session, client, municipality_code=city.code, now=f.NOW + timedelta(minutes=5))
    assert len(first) == 12
    assert again == []


class BrokenFeed:
    def changes_since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return [
            {"seq": seq + 1, "kind": "died", "registry_id": "x", "effective_on": "not a date", "person": {}}
        ]


def test_a_malformed_feed_entry_stops_the_run_and_writes_nothing(
    session: Session, city: Municipality
) -> None:
    assert follow_changes(session, BrokenFeed(), municipality_code=city.code, now=f.NOW) == []
    assert residents.last_applied_seq(session, city.id) == 0
    assert session.scalar(select(Entitlement.id)) is None
