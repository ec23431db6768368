"""The kiosk's page and JSON over a scripted API: Japanese first, one screen per step of a boarding, every
refusal in words for the passenger, pending shown apart from confirmed."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient

from driver_terminal.card import CardReader, open_virtual_card
from driver_terminal.kiosk.app import KioskContext, create_kiosk_app
from driver_terminal.kiosk.reader import VirtualCardSlot
from driver_terminal.snapshot import fingerprint
from driver_terminal.store import TerminalStore
from driver_terminal.terminal import enrol_terminal
from tests import factories as f
from tests.unit.driver_terminal.fakes import (
    API_URL,
    NOW,
    PIN,
    FakeApi,
    FakeCard,
    MovableClock,
    challenge_json,
    enrolment_json,
    problem,
    ride_json,
)
from tests.unit.driver_terminal.test_snapshot import payload, public_b64, signed


class Slot:
    """The reader: a card on it, or none."""

    def __init__(self, card: CardReader | None = None) -> None:
        self.on_reader = card

    def card(self) -> CardReader | None:
        return self.on_reader


def enrolled(data_dir: Path, snapshot_key: str | None = None) -> None:
    api = FakeApi().on(
        "POST /terminals/enrol",
        httpx.Response(201, json={**enrolment_json(7), "snapshot_public_key": snapshot_key}),
    )
    enrol_terminal(data_dir, API_URL, "ABCD-EFGH-JKLM", http=api.http(), clock=MovableClock())


def kiosk(
    data_dir: Path, api: FakeApi, slot: Any, clock: MovableClock | None = None
) -> tuple[FlaskClient, KioskContext]:
    context = KioskContext(
        data_dir=data_dir,
        api_url=API_URL,
        slot=slot,
        http=api.http(),
        clock=clock or MovableClock(),
        background=False,
        dev_reader=True,
    )
    return create_kiosk_app(context).test_client(), context


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    enrolled(tmp_path / "t")
    return tmp_path / "t"


def boarding_api(*replies: Any) -> FakeApi:
    api = FakeApi().on("POST /card-challenges", httpx.Response(201, json=challenge_json()))
    return api.on("POST /rides", *(replies or (httpx.Response(201, json=ride_json()),)))


# -- the page --


def test_page_is_japanese_first_and_loads_nothing_from_elsewhere(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, FakeApi(), Slot())
    page = client.get("/").get_data(as_text=True)
    assert '<html lang="ja">' in page
    assert "カードをかざしてください" in page
    assert "Please hold the card to the reader" in page  # the English switch needs no reload
    assert not re.search(r'(src|href)="(https?:)?//', page)
    script = client.get("/static/kiosk.js")
    assert script.status_code == 200
    script.close()
    assert "default-src 'self'" in client.get("/").headers["Content-Security-Policy"]


def test_page_in_english_when_asked(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, FakeApi(), Slot())
    assert '<html lang="en">' in client.get("/?lang=en").get_data(as_text=True)


def test_a_device_not_yet_enrolled_shows_the_set_up_screen_and_enrols_with_the_code(tmp_path: Path) -> None:
    api = FakeApi().on("POST /terminals/enrol", httpx.Response(201, json=enrolment_json(9)))
    client, _context = kiosk(tmp_path / "new", api, Slot())
    assert client.get("/api/state").get_json()["enrolled"] is False
    done = client.post("/api/enrol", json={"code": "abcd-efgh-jklm"}).get_json()
    assert done["message"] == "登録しました(端末番号 9)"
    assert client.get("/api/state").get_json()["terminal_id"] == 9


def test_a_wrong_enrolment_code_is_explained(tmp_path: Path) -> None:
    api = FakeApi().on(
        "POST /terminals/enrol",
        problem(422, "terminal.enrolment_invalid", "登録コードが正しくないか、有効期限が切れています。"),
    )
    client, _context = kiosk(tmp_path / "new", api, Slot())
    refused = client.post("/api/enrol", json={"code": "WRONG-CODE"})
    assert refused.get_json()["refusal"]["message"] == "登録コードが正しくないか、有効期限が切れています。"


# -- shifts --


def test_driver_signs_in_and_out(data_dir: Path) -> None:
    api = FakeApi()
    api.on(
        "POST /terminals/shifts",
        httpx.Response(
            201,
            json={"shift_id": 5, "driver_name": "運転 一郎", "started_at": NOW.isoformat(), "ended_at": None},
        ),
    )
    api.on(
        "POST /terminals/shifts/5/end",
        httpx.Response(
            200,
            json={
                "shift_id": 5,
                "driver_name": "運転 一郎",
                "started_at": NOW.isoformat(),
                "ended_at": NOW.isoformat(),
                "rides": 0,
            },
        ),
    )
    client, _context = kiosk(data_dir, api, Slot())
    assert (
        client.post("/api/shift/start", json={"driver_code": "d01"}).get_json()["driver_name"] == "運転 一郎"
    )
    state = client.get("/api/state").get_json()
    assert (state["shift"]["driver_name"], state["last_driver"]) == ("運転 一郎", "D01")
    ended = client.post("/api/shift/end").get_json()
    assert ended["summary"] == "この乗務の乗車: 0件"
    assert client.get("/api/state").get_json()["shift"] is None


def test_an_unknown_driver_code_is_explained(data_dir: Path) -> None:
    api = FakeApi().on("POST /terminals/shifts", problem(404, "not_found", "見つかりません。"))
    client, _context = kiosk(data_dir, api, Slot())
    refused = client.post("/api/shift/start", json={"driver_code": "X9"}).get_json()["refusal"]
    assert refused["message"].startswith("運転者コードが見つかりません")


# -- boarding online --


def test_boarding_asks_for_the_pin_when_the_program_may_need_it(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, FakeApi(), Slot(FakeCard()))
    assert client.post("/api/board/check").get_json() == {"pin_needed": True}


def test_no_card_on_the_reader_asks_to_hold_it_again(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, FakeApi(), Slot(None))
    refusal = client.post("/api/board", json={"pin": PIN}).get_json()["refusal"]
    assert refusal["message"] == "カードが離れたため確認できませんでした。もう一度カードをかざしてください。"


def test_boarding_shows_the_riders_name_age_band_and_balance_confirmed(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(), Slot(FakeCard()))
    result = client.post("/api/board", json={"pin": PIN}).get_json()
    assert result["outcome"] == "confirmed"
    ride = result["ride"]
    assert (ride["given_name"], ride["age_band"], ride["balance"], ride["confirmed"]) == (
        "花子",
        "80代",
        "23回",
        True,
    )
    assert [r["given_name"] for r in client.get("/api/state").get_json()["on_board"]] == ["花子"]


def test_wrong_pin_reports_tries_left_and_asks_again(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(), Slot(FakeCard()))
    refusal = client.post("/api/board", json={"pin": "0000"}).get_json()["refusal"]
    assert refusal == {
        "code": "pin.incorrect",
        "message": "暗証番号が違います。あと2回間違えるとロックされます。",
        "tries_left": 2,
        "retry_pin": True,
    }


def test_a_locked_pin_sends_the_rider_to_the_counter(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(), Slot(FakeCard(tries_left=0)))
    refusal = client.post("/api/board", json={"pin": PIN}).get_json()["refusal"]
    assert refusal["message"] == "暗証番号がロックされています。市役所の窓口で解除してください。"


def test_a_refusal_says_what_to_tell_the_passenger(data_dir: Path) -> None:
    exhausted = problem(
        422, "entitlement.exhausted", "今年度の利用回数(残高)を使い切っています。今回は通常料金になります。"
    )
    client, _context = kiosk(data_dir, boarding_api(exhausted), Slot(FakeCard()))
    refusal = client.post("/api/board", json={"pin": PIN}).get_json()["refusal"]
    assert refusal["message"] == "今年度の利用回数(残高)を使い切っています。今回は通常料金になります。"


def test_refusal_in_english_after_the_switch(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(), Slot(FakeCard()))
    refusal = client.post("/api/board?lang=en", json={"pin": "0000"}).get_json()["refusal"]
    assert refusal["message"] == "Wrong PIN. 2 more wrong tries will lock it."


def test_no_network_and_no_offline_data_refuses_plainly_and_goes_offline(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(httpx.ConnectError("no signal")), Slot(FakeCard()))
    refusal = client.post("/api/board", json={"pin": PIN}).get_json()["refusal"]
    assert refusal["code"] == "offline.no_snapshot"
    assert "今回は通常料金になります" in refusal["message"]
    state = client.get("/api/state").get_json()
    assert (state["online"], state["pending"], state["on_board"]) == (False, 0, [])  # never sent: no void


def test_a_lost_answer_without_offline_data_is_cancelled_by_a_void_record(data_dir: Path) -> None:
    client, _context = kiosk(data_dir, boarding_api(httpx.ReadTimeout("lost")), Slot(FakeCard()))
    assert client.post("/api/board", json={"pin": PIN}).get_json()["refusal"]["code"] == "offline.no_snapshot"
    with TerminalStore.open(data_dir) as store:
        [record] = store.pending_records()
    assert (record.kind, record.board_sequence) == ("void", 1)


# -- offline, with a snapshot --


@pytest.fixture
def offline_kiosk(tmp_path: Path, issuer: Any, card_factory: Any) -> tuple[FlaskClient, KioskContext, Path]:
    """An enrolled kiosk holding a signed snapshot that knows the card on its reader; the network is down."""
    api_key = Ed25519PrivateKey.generate()
    data_dir = tmp_path / "offline"
    enrolled(data_dir, public_b64(api_key))
    card = card_factory("kiosk-offline")
    reader = open_virtual_card(card)
    body = payload(issuer, issued_at=(NOW - timedelta(hours=1)).isoformat())
    body["bindings"][0]["fingerprint"] = fingerprint(reader.read_user_certificate())
    answer = signed(api_key, body)
    with TerminalStore.open(data_dir) as store:
        store.save_snapshot(answer["snapshot"], answer["signature"], answer["public_key"], NOW)
    api = FakeApi().on("POST /card-challenges", httpx.ConnectError("no signal"))
    api.on("POST /rides", httpx.ConnectError("no signal"))
    slot = VirtualCardSlot()
    slot.insert(card)
    client, context = kiosk(data_dir, api, slot)
    context.connectivity.mark(False)
    return client, context, data_dir


def test_offline_boarding_is_shown_pending_not_confirmed(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path],
) -> None:
    client, _context, _data_dir = offline_kiosk
    result = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()
    assert result["outcome"] == "pending"
    assert (result["ride"]["confirmed"], result["ride"]["pending"], result["ride"]["balance"]) == (
        False,
        True,
        "2回",
    )
    assert client.get("/api/state").get_json()["pending"] == 1


def test_a_second_tap_of_a_card_on_board_is_not_a_second_ride(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path],
) -> None:
    client, _context, _data_dir = offline_kiosk
    client.post("/api/board", json={"pin": f.CARD_PIN})
    again = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()
    assert again["outcome"] == "already"
    assert client.get("/api/state").get_json()["pending"] == 1


def test_offline_fare_shows_a_provisional_amount_to_collect(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path],
) -> None:
    client, _context, _data_dir = offline_kiosk
    sequence = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()["ride"]["sequence"]
    [ride] = client.post("/api/alight", json={"sequence": sequence, "meter_fare": 1840}).get_json()["rides"]
    assert (ride["rider_share"], ride["subsidy"], ride["fare_provisional"]) == (920, 920, True)
    assert client.get("/api/state").get_json()["on_board"] == []


def test_a_shared_ride_divides_the_meter_among_its_riders(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path],
) -> None:
    client, _context, _data_dir = offline_kiosk
    trip = client.post("/api/trip", json={"open": True}).get_json()["open_trip"]
    # a whole UUID: never a free-standing run of twelve characters that could read as a My Number
    assert re.fullmatch(r"trip-\d+-[0-9a-f]{32}", trip)
    ride = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()["ride"]
    assert ride["trip_ref"] == trip
    [alone] = client.post("/api/alight", json={"trip_ref": trip, "meter_fare": 1841}).get_json()["rides"]
    assert alone["meter_fare"] == 1841  # one rider: the whole meter
    assert client.get("/api/state").get_json()["open_trip"] is None


def test_void_within_the_window_and_not_after(offline_kiosk: tuple[FlaskClient, KioskContext, Path]) -> None:
    client, context, _data_dir = offline_kiosk
    sequence = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()["ride"]["sequence"]
    assert [r["sequence"] for r in client.get("/api/voidable").get_json()["rides"]] == [sequence]
    clock = context.clock
    assert isinstance(clock, MovableClock)
    clock.advance(timedelta(minutes=11))
    late = client.post("/api/void", json={"sequence": sequence, "reason": "まちがえて受け付けた"}).get_json()
    assert late["refusal"]["message"].startswith("取り消しができる時間を過ぎています")
    clock.advance(timedelta(minutes=-10))
    voided = client.post(
        "/api/void", json={"sequence": sequence, "reason": "まちがえて受け付けた"}
    ).get_json()
    assert voided["ride"]["state"] == "voided"


def test_dev_reader_puts_a_card_on_and_takes_it_away(tmp_path: Path, card_factory: Any) -> None:
    card = card_factory("kiosk-dev")
    enrolled(tmp_path / "t")
    slot = VirtualCardSlot(card.parent)
    client, _context = kiosk(tmp_path / "t", FakeApi(), slot)
    assert client.post("/dev/reader/insert", json={"card": card.name}).get_json() == {"present": True}
    assert client.get("/api/reader").get_json() == {"present": True}
    assert client.post("/dev/reader/insert", json={"card": "../etc/passwd"}).status_code == 404
    client.post("/dev/reader/eject")
    assert client.get("/api/reader").get_json() == {"present": False}


# -- bad input: the driver never meets a server error --

KIOSK_WRITES = [
    "/api/enrol",
    "/api/shift/start",
    "/api/shift/end",
    "/api/trip",
    "/api/board/check",
    "/api/board",
    "/api/alight",
    "/api/void",
    "/api/sync",
    "/api/attention/ack",
    "/dev/reader/insert",
]
KIOSK_FIELDS = [
    "pin",
    "sequence",
    "sequences",
    "meter_fare",
    "trip_ref",
    "reason",
    "driver_code",
    "code",
    "card",
]
ODD_VALUES: list[Any] = [None, "", "abc", -1, 0, 10**30, 1.5, True, [], {}, [1], "\x00", "9" * 500]


@pytest.mark.parametrize("route", KIOSK_WRITES)
def test_a_bad_body_is_answered_never_a_server_error(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path], route: str
) -> None:
    # What a stale page, a double tap or a broken touch screen might send: each field with an odd value,
    # alone and next to a valid fare and reason (so that the check of the sequence itself is reached).
    client, _context, _data_dir = offline_kiosk
    client.post("/api/shift/start", json={"driver_code": "D001"})
    answered = []
    for name in KIOSK_FIELDS:
        for value in ODD_VALUES:
            for extra in ({}, {"meter_fare": 1000, "reason": "乗車の間違い"}):
                r = client.post(route, json={name: value, **extra})
                answered.append((name, repr(value)[:12], bool(extra), r.status_code))
    for raw in ("{", "[1, 2]", "null", '"x"'):
        r = client.post(route, data=raw, content_type="application/json")
        answered.append(("raw", raw, False, r.status_code))
    assert [a for a in answered if a[3] >= 500] == []


def test_a_sequence_that_is_not_a_journal_number_names_no_ride(
    offline_kiosk: tuple[FlaskClient, KioskContext, Path],
) -> None:
    client, _context, _data_dir = offline_kiosk
    assert client.get("/api/ride/99999999999999999999").status_code == 404  # beyond any journal
    assert client.get("/api/ride/0").status_code == 404
    for odd in ([1], "abc", 10**30, True):
        r = client.post("/api/void", json={"sequence": odd, "reason": "乗車の間違い"})
        assert (r.status_code, r.get_json()["refusal"]["code"]) == (404, "ride.not_found"), odd
        r = client.post("/api/alight", json={"sequence": odd, "meter_fare": 1000})
        assert (r.status_code, r.get_json()["refusal"]["code"]) == (404, "ride.not_found"), odd
    r = client.post("/api/attention/ack", json={"sequences": 5})
    assert r.get_json() == {"acknowledged": []}
    # a real ride's sequence still works, also written as digits
    sequence = client.post("/api/board", json={"pin": f.CARD_PIN}).get_json()["ride"]["sequence"]
    r = client.post("/api/alight", json={"sequence": str(sequence), "meter_fare": 1000})
    assert r.get_json()["rides"][0]["sequence"] == sequence
