from __future__ import annotations

import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest

from auth_mock.registry import (
    DisabilityCertificate,
    InvalidChange,
    PersonNotFound,
    Registry,
)
from tests.unit.registry.factories import (
    driver_over_70,
    first_person,
    household_member_with_others,
    newcomer_fields,
    resident,
)

DAY = date(2026, 5, 10)


def test_a_death_is_applied_to_the_person_and_appended_to_the_feed(town: Registry) -> None:
    person = resident(town)
    change = town.record_change("died", person.registry_id, effective_on=DAY)
    assert change.kind == "died"
    assert change.person.status == "deceased"
    assert change.person.status_since == DAY
    assert town.get(person.registry_id) == change.person
    assert town.changes_since(0) == [change]


def test_feed_sequence_numbers_strictly_increase_and_page_by_cursor(town: Registry) -> None:
    people = list(town.iter_people())[:5]
    recorded = [town.record_change("died", p.registry_id, effective_on=DAY) for p in people]
    seqs = [c.seq for c in recorded]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5
    assert town.changes_since(seqs[1], limit=2) == recorded[2:4]
    assert town.changes_since(seqs[-1]) == []


def test_the_feed_keeps_each_record_as_it_was_after_its_change(town: Registry) -> None:
    person = driver_over_70(town)
    returned = town.record_change("licence_returned", person.registry_id, effective_on=DAY)
    town.record_change("died", person.registry_id, effective_on=date(2026, 6, 1))
    first, second = town.changes_since(0)
    assert first == returned
    assert first.person.status == "resident"
    assert first.person.car_licence == "returned"
    assert first.person.licence_returned_on == DAY
    assert second.person.status == "deceased"


def test_a_dead_person_cannot_die_or_move_again(town: Registry) -> None:
    person = resident(town)
    town.record_change("died", person.registry_id, effective_on=DAY)
    with pytest.raises(InvalidChange, match="死亡"):
        town.record_change("died", person.registry_id, effective_on=DAY)
    with pytest.raises(InvalidChange):
        town.record_change(
            "moved_within",
            person.registry_id,
            effective_on=DAY,
            address="山形県尾花沢市大字延沢1番地",
            district_code="05",
        )
    assert len(town.changes_since(0)) == 1


def test_a_licence_can_be_returned_only_when_held(town: Registry) -> None:
    child = first_person(town, lambda p: p.car_licence == "none")
    with pytest.raises(InvalidChange, match="免許"):
        town.record_change("licence_returned", child.registry_id, effective_on=DAY)


def test_a_move_within_the_city_to_a_new_home_starts_a_new_household(town: Registry) -> None:
    person = household_member_with_others(town)
    change = town.record_change(
        "moved_within",
        person.registry_id,
        effective_on=DAY,
        address="山形県尾花沢市大字玉野1234番地",
        district_code="03",
    )
    assert change.person.address == "山形県尾花沢市大字玉野1234番地"
    assert change.person.district_code == "03"
    assert change.person.household_id != person.household_id
    assert change.person.status == "resident"


def test_moving_in_with_a_household_takes_its_address(town: Registry) -> None:
    host = household_member_with_others(town)
    mover = first_person(town, lambda p: p.household_id != host.household_id)
    change = town.record_change(
        "moved_within", mover.registry_id, effective_on=DAY, household_id=host.household_id
    )
    assert change.person.household_id == host.household_id
    assert change.person.address == host.address
    assert change.person.district_code == host.district_code


def test_a_move_needs_an_address_and_a_known_district(town: Registry) -> None:
    person = resident(town)
    with pytest.raises(InvalidChange, match="住所"):
        town.record_change("moved_within", person.registry_id, effective_on=DAY)
    with pytest.raises(InvalidChange, match="地区"):
        town.record_change(
            "moved_within",
            person.registry_id,
            effective_on=DAY,
            address="山形県尾花沢市大字玉野1番地",
            district_code="09",
        )


def test_someone_who_moved_out_can_move_back_in(town: Registry) -> None:
    person = resident(town)
    town.record_change(
        "moved_out", person.registry_id, effective_on=DAY, address="宮城県仙台市青葉区本町一丁目1番1号"
    )
    assert town.get(person.registry_id).status == "moved_out"  # type: ignore[union-attr]
    back = town.record_change(
        "moved_in",
        person.registry_id,
        effective_on=date(2026, 9, 1),
        address="山形県尾花沢市新町一丁目2番3号",
        district_code="01",
    )
    assert back.person.status == "resident"
    assert back.person.status_since == date(2026, 9, 1)


def test_a_resident_cannot_move_in_again(town: Registry) -> None:
    person = resident(town)
    with pytest.raises(InvalidChange, match="転入"):
        town.record_change(
            "moved_in",
            person.registry_id,
            effective_on=DAY,
            address="山形県尾花沢市新町一丁目2番3号",
            district_code="01",
        )


