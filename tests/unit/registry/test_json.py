from __future__ import annotations

import json
from datetime import date

import pytest

from auth_mock.registry import (
    DisabilityCertificate,
    Registry,
    RegistryChange,
    RegistryPerson,
    change_from_json,
    change_to_json,
    person_from_json,
    person_to_json,
)


def person(**overrides: object) -> RegistryPerson:
    fields: dict[str, object] = {
        "registry_id": "062120-0000042",
        "municipality_code": "062120",
        "household_id": "062120-H000017",
        "family_name": "押切",
        "given_name": "ハル",
        "family_name_kana": "オシキリ",
        "given_name_kana": "ハル",
        "sex": "female",
        "birth_date": date(1936, 2, 29),
        "address": "山形県尾花沢市大字延沢123番地の4",
        "district_code": "05",
        "car_licence": "returned",
        "licence_returned_on": date(2019, 7, 1),
        "disability_certificates": (DisabilityCertificate("physical", "2"),),
        "status": "resident",
        "status_since": None,
    }
    fields.update(overrides)
    return RegistryPerson(**fields)  # type: ignore[arg-type]


def test_person_json_uses_field_names_and_iso_dates() -> None:
    data = person_to_json(person())
    assert data["birth_date"] == "1936-02-29"
    assert data["licence_returned_on"] == "2019-07-01"
    assert data["status_since"] is None
    assert data["disability_certificates"] == [{"kind": "physical", "grade": "2"}]
    assert set(data) == set(RegistryPerson.__dataclass_fields__)


def test_person_survives_a_json_round_trip() -> None:
    original = person()
    assert person_from_json(json.loads(json.dumps(person_to_json(original)))) == original


def test_change_survives_a_json_round_trip() -> None:
    change = RegistryChange(
        seq=7,
        kind="died",
        registry_id="062120-0000042",
        effective_on=date(2026, 5, 1),
        person=person(status="deceased", status_since=date(2026, 5, 1)),
    )
    assert change_from_json(json.loads(json.dumps(change_to_json(change)))) == change


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("birth_date", "1936/02/29", "isoformat"),
        ("sex", "other", "sex"),
        ("registry_id", "123456789012", "registry_id"),
        ("disability_certificates", [{"kind": "physical", "grade": "9"}], "等級"),
        ("status", None, "status"),
    ],
)
def test_malformed_person_json_is_refused(key: str, value: object, message: str) -> None:
    data = person_to_json(person())
    data[key] = value
    with pytest.raises(ValueError, match=message):
        person_from_json(data)


def test_age_counts_completed_years_and_leap_day_birthdays() -> None:
    p = person()
    assert p.age_on(date(2026, 2, 28)) == 89
    assert p.age_on(date(2026, 3, 1)) == 90
    assert p.age_on(date(2028, 2, 29)) == 92


def test_every_stored_record_round_trips_through_json(town: Registry) -> None:
    for p in town.iter_people():
        assert person_from_json(person_to_json(p)) == p
