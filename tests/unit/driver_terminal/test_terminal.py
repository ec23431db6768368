"""The terminal's actions over a scripted API: numbering before sending, journalling every answer,
re-sending an unanswered boarding with the same number and key, enrolment."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from driver_terminal.card import WrongPin
from driver_terminal.client import ApiError, ApiUnreachable, RetryPolicy
from driver_terminal.keys import KEY_FILENAME, load_key
from driver_terminal.store import AlreadyEnrolled, JournalState, TerminalStore
from driver_terminal.terminal import BoardingUnanswered, NotEnrolled, Terminal, enrol_terminal
from tests.unit.driver_terminal.fakes import (
    API_URL,
    PIN,
    FakeApi,
    FakeCard,
    MovableClock,
    Reply,
    body_of,
    challenge_json,
    enrolment_json,
    problem,
    ride_json,
)


def enrol(data_dir: Path, api: FakeApi | None = None) -> None:
    api = api or FakeApi()
    api.on("POST /terminals/enrol", httpx.Response(201, json=enrolment_json(7)))
    enrol_terminal(data_dir, API_URL, "abcd-efgh-jklm", http=api.http(), clock=MovableClock())


def open_terminal(data_dir: Path, api: FakeApi) -> Terminal:
    return Terminal.open(
        data_dir, http=api.http(), clock=MovableClock(), sleep=lambda _s: None, retry=RetryPolicy(attempts=2)
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    enrol(tmp_path / "terminal")
    return tmp_path / "terminal"


def boarding_api(*ride_replies: Reply) -> FakeApi:
    api = FakeApi().on("POST /card-challenges", httpx.Response(201, json=challenge_json()))
    return api.on("POST /rides", *(ride_replies or (httpx.Response(201, json=ride_json()),)))


# -- enrolment --


def test_enrolment_sends_the_public_key_and_keeps_the_identity(tmp_path: Path) -> None:
    api = FakeApi()
    enrol(tmp_path, api)
    sent = body_of(api.sent("POST /terminals/enrol")[0])
    assert sent == {"enrolment_code": "ABCD-EFGH-JKLM", "public_key": load_key(tmp_path).public_key_b64()}
    with TerminalStore.open(tmp_path) as store:
        identity = store.identity()
    assert identity is not None
    assert (identity.terminal_id, identity.vehicle_id, identity.api_url) == (7, 3, API_URL)


def test_enrolled_terminal_is_not_enrolled_again(data_dir: Path) -> None:
    api = FakeApi()
    with pytest.raises(AlreadyEnrolled):
        enrol_terminal(data_dir, API_URL, "ABCD-EFGH-JKLM", http=api.http())
    assert api.requests == []


def test_enrolment_whose_answer_was_lost_reuses_the_same_key(tmp_path: Path) -> None:
    lost = FakeApi().on("POST /terminals/enrol", httpx.ReadTimeout("no answer"))
    with pytest.raises(ApiUnreachable):
        enrol_terminal(tmp_path, API_URL, "ABCD-EFGH-JKLM", http=lost.http())
    first_key = body_of(lost.requests[0])["public_key"]
    retry = FakeApi()
    enrol(tmp_path, retry)
    assert body_of(retry.requests[0])["public_key"] == first_key


def test_refused_enrolment_code_leaves_the_terminal_unenrolled(tmp_path: Path) -> None:
    api = FakeApi().on(
        "POST /terminals/enrol",
        problem(422, "terminal.enrolment_invalid", "登録コードが正しくないか、有効期限が切れています。"),
    )
    with pytest.raises(ApiError):
        enrol_terminal(tmp_path, API_URL, "WRONG-CODE", http=api.http())
    with pytest.raises(NotEnrolled):
        open_terminal(tmp_path, FakeApi())


def test_a_terminal_that_was_never_enrolled_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotEnrolled, match="enrol"):
        open_terminal(tmp_path / "empty", FakeApi())


def test_a_terminal_whose_key_is_gone_says_so(data_dir: Path) -> None:
    (data_dir / KEY_FILENAME).unlink()
    with pytest.raises(Exception, match="端末の鍵がありません"):
        open_terminal(data_dir, FakeApi())


# -- boarding --


def test_boarding_is_numbered_and_journalled_before_it_is_sent(data_dir: Path) -> None:
    seen_in_store: list[JournalState] = []

    def answer(request: httpx.Request) -> httpx.Response:
        with TerminalStore.open(data_dir) as onlooker:
            entry = onlooker.entry(request.headers["Idempotency-Key"])
        seen_in_store.append(entry.state)
        assert body_of(request)["sequence"] == entry.sequence
        return httpx.Response(201, json=ride_json())

    api = boarding_api(answer)
    with open_terminal(data_dir, api) as terminal:
        boarding = terminal.board(FakeCard(), pin=PIN)
    assert seen_in_store == [JournalState.SENDING]
    assert (boarding.entry.state, boarding.entry.ride_id, boarding.entry.request) == (
        JournalState.BOARDED,
        41,
        None,
    )


def test_card_signs_the_challenges_exact_bytes(data_dir: Path) -> None:
    card = FakeCard()
    with open_terminal(data_dir, boarding_api()) as terminal:
        terminal.board(card, pin=PIN)
    assert card.signed == [b"sign these bytes"]


def test_tap_boarding_sends_the_certificate_without_asking_for_a_challenge(data_dir: Path) -> None:
    api = boarding_api()
    with open_terminal(data_dir, api) as terminal:
        terminal.board(FakeCard(), pin=None)
    assert api.sent("POST /card-challenges") == []
    card = body_of(api.sent("POST /rides")[0])["card"]
    assert (card["nonce"], card["signature"]) == (None, None)


def test_driver_code_and_trip_reference_are_sent(data_dir: Path) -> None:
    api = boarding_api()
    with open_terminal(data_dir, api) as terminal:
        terminal.board(FakeCard(), pin=PIN, driver_code="D07", trip_ref="trip-1")
    sent = body_of(api.sent("POST /rides")[0])
    assert (sent["driver_code"], sent["trip_ref"]) == ("D07", "trip-1")


def test_card_that_says_no_spends_no_number(data_dir: Path) -> None:
    api = boarding_api()
    with open_terminal(data_dir, api) as terminal, pytest.raises(WrongPin):
        terminal.board(FakeCard(), pin="0000")
    with TerminalStore.open(data_dir) as store:
        assert (store.entries(), store.next_sequence()) == ([], 1)
    assert api.sent("POST /rides") == []


def test_refused_boarding_is_journalled_and_its_number_stays_used(data_dir: Path) -> None:
    exhausted = problem(422, "entitlement.exhausted", "今年度の利用回数(残高)を使い切っています。")
    api = boarding_api(exhausted, httpx.Response(201, json=ride_json()))
    with open_terminal(data_dir, api) as terminal:
        with pytest.raises(ApiError):
            terminal.board(FakeCard(), pin=PIN)
        accepted = terminal.board(FakeCard(), pin=PIN)
        refused = terminal.store.entries()[-1]
    assert (refused.sequence, refused.state, refused.request) == (1, JournalState.REFUSED, None)
    assert refused.answer is not None
    assert refused.answer["code"] == "entitlement.exhausted"
    assert accepted.entry.sequence == 2


def test_unanswered_boarding_is_kept_to_be_resent(data_dir: Path) -> None:
    api = boarding_api(httpx.ConnectError("network down"))
    with open_terminal(data_dir, api) as terminal, pytest.raises(BoardingUnanswered) as raised:
        terminal.board(FakeCard(), pin=PIN)
    with TerminalStore.open(data_dir) as store:
        unanswered = store.unanswered()
    assert [e.idempotency_key for e in unanswered] == [raised.value.entry.idempotency_key]
    assert unanswered[0].request is not None


def test_resent_boarding_keeps_its_number_and_key_and_gets_the_first_ride(data_dir: Path) -> None:
    down = boarding_api(httpx.ConnectError("network down"))
    with open_terminal(data_dir, down) as terminal, pytest.raises(BoardingUnanswered):
        terminal.board(FakeCard(), pin=PIN)
    first = down.sent("POST /rides")[0]
    back = FakeApi().on("POST /rides", httpx.Response(200, json=ride_json(replayed=True)))
    with open_terminal(data_dir, back) as terminal:  # after a restart
        (outcome,) = terminal.resend_unanswered()
    again = back.sent("POST /rides")[0]
    assert again.headers["Idempotency-Key"] == first.headers["Idempotency-Key"]
    assert body_of(again) == body_of(first)
    assert outcome.ride is not None
    assert outcome.ride.replayed is True
    assert outcome.entry.state is JournalState.BOARDED


def test_resent_boarding_the_server_never_saw_may_be_refused(data_dir: Path) -> None:
    down = boarding_api(httpx.ConnectError("down"))
    with open_terminal(data_dir, down) as terminal, pytest.raises(BoardingUnanswered):
        terminal.board(FakeCard(), pin=PIN)
    expired = problem(401, "challenge.expired", "カード確認の有効時間が過ぎました。")
    with open_terminal(data_dir, FakeApi().on("POST /rides", expired)) as terminal:
        (outcome,) = terminal.resend_unanswered()
        assert terminal.store.unanswered() == []
    assert outcome.refusal is not None
    assert outcome.refusal.code == "challenge.expired"
    assert outcome.entry.state is JournalState.REFUSED


def test_server_errors_on_every_attempt_leave_the_boarding_resendable(data_dir: Path) -> None:
    api = boarding_api(problem(503, "unavailable", "一時的に利用できません。"))
    with open_terminal(data_dir, api) as terminal, pytest.raises(BoardingUnanswered):
        terminal.board(FakeCard(), pin=PIN)
    assert len(api.sent("POST /rides")) == 2  # bounded
    with TerminalStore.open(data_dir) as store:
        assert len(store.unanswered()) == 1


def test_sequence_numbers_never_repeat_across_restarts(data_dir: Path) -> None:
    numbers = []
    for rider in range(3):
        api = boarding_api()
        with open_terminal(data_dir, api) as terminal:
            terminal.board(FakeCard(certificate=f"card-{rider}".encode()), pin=PIN)
        numbers.append(body_of(api.sent("POST /rides")[0])["sequence"])
    assert numbers == [1, 2, 3]


# -- after boarding --


def test_fare_and_void_are_followed_in_the_journal(data_dir: Path) -> None:
    api = boarding_api()
    api.on("POST /rides/41/fare", httpx.Response(200, json=ride_json(status="completed", meter_fare=1840)))
    api.on("POST /rides/41/void", httpx.Response(200, json=ride_json(status="voided", balance=24)))
    with open_terminal(data_dir, api) as terminal:
        terminal.board(FakeCard(), pin=PIN)
        terminal.set_fare(41, 1840)
        assert terminal.store.entries()[0].state is JournalState.COMPLETED
        terminal.void(41, "乗車取り消し")
        assert terminal.store.entries()[0].state is JournalState.VOIDED


def test_fare_outside_the_meters_range_is_refused_before_sending(data_dir: Path) -> None:
    api = FakeApi()
    with open_terminal(data_dir, api) as terminal, pytest.raises(ValueError, match="meter_fare"):
        terminal.set_fare(41, 1_000_001)
    assert api.requests == []