def test_a_new_person_moves_in_under_a_fresh_registry_id(town: Registry) -> None:
    registry_id = town.next_registry_id()
    assert town.get(registry_id) is None
    change = town.record_change(
        "moved_in",
        registry_id,
        effective_on=DAY,
        **newcomer_fields(
            given_name_kana="しょうた",
            disability_certificates=[{"kind": "physical", "grade": "2"}],
        ),
    )
    person = change.person
    assert person.registry_id == registry_id
    assert person.given_name_kana == "ショウタ"
    assert person.car_licence == "none"
    assert person.disability_certificates == (DisabilityCertificate("physical", "2"),)
    assert person.status_since == DAY
    assert town.get(registry_id) == person
    assert town.next_registry_id() > registry_id


def test_a_new_person_needs_all_their_facts(town: Registry) -> None:
    fields = newcomer_fields()
    del fields["birth_date"]
    with pytest.raises(InvalidChange, match="birth_date"):
        town.record_change("moved_in", town.next_registry_id(), effective_on=DAY, **fields)
    with pytest.raises(InvalidChange, match="形式"):
        town.record_change("moved_in", "123456789012", effective_on=DAY, **newcomer_fields())


def test_a_change_for_an_unknown_person_is_refused(town: Registry) -> None:
    with pytest.raises(PersonNotFound):
        town.record_change("died", "062120-9999999", effective_on=DAY)


def test_a_name_change_updates_kanji_and_kana_together(town: Registry) -> None:
    person = first_person(town, lambda p: p.sex == "female" and p.family_name != "星川")
    change = town.record_change(
        "name_changed", person.registry_id, effective_on=DAY, family_name="星川", family_name_kana="ほしかわ"
    )
    assert (change.person.family_name, change.person.family_name_kana) == ("星川", "ホシカワ")
    assert change.person.given_name == person.given_name
    assert town.search(kana="ホシカワ" + person.given_name_kana, birth_date=person.birth_date) == [
        change.person
    ]
    with pytest.raises(InvalidChange, match="一緒"):
        town.record_change("name_changed", person.registry_id, effective_on=DAY, family_name="星")
    with pytest.raises(InvalidChange, match="カタカナ"):
        town.record_change(
            "name_changed", person.registry_id, effective_on=DAY, family_name="星", family_name_kana="Hoshi"
        )


@pytest.mark.parametrize("value", ["123456789012", "１２３４５６７８９０１２", "番号 012345678901 です"])
def test_text_holding_twelve_digits_is_never_recorded(town: Registry, value: str) -> None:
    person = resident(town)
    with pytest.raises(InvalidChange, match="12桁"):
        town.record_change("moved_out", person.registry_id, effective_on=DAY, address=value)
    assert town.changes_since(0) == []
    assert town.get(person.registry_id) == person


def test_unknown_kinds_fields_and_dates_are_refused(town: Registry) -> None:
    person = resident(town)
    with pytest.raises(InvalidChange, match="種類"):
        town.record_change("born", person.registry_id, effective_on=DAY)
    with pytest.raises(InvalidChange, match="指定できない"):
        town.record_change("died", person.registry_id, effective_on=DAY, cause="old age")
    with pytest.raises(InvalidChange, match="生年月日"):
        town.record_change("died", person.registry_id, effective_on=date(1800, 1, 1))
    assert town.changes_since(0) == []


def test_a_change_dated_before_the_last_status_change_is_refused(town: Registry) -> None:
    person = resident(town)
    town.record_change("moved_out", person.registry_id, effective_on=DAY)
    with pytest.raises(InvalidChange, match="前回"):
        town.record_change(
            "moved_in",
            person.registry_id,
            effective_on=date(2026, 1, 1),
            address="山形県尾花沢市新町一丁目2番3号",
            district_code="01",
        )


def test_two_connections_writing_at_once_get_distinct_increasing_sequence_numbers(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    Registry.generate(path, size=200, seed=5).close()
    with Registry.open(path) as probe:
        ids = [p.registry_id for p in probe.iter_people()]
    halves = [ids[:100], ids[100:]]
    results: list[list[int]] = [[], []]

    def writer(n: int) -> None:
        with Registry.open(path) as registry:
            for registry_id in halves[n]:
                results[n].append(registry.record_change("died", registry_id, effective_on=DAY).seq)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_seqs = results[0] + results[1]
    assert sorted(all_seqs) == list(range(1, 201))
    assert results[0] == sorted(results[0])
    with Registry.open(path) as registry:
        assert [c.seq for c in registry.changes_since(0, limit=5000)] == list(range(1, 201))
        assert all(p.status == "deceased" for p in registry.iter_people())


WRITER = """
import sys
from datetime import date
from pathlib import Path
from auth_mock.registry import Registry
with Registry.open(Path(sys.argv[1])) as registry:
    for registry_id in sys.argv[2:]:
        registry.record_change("licence_returned", registry_id, effective_on=date(2026, 5, 10))
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    with Registry.generate(path, size=600, seed=8) as registry:
        drivers = [p.registry_id for p in registry.iter_people() if p.car_licence == "held"][:80]
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), *drivers[n::2]]) for n in range(2)
    ]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    with Registry.open(path) as registry:
        feed = registry.changes_since(0, limit=5000)
        assert [c.seq for c in feed] == list(range(1, 81))
        assert sorted(c.registry_id for c in feed) == sorted(drivers)
        assert all(registry.get(i).car_licence == "returned" for i in drivers)  # type: ignore[union-attr]
