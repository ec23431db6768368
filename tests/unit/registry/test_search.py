from __future__ import annotations

import pytest

from auth_mock.registry import Registry, normalize_kana
from tests.unit.registry.factories import first_person


def test_hiragana_and_katakana_with_spaces_find_the_same_people(city: Registry) -> None:
    person = first_person(city, lambda p: p.family_name_kana == "サトウ")
    hiragana = "".join(chr(ord(ch) - 0x60) for ch in person.family_name_kana + person.given_name_kana)
    by_katakana = city.search(kana=f"{person.family_name_kana} {person.given_name_kana}", limit=200)
    by_hiragana = city.search(kana=hiragana[:3] + "\u3000" + hiragana[3:], limit=200)
    assert person in by_katakana
    assert by_katakana == by_hiragana


def test_half_width_katakana_is_accepted() -> None:
    assert normalize_kana("ｻﾄｳ ﾋﾛｼ") == "サトウヒロシ"
    assert normalize_kana("さとう\u3000ひろし") == "サトウヒロシ"


def test_search_matches_a_prefix_of_family_and_given_kana(city: Registry) -> None:
    found = city.search(kana="サトウヒ", limit=100)
    assert found
    assert all((p.family_name_kana + p.given_name_kana).startswith("サトウヒ") for p in found)


def test_birth_date_narrows_the_search_to_one_person(city: Registry) -> None:
    person = first_person(city, lambda p: p.family_name_kana == "スズキ")
    found = city.search(kana=person.family_name_kana + person.given_name_kana, birth_date=person.birth_date)
    assert person in found
    assert all(p.birth_date == person.birth_date for p in found)


def test_search_respects_the_limit_and_a_stable_order(city: Registry) -> None:
    found = city.search(kana="サ", limit=7)
    assert len(found) == 7
    keys = [(p.family_name_kana + p.given_name_kana, p.birth_date, p.registry_id) for p in found]
    assert keys == sorted(keys)


def test_unknown_kana_finds_nobody(city: Registry) -> None:
    assert city.search(kana="ヲヲヲ") == []
    assert city.search(kana="佐藤") == []
    assert city.search(kana="%") == []


def test_empty_kana_is_refused(city: Registry) -> None:
    with pytest.raises(ValueError, match="カナ"):
        city.search(kana=" \u3000 ")
    with pytest.raises(ValueError, match="件数"):
        city.search(kana="サ", limit=0)
