"""The hand-made pieces of the boarding hot path give what the generic ones would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from voucher_api.api.identity.routes import challenge_body
from voucher_api.api.rides.schemas import RideSchema, ride_body
from voucher_api.services.errors import Unauthorized
from voucher_api.services.identity import issue_challenge
from voucher_api.services.rides import RideView
from voucher_api.services.tokens import AccessTokenReader, Principal, issue_access_token

NOW = datetime(2026, 10, 15, 1, 0, 0, 123456, tzinfo=UTC)
SECRET = "s" * 48
TERMINAL = Principal("terminal", 7, 1, frozenset({"terminal"}), operator_id=2, vehicle_id=3)


@pytest.mark.parametrize(
    "view",
    [
        RideView(7, "boarded", "花子", "80代", "高齢者おもいやりタクシー", "ride", 47, 1, NOW),
        RideView(7, "completed", "花子", "80代", "市の助成", "yen", 9000, 1000, NOW, 1800, 900, 900, True),
    ],
)
def test_the_ride_answer_is_what_ride_schema_dumps(view: RideView) -> None:
    issued = issue_challenge(
        b"k" * 32, purpose="board", context="terminal:7", now=NOW, ttl=timedelta(minutes=10)
    )
    for challenge in (None, issued):
        dumped = RideSchema().dump(
            {**view.as_dict(), "next_challenge": None if challenge is None else challenge_body(challenge)}
        )
        assert ride_body(view, challenge) == dumped


def test_a_remembered_token_still_expires() -> None:
    token = issue_access_token(TERMINAL, secret=SECRET, now=NOW, ttl=timedelta(minutes=15))
    reader = AccessTokenReader(SECRET)
    assert reader.read(token, now=NOW) == TERMINAL
    assert reader.read(token, now=NOW + timedelta(minutes=14)) == TERMINAL
    with pytest.raises(Unauthorized):
        reader.read(token, now=NOW + timedelta(minutes=15))


def test_a_token_signed_with_another_secret_is_refused_every_time() -> None:
    token = issue_access_token(TERMINAL, secret="o" * 48, now=NOW, ttl=timedelta(minutes=15))
    reader = AccessTokenReader(SECRET)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            reader.read(token, now=NOW)


def test_a_full_reader_forgets_and_checks_again() -> None:
    reader = AccessTokenReader(SECRET, capacity=2)
    tokens = [
        issue_access_token(TERMINAL, secret=SECRET, now=NOW + timedelta(seconds=i), ttl=timedelta(minutes=15))
        for i in range(5)
    ]
    for token in tokens + tokens:
        assert reader.read(token, now=NOW + timedelta(seconds=10)) == TERMINAL
    assert len(reader._verified) <= 2


def test_a_token_issued_by_a_server_whose_clock_runs_ahead_is_accepted() -> None:
    # Issued an hour past this machine's real clock: only the injected clock may judge the times.
    ahead = datetime.now(UTC) + timedelta(hours=1)
    token = issue_access_token(TERMINAL, secret=SECRET, now=ahead, ttl=timedelta(hours=2))
    assert AccessTokenReader(SECRET).read(token, now=ahead - timedelta(minutes=1)) == TERMINAL
