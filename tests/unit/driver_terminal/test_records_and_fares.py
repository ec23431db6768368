"""What the terminal signs and computes offline is exactly what the API expects and computes: the same
canonical JSON, the same message for the card, the same fare formulas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from driver_terminal import fares
from driver_terminal.keys import TerminalKey
from driver_terminal.records import (
    b64url_decode,
    board_record,
    canonical_json,
    fare_record,
    offline_board_message,
    void_record,
)
from voucher_api.services import offline as api_offline
from voucher_api.services import program_rules

AT = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)
CARD = {"certificate": "Y2VydA==", "chain": ["Y2E="], "nonce": "ab" * 32, "signature": "c2ln"}


def test_records_are_signed_over_the_canonical_json_the_api_checks() -> None:
    key = TerminalKey(Ed25519PrivateKey.generate())
    made = [
        board_record(
            key, sequence=1, idempotency_key="k1", recorded_at=AT, card=CARD, driver_code="D01", trip_ref=None
        ),
        fare_record(key, sequence=2, idempotency_key="k2", recorded_at=AT, board_sequence=1, meter_fare=1840),
        void_record(key, sequence=3, idempotency_key="k3", recorded_at=AT, board_sequence=1, reason="取消"),
    ]
    for record in made:
        unsigned = {k: v for k, v in record.items() if k != "record_signature"}
        assert canonical_json(unsigned) == api_offline.canonical_json(unsigned)
        key.private_key.public_key().verify(
            b64url_decode(record["record_signature"]), canonical_json(unsigned)
        )


def test_the_card_signs_the_message_the_api_rebuilds() -> None:
    nonce = bytes(range(32))
    assert offline_board_message(nonce, 7, 42) == api_offline.offline_board_message(nonce, 7, 42)


def test_recorded_at_must_be_timezone_aware() -> None:
    key = TerminalKey(Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="timezone"):
        fare_record(
            key,
            sequence=1,
            idempotency_key="k",
            recorded_at=datetime(2026, 10, 15),  # noqa: DTZ001  # naive on purpose
            board_sequence=1,
            meter_fare=0,
        )


SUBSIDIES: list[tuple[dict[str, Any], str]] = [
    ({"formula": "ticket", "ticket_value": 500, "max_tickets_per_ride": 2}, "ticket"),
    (
        {"formula": "ticket", "ticket_value": 680, "max_tickets_per_ride": 3, "shared_cap_per_person": 500},
        "ticket",
    ),
    ({"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000}, "ride"),
    ({"formula": "percent_capped", "percent": 30, "cap_per_ride": 800, "shared_cap_per_person": 500}, "yen"),
    ({"formula": "fixed_copay", "copay": 500}, "ride"),
    ({"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000}, "ride"),
    ({"formula": "fixed_copay", "copay": 300, "cap_per_ride": 1500}, "yen"),
]


@given(
    rule=st.sampled_from(SUBSIDIES),
    balance=st.integers(0, 50_000),
    fare=st.integers(0, 30_000),
    shared=st.booleans(),
)
def test_the_provisional_split_is_the_apis_split(
    rule: tuple[dict[str, Any], str], balance: int, fare: int, shared: bool
) -> None:
    subsidy, unit = rule
    held = fares.units_to_hold(subsidy, unit, balance)
    assert held == program_rules.units_to_hold(subsidy, unit, balance)
    mine = fares.split_fare(subsidy, unit, held, fare, shared=shared)
    theirs = program_rules.split_fare(subsidy, unit, held, fare, shared=shared)
    assert (mine.units_used, mine.subsidy, mine.rider_share) == (
        theirs.units_used,
        theirs.subsidy,
        theirs.rider_share,
    )


@given(fare=st.integers(0, 100_000), riders=st.integers(1, 6))
def test_a_shared_fare_divides_into_whole_yen_that_add_up_to_the_meter(fare: int, riders: int) -> None:
    shares = fares.share_of_shared_fare(fare, riders)
    assert sum(shares) == fare
    assert max(shares) - min(shares) <= 1


def test_a_shared_fare_needs_a_rider() -> None:
    with pytest.raises(ValueError, match="rider"):
        fares.share_of_shared_fare(1000, 0)
