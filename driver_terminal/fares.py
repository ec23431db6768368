"""The programs' fare arithmetic, mirrored on the terminal so that offline it can show a provisional amount.

These are the same formulas the API applies (DESIGN §4): `ticket`, `percent_capped`, `fixed_copay`, with the
per-person cap of a shared ride and the cap of a yen budget. The API's result is the one that counts; the
terminal's is shown as provisional until the ride is synced. A test keeps the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_YEN_HOLD = 10_000


@dataclass(frozen=True)
class FareSplit:
    """How a meter fare divides between the city (subsidy) and the rider, and the units it uses."""

    units_used: int
    subsidy: int
    rider_share: int


def units_to_hold(subsidy: Mapping[str, Any], unit: str, balance: int) -> int:
    """How many units a boarding reserves before the fare is known (never more than the balance)."""
    if unit == "ride":
        wanted = 1
    elif unit == "ticket":
        wanted = int(subsidy["max_tickets_per_ride"])
    else:
        wanted = int(subsidy.get("cap_per_ride") or subsidy.get("shared_cap_per_person") or DEFAULT_YEN_HOLD)
    return min(wanted, balance)


def split_fare(
    subsidy: Mapping[str, Any], unit: str, held: int, fare: int, *, shared: bool = False
) -> FareSplit:
    """Apply the program's formula to a meter fare in integer yen.

    Raises ValueError for a negative fare.
    """
    if fare < 0:
        raise ValueError("fare must not be negative")
    formula = subsidy["formula"]
    per_person = subsidy.get("shared_cap_per_person") if shared else None
    if fare == 0:
        return FareSplit(units_used=0 if unit != "ride" else 1, subsidy=0, rider_share=0)
    if formula == "ticket":
        value = int(subsidy["ticket_value"])
        tickets = min(held, math.ceil(fare / value))
        amount = min(tickets * value, fare)
        if per_person:
            amount = min(amount, int(per_person))
        return FareSplit(units_used=tickets, subsidy=amount, rider_share=fare - amount)
    if formula == "percent_capped":
        amount = fare * int(subsidy["percent"]) // 100
    else:  # fixed_copay
        amount = max(fare - int(subsidy["copay"]), 0)
    if subsidy.get("cap_per_ride"):
        amount = min(amount, int(subsidy["cap_per_ride"]))
    if per_person:
        amount = min(amount, int(per_person))
    if unit == "yen":
        amount = min(amount, held)
        return FareSplit(units_used=amount, subsidy=amount, rider_share=fare - amount)
    return FareSplit(units_used=1, subsidy=amount, rider_share=fare - amount)


def share_of_shared_fare(meter_fare: int, riders: int) -> list[int]:
    """Divide one car's meter fare among the entitled riders of a shared ride, in whole yen.

    The remainder goes to the first riders, one yen each, so the shares always add up to the meter.
    Raises ValueError for no riders or a negative fare.
    """
    if riders < 1 or meter_fare < 0:
        raise ValueError("a shared fare needs at least one rider and a fare of 0 yen or more")
    base, remainder = divmod(meter_fare, riders)
    return [base + (1 if index < remainder else 0) for index in range(riders)]
