from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from auth_mock.names import FAMILY_NAMES, GIVEN_NAME_GENERATIONS
from auth_mock.registry import (
    DISTRICTS,
    REFERENCE_DATE,
    Registry,
    RegistryError,
    RegistryPerson,
    change_to_json,
    person_to_json,
)

KATAKANA = re.compile(r"^[\u30a1-\u30f6\u30fc]+$")
CHOME_ADDRESS = re.compile(r"^山形県尾花沢市\w+町[一二三四五六七八九十]丁目\d{1,2}番\d{1,2}号$")
OAZA_ADDRESS = re.compile(r"^山形県尾花沢市大字\w+?\d{1,4}番地(の\d)?$")


def dump(registry: Registry) -> str:
    return json.dumps([person_to_json(p) for p in registry.iter_people()], ensure_ascii=False)


def test_same_seed_and_size_give_the_same_people_byte_for_byte(tmp_path: Path) -> None:
    with (
        Registry.generate(tmp_path / "a.sqlite3", size=1500, seed=11) as a,
        Registry.generate(tmp_path / "b.sqlite3", size=1500, seed=11) as b,
    ):
        assert dump(a).encode() == dump(b).encode()


def test_another_seed_gives_other_people(tmp_path: Path) -> None:
    with (
        Registry.generate(tmp_path / "a.sqlite3", size=300, seed=1) as a,
        Registry.generate(tmp_path / "b.sqlite3", size=300, seed=2) as b,
    ):
        assert dump(a) != dump(b)


def test_generation_makes_exactly_the_requested_number_of_living_residents(city: Registry) -> None:
    people = list(city.iter_people())
    assert len(people) == 14000
    assert {p.status for p in people} == {"resident"}
    assert {p.municipality_code for p in people} == {"062120"}


