from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voucher_api.services.errors import Refused
from voucher_api.services.program_rules import split_fare, units_to_hold, validate_rules

TICKET = {"formula": "ticket", "ticket_value": 680, "max_tickets_per_ride": 2}
MAEBASHI = {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000, "shared_cap_per_person": 500}
INA = {"formula": "fixed_copay", "copay": 500, "cap_per_ride": None}


def test_ticket_formula_uses_enough_tickets_and_gives_no_change() -> None:
    split = split_fare(TICKET, "ticket", held=2, fare=1500)
    assert (split.units_used, split.subsidy, split.rider_share) == (2, 1360, 140)
    small = split_fare(TICKET, "ticket", held=2, fare=600)
    assert (small.units_used, small.subsidy, small.rider_share) == (1, 600, 0)


def test_percent_capped_pays_half_up_to_the_cap() -> None:
    assert split_fare(MAEBASHI, "ride", held=1, fare=1500).subsidy == 750
    assert split_fare(MAEBASHI, "ride", held=1, fare=3001).subsidy == 1000
    assert split_fare(MAEBASHI, "ride", held=1, fare=1501).rider_share == 751


def test_shared_ride_caps_each_person() -> None:
    assert split_fare(MAEBASHI, "ride", held=1, fare=3000, shared=True).subsidy == 500


def test_fixed_copay_rider_pays_the_copay_or_the_whole_small_fare() -> None:
    assert split_fare(INA, "ride", held=1, fare=2300).rider_share == 500
    assert split_fare(INA, "ride", held=1, fare=400).rider_share == 400


def test_yen_budget_never_pays_more_than_was_held() -> None:
    split = split_fare(MAEBASHI, "yen", held=300, fare=5000)
    assert (split.subsidy, split.units_used) == (300, 300)


def test_hold_never_exceeds_balance() -> None:
    assert units_to_hold(TICKET, "ticket", balance=1) == 1
    assert units_to_hold(TICKET, "ticket", balance=10) == 2
    assert units_to_hold(MAEBASHI, "ride", balance=0) == 0


@given(
    subsidy=st.sampled_from([TICKET, MAEBASHI, INA]),
    fare=st.integers(min_value=0, max_value=1_000_000),
    held=st.integers(min_value=1, max_value=5),
    shared=st.booleans(),
)
def test_subsidy_and_rider_share_always_add_up_to_the_fare(
    subsidy: dict[str, Any], fare: int, held: int, shared: bool
) -> None:
    unit = "ticket" if subsidy["formula"] == "ticket" else "ride"
    split = split_fare(subsidy, unit, held, fare, shared=shared)
    assert split.subsidy >= 0
    assert split.rider_share >= 0
    assert split.subsidy + split.rider_share == fare
    assert split.units_used <= held


def test_rules_missing_formula_fields_are_refused_with_field_errors() -> None:
    with pytest.raises(Refused) as exc:
        validate_rules(
            {"eligibility": [], "subsidy": {"formula": "ticket"}, "grant": {"unit": "ticket", "amount": 48}}
        )
    assert exc.value.code == "program.invalid_rules"
    assert "subsidy" in exc.value.params["errors"]


def test_unknown_predicate_type_is_refused() -> None:
    with pytest.raises(Refused) as exc:
        validate_rules(
            {
                "eligibility": [{"type": "favourite_colour", "years": 3}],
                "subsidy": INA,
                "grant": {"unit": "ride", "amount": 10},
            }
        )
    assert exc.value.code == "program.invalid_rules"
    assert "eligibility" in exc.value.params["errors"]
