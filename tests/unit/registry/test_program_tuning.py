"""The demo city's three programs must come out at the sizes the city plans for (±15 % in total)."""

from __future__ import annotations

from datetime import date

import pytest

from auth_mock.registry import PopulationGenerator, Registry, RegistryPerson, demo_program_for

REFERENCE = date(2026, 4, 1)


def age(person: RegistryPerson) -> int:
    b = person.birth_date
    return REFERENCE.year - b.year - ((REFERENCE.month, REFERENCE.day) < (b.month, b.day))


def program_counts(people: list[RegistryPerson]) -> dict[str, int]:
    """The three mutually exclusive programs, written out here independently of the module."""
    counts = {"elderly": 0, "disability": 0, "bus_abolished": 0}
    for p in people:
        if p.status != "resident":
            continue
        if age(p) >= 75 and p.car_licence in ("none", "returned"):
            counts["elderly"] += 1
        elif any(
            (c.kind == "physical" and c.grade in ("1", "2"))
            or (c.kind == "intellectual" and c.grade == "A")
            or (c.kind == "mental" and c.grade == "1")
            for c in p.disability_certificates
        ):
            counts["disability"] += 1
        elif p.district_code in ("03", "05") and age(p) >= 65:
            counts["bus_abolished"] += 1
    return counts


def test_default_city_has_about_1200_eligible_residents(city: Registry) -> None:
    counts = program_counts(list(city.iter_people()))
    assert 1020 <= sum(counts.values()) <= 1380, counts
    assert 680 <= counts["elderly"] <= 920, counts
    assert 190 <= counts["disability"] <= 310, counts
    assert 110 <= counts["bus_abolished"] <= 190, counts


def test_eligible_candidates_agree_with_the_program_rules(city: Registry) -> None:
    counts = program_counts(list(city.iter_people()))
    candidates = city.eligible_candidates(5000)
    assert len(candidates) == sum(counts.values())
    assert {demo_program_for(p) for p in candidates} == {"elderly", "disability", "bus_abolished"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_stay_within_fifteen_percent_of_1200(seed: int) -> None:
    people = PopulationGenerator(municipality_code="062120", seed=seed).generate(14000)
    counts = program_counts(people)
    assert 1020 <= sum(counts.values()) <= 1380, counts