def test_registry_ids_are_opaque_keys_never_twelve_digits(city: Registry) -> None:
    ids = [p.registry_id for p in city.iter_people()]
    assert all(re.fullmatch(r"062120-\d{7}", i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_no_record_holds_twelve_digits_in_a_row(city: Registry) -> None:
    assert re.search(r"\d{12}", dump(city)) is None


def test_about_forty_percent_of_residents_are_65_or_older(city: Registry) -> None:
    ages = [p.age_on(REFERENCE_DATE) for p in city.iter_people()]
    share = sum(a >= 65 for a in ages) / len(ages)
    assert 0.36 <= share <= 0.44
    assert min(ages) == 0
    assert max(ages) >= 100


def test_central_district_is_the_biggest_and_every_district_is_populated(city: Registry) -> None:
    counts = Counter(p.district_code for p in city.iter_people())
    assert set(counts) == {code for code, _, _ in DISTRICTS}
    assert counts.most_common(1)[0][0] == "01"


def test_household_members_share_one_address_and_district(city: Registry) -> None:
    households: defaultdict[str, list[RegistryPerson]] = defaultdict(list)
    for person in city.iter_people():
        households[person.household_id].append(person)
    for members in households.values():
        assert len({(m.address, m.district_code) for m in members}) == 1
    addresses = [members[0].address for members in households.values()]
    assert len(set(addresses)) == len(addresses)


def test_households_include_old_people_alone_couples_and_families(city: Registry) -> None:
    households: defaultdict[str, list[RegistryPerson]] = defaultdict(list)
    for person in city.iter_people():
        households[person.household_id].append(person)
    alone_old = [m for m in households.values() if len(m) == 1 and m[0].age_on(REFERENCE_DATE) >= 65]
    couples = [m for m in households.values() if len(m) == 2 and {p.sex for p in m} == {"male", "female"}]
    with_children = [m for m in households.values() if any(p.age_on(REFERENCE_DATE) < 15 for p in m)]
    assert len(alone_old) > 500
    assert len(couples) > 1000
    assert len(with_children) > 300
    assert 2.0 <= 14000 / len(households) <= 3.0


def test_names_come_with_their_katakana_readings(city: Registry) -> None:
    family_readings = {(k, r) for k, r, _ in FAMILY_NAMES}
    given_readings = {pair for g in GIVEN_NAME_GENERATIONS for pair in (*g.male, *g.female)}
    for person in city.iter_people():
        assert (person.family_name, person.family_name_kana) in family_readings
        assert (person.given_name, person.given_name_kana) in given_readings
        assert KATAKANA.match(person.family_name_kana)
        assert KATAKANA.match(person.given_name_kana)


def test_older_people_get_older_style_given_names(city: Registry) -> None:
    oldest = GIVEN_NAME_GENERATIONS[0]
    youngest = GIVEN_NAME_GENERATIONS[-1]
    for person in city.iter_people():
        names = oldest.female if person.sex == "female" else oldest.male
        if person.birth_date.year <= oldest.born_until:
            assert (person.given_name, person.given_name_kana) in names
        young_names = youngest.female if person.sex == "female" else youngest.male
        if person.birth_date.year > GIVEN_NAME_GENERATIONS[-2].born_until:
            assert (person.given_name, person.given_name_kana) in young_names


def test_addresses_follow_the_city_address_forms(city: Registry) -> None:
    forms: Counter[str] = Counter()
    for person in city.iter_people():
        if CHOME_ADDRESS.match(person.address):
            forms["chome"] += 1
        else:
            assert OAZA_ADDRESS.match(person.address), person.address
            forms["oaza"] += 1
    assert forms["chome"] > 0
    assert forms["oaza"] > 0


def test_children_hold_no_licence_and_returned_licences_have_a_past_date(city: Registry) -> None:
    for person in city.iter_people():
        if person.age_on(REFERENCE_DATE) < 18:
            assert person.car_licence == "none"
        if person.car_licence == "returned":
            assert person.licence_returned_on is not None
            assert person.licence_returned_on < REFERENCE_DATE
        else:
            assert person.licence_returned_on is None


def test_disability_certificates_have_valid_kinds_and_grades(city: Registry) -> None:
    grades = {"physical": set("123456"), "intellectual": {"A", "B"}, "mental": set("123")}
    kinds: Counter[str] = Counter()
    for person in city.iter_people():
        for certificate in person.disability_certificates:
            assert certificate.grade in grades[certificate.kind]
            kinds[certificate.kind] += 1
    assert set(kinds) == set(grades)
    assert kinds["physical"] > kinds["intellectual"]


def test_generating_the_same_municipality_twice_into_one_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    Registry.generate(path, size=50).close()
    with pytest.raises(RegistryError):
        Registry.generate(path, size=50)
    with Registry.open(path) as registry:
        assert sum(1 for _ in registry.iter_people()) == 50


def test_a_second_municipality_can_share_the_file_and_is_listed_apart(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    Registry.generate(path, size=60).close()
    with Registry.generate(path, municipality_code="062031", size=40) as registry:
        assert registry.municipality_codes() == ["062031", "062120"]
        assert len(list(registry.iter_people(municipality_code="062031"))) == 40
        assert len(list(registry.iter_people(municipality_code="062120"))) == 60
        assert all(
            p.registry_id.startswith("062031-") for p in registry.iter_people(municipality_code="062031")
        )


def test_bad_municipality_code_or_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="6桁"):
        Registry.generate(tmp_path / "a.sqlite3", municipality_code="62120")
    with pytest.raises(ValueError, match="人口"):
        Registry.generate(tmp_path / "b.sqlite3", size=0)


def test_open_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Registry.open(tmp_path / "missing.sqlite3")
    assert not (tmp_path / "missing.sqlite3").exists()


def test_open_of_a_file_that_is_not_a_registry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(RegistryError):
        Registry.open(path)


def test_reopened_registry_sees_the_same_people(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    with Registry.generate(path, size=120, seed=3) as generated:
        before = dump(generated)
    with Registry.open(path) as reopened:
        assert dump(reopened) == before
        first = next(reopened.iter_people())
        assert reopened.get(first.registry_id) == first
        assert reopened.get("062120-9999999") is None


def test_eligible_candidates_are_living_residents_in_stable_registry_order(city: Registry) -> None:
    candidates = city.eligible_candidates(50)
    assert len(candidates) == 50
    assert [p.registry_id for p in candidates] == sorted(p.registry_id for p in candidates)
    assert candidates == city.eligible_candidates(50)
    assert all(p.status == "resident" for p in candidates)


def test_feed_is_empty_after_generation(city: Registry) -> None:
    assert city.changes_since(0) == []
    assert [change_to_json(c) for c in city.changes_since(0)] == []
