from __future__ import annotations

import statistics
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from auth_mock.registry import Registry, change_to_json

START = date(2026, 4, 1)
END = date(2026, 4, 30)


@pytest.fixture
def village(tmp_path: Path) -> Registry:
    return Registry.generate(tmp_path / "village.sqlite3", size=3000, seed=21)


def test_simulation_records_the_requested_number_of_changes_in_date_order(village: Registry) -> None:
    with village:
        changes = village.simulate_changes(count=120, seed=1, start=START, end=END)
        assert len(changes) == 120
        assert village.changes_since(0, limit=5000) == changes
        dates = [c.effective_on for c in changes]
        assert dates == sorted(dates)
        assert dates[0] >= START
        assert dates[-1] <= END
        assert [c.seq for c in changes] == sorted(c.seq for c in changes)


def test_simulated_churn_mixes_deaths_moves_and_licence_returns(village: Registry) -> None:
    with village:
        changes = village.simulate_changes(count=200, seed=2, start=START, end=date(2026, 9, 30))
    kinds = Counter(c.kind for c in changes)
    assert {"died", "moved_out", "moved_in", "moved_within", "licence_returned"} <= set(kinds)
    assert kinds["died"] >= kinds["name_changed"]


def test_deaths_fall_mostly_among_the_old(village: Registry) -> None:
    with village:
        changes = village.simulate_changes(count=300, seed=3, start=START, end=END)
    ages = [c.person.age_on(c.effective_on) for c in changes if c.kind == "died"]
    assert statistics.median(ages) >= 75


def test_simulated_changes_leave_consistent_records(village: Registry) -> None:
    with village:
        changes = village.simulate_changes(count=200, seed=4, start=START, end=END)
        for change in changes:
            person = change.person
            if change.kind == "died":
                assert person.status == "deceased"
            elif change.kind == "moved_out":
                assert person.status == "moved_out"
            elif change.kind == "licence_returned":
                assert person.car_licence == "returned"
                assert person.licence_returned_on == change.effective_on
            elif change.kind == "moved_in":
                assert person.status == "resident"
                assert person.status_since == change.effective_on
        last = {c.registry_id: c.person for c in changes}
        for registry_id, person in last.items():
            assert village.get(registry_id) == person


def test_same_state_and_seed_give_the_same_changes(tmp_path: Path) -> None:
    feeds = []
    for name in ("a", "b"):
        with Registry.generate(tmp_path / f"{name}.sqlite3", size=800, seed=9) as registry:
            changes = registry.simulate_changes(count=60, seed=5, start=START, end=END)
            feeds.append([change_to_json(c) for c in changes])
    assert feeds[0] == feeds[1]


def test_bad_simulation_arguments_are_refused(village: Registry) -> None:
    with village:
        with pytest.raises(ValueError, match="終了日"):
            village.simulate_changes(count=1, seed=1, start=END, end=START)
        with pytest.raises(ValueError, match="件数"):
            village.simulate_changes(count=-1, seed=1, start=START, end=END)
        assert village.simulate_changes(count=0, seed=1, start=START, end=END) == []
