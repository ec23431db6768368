"""Plain functions that pick people out of a generated registry for a test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from auth_mock.registry import REFERENCE_DATE, Registry, RegistryPerson


def first_person(registry: Registry, rule: Callable[[RegistryPerson], bool]) -> RegistryPerson:
    """The first person (registry_id order) matching ``rule``; fails the test if there is none."""
    for person in registry.iter_people():
        if rule(person):
            return person
    raise AssertionError("no generated person matches the rule")


def resident(registry: Registry) -> RegistryPerson:
    return first_person(registry, lambda p: p.status == "resident")


def driver_over_70(registry: Registry) -> RegistryPerson:
    return first_person(
        registry,
        lambda p: p.status == "resident" and p.car_licence == "held" and p.age_on(REFERENCE_DATE) >= 70,
    )


def household_member_with_others(registry: Registry) -> RegistryPerson:
    people = list(registry.iter_people())
    sizes: dict[str, int] = {}
    for person in people:
        sizes[person.household_id] = sizes.get(person.household_id, 0) + 1
    return next(p for p in people if sizes[p.household_id] > 1 and p.age_on(REFERENCE_DATE) >= 18)


def newcomer_fields(**overrides: object) -> dict[str, object]:
    """Fields for a brand-new person moving into the city."""
    fields: dict[str, object] = {
        "family_name": "大山",
        "given_name": "翔太",
        "family_name_kana": "オオヤマ",
        "given_name_kana": "ショウタ",
        "sex": "male",
        "birth_date": date(1995, 6, 1),
        "address": "山形県尾花沢市若葉町二丁目3番4号",
        "district_code": "01",
    }
    fields.update(overrides)
    return fields
