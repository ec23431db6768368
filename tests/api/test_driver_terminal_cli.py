"""The driver's CLI against the real API (in-process, over httpx's WSGI transport): enrol, board with a
virtual card, set the fare, void, look a ride up; refusals come out as the API's own sentences."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from driver_terminal.cli import EXIT_REFUSED, TerminalEnvironment, main
from driver_terminal.keys import KEY_FILENAME
from driver_terminal.store import JournalState, TerminalStore
from tests import factories as f
from tests.api.conftest import City, Rider
from voucher_api.clock import FixedClock
from voucher_api.models import Entitlement, Ride, Vehicle

API_URL = "http://terminal-test.invalid"


@pytest.fixture
def http(app: Flask) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
        yield client


@pytest.fixture
def environment(http: httpx.Client, clock: FixedClock) -> TerminalEnvironment:
    # The terminal's clock is the server's test clock, as on a real device kept in time by NTP.
    return TerminalEnvironment(http=http, clock=clock.now, sleep=lambda _seconds: None)


def new_enrolment_code(client: FlaskClient, session: Session, city: City) -> str:
    admin = f.bearer(f.staff_token(client, "jigyosha"))
    vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.operator_id == city.operator_id))
    created = client.post("/api/v1/terminals", json={"vehicle_id": vehicle_id}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return str(created.get_json()["enrolment_code"])


def run(environment: TerminalEnvironment, data_dir: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], obj=environment, input=stdin)


@pytest.fixture
def data_dir(
    tmp_path: Path, environment: TerminalEnvironment, client: FlaskClient, session: Session, city: City
) -> Path:
    """An enrolled terminal's data directory."""
    directory = tmp_path / "terminal"
    code = new_enrolment_code(client, session, city)
    result = run(environment, directory, "enrol", "--api", API_URL, "--code", code)
    assert result.exit_code == 0, result.output
    return directory


def board(environment: TerminalEnvironment, data_dir: Path, card: Path, *extra: str) -> Result:
    return run(environment, data_dir, "board", "--card", str(card), "--pin", f.CARD_PIN, *extra)


def last_ride_id(data_dir: Path) -> int:
    with TerminalStore.open(data_dir) as store:
        ride_id = store.entries(1)[0].ride_id
    assert ride_id is not None
    return ride_id


def wrong_pin() -> str:
    return "0000" if f.CARD_PIN != "0000" else "1111"


def balance(session: Session, rider: Rider) -> Any:
    session.expire_all()
    return session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id))


def test_enrolment_keeps_an_owner_only_key_and_the_terminal_identity(
    data_dir: Path, environment: TerminalEnvironment
) -> None:
    assert stat.S_IMODE((data_dir / KEY_FILENAME).stat().st_mode) == 0o600
    with TerminalStore.open(data_dir) as store:
        identity = store.identity()
    assert identity is not None
    assert identity.api_url == API_URL
    status = run(environment, data_dir, "status")
    assert f"端末番号 {identity.terminal_id}" in status.output
    assert "サーバー: 正常" in status.output


def test_an_enrolment_code_works_only_once(
    tmp_path: Path, environment: TerminalEnvironment, client: FlaskClient, session: Session, city: City
) -> None:
    code = new_enrolment_code(client, session, city)
    assert run(environment, tmp_path / "first", "enrol", "--api", API_URL, "--code", code).exit_code == 0
    second = run(environment, tmp_path / "second", "enrol", "--api", API_URL, "--code", code)
    assert second.exit_code == EXIT_REFUSED
    assert "登録コードが正しくないか、有効期限が切れています。" in second.stderr


def test_boarding_shows_the_riders_given_name_age_band_program_and_balance(
    data_dir: Path, environment: TerminalEnvironment, session: Session, rider: Rider
) -> None:
    result = board(environment, data_dir, rider.card)
    assert result.exit_code == 0, result.output
    for shown in ("乗車を受け付けました", "花子 様", "80代", "高齢者おもいやりタクシー", "23回"):
        assert shown in result.stdout
    assert balance(session, rider) == 23


def test_boarding_in_english(data_dir: Path, environment: TerminalEnvironment, rider: Rider) -> None:
    result = board(environment, data_dir, rider.card, "--lang", "en")
    assert result.exit_code == 0, result.output
    assert "Boarding accepted" in result.stdout
    assert "80s" in result.stdout
    assert "23 rides" in result.stdout


def test_pin_is_asked_for_without_echo_when_not_given(
    data_dir: Path, environment: TerminalEnvironment, rider: Rider
) -> None:
    result = run(environment, data_dir, "board", "--card", str(rider.card), stdin=f"{f.CARD_PIN}\n")
    assert result.exit_code == 0, result.output
    assert f.CARD_PIN not in result.output
    assert "花子 様" in result.stdout


def test_fare_prints_what_the_rider_pays_in_big_clear_text(
    data_dir: Path, environment: TerminalEnvironment, rider: Rider
) -> None:
    assert board(environment, data_dir, rider.card).exit_code == 0
    result = run(environment, data_dir, "fare", str(last_ride_id(data_dir)), "1840")
    assert result.exit_code == 0, result.output
    assert "お支払い: 920円" in result.stdout
    assert "メーター料金 1,840円 − 助成 920円" in result.stdout
    assert sum("██" in line for line in result.stdout.splitlines()) == 5  # the block-letter banner
    with TerminalStore.open(data_dir) as store:
        assert store.entries(1)[0].state is JournalState.COMPLETED


def test_void_gives_the_ride_back_to_the_balance(
    data_dir: Path, environment: TerminalEnvironment, session: Session, rider: Rider, clock: FixedClock
) -> None:
    assert board(environment, data_dir, rider.card).exit_code == 0
    ride_id = last_ride_id(data_dir)
    clock.advance(timedelta(minutes=3))
    result = run(environment, data_dir, "void", str(ride_id), "--reason", "乗車取り消し")
    assert result.exit_code == 0, result.output
    assert f"乗車番号 {ride_id} を取り消しました。残り: 24回" in result.stdout
    assert balance(session, rider) == 24


def test_void_after_the_window_is_refused_with_the_apis_sentence(
    data_dir: Path, environment: TerminalEnvironment, rider: Rider, clock: FixedClock
) -> None:
    assert board(environment, data_dir, rider.card).exit_code == 0
    clock.advance(timedelta(minutes=30))
    result = run(environment, data_dir, "void", str(last_ride_id(data_dir)), "--reason", "遅すぎ")
    assert result.exit_code == EXIT_REFUSED
    assert "取り消しができる時間を過ぎています。" in result.stderr


def test_ride_shows_the_state_the_server_has(
    data_dir: Path, environment: TerminalEnvironment, rider: Rider
) -> None:
    assert board(environment, data_dir, rider.card).exit_code == 0
    ride_id = last_ride_id(data_dir)
    assert run(environment, data_dir, "fare", str(ride_id), "3000").exit_code == 0
    result = run(environment, data_dir, "ride", str(ride_id))
    assert result.exit_code == 0, result.output
    assert f"乗車番号 {ride_id}: 降車済み(料金確定)" in result.stdout
    assert "2026年10月15日 10:00" in result.stdout
    assert "お支払い 2,000円" in result.stdout  # 50 % of 3,000 is capped at ¥1,000


def test_an_unknown_ride_is_reported_in_japanese(data_dir: Path, environment: TerminalEnvironment) -> None:
    result = run(environment, data_dir, "ride", "999999")
    assert result.exit_code == EXIT_REFUSED
    assert "乗車記録が見つかりません。" in result.stderr


def test_unregistered_card_is_refused_with_what_to_tell_the_rider(
    data_dir: Path, environment: TerminalEnvironment, card_factory: Any
) -> None:
    result = board(environment, data_dir, card_factory("stranger"))
    assert result.exit_code == EXIT_REFUSED
    assert "このカードはまだ登録されていません。市役所の窓口で登録してください。" in result.stderr
    with TerminalStore.open(data_dir) as store:
        refused = store.entries(1)[0]
    assert refused.state is JournalState.REFUSED
    assert refused.request is None  # the card proof is not kept once answered


def ride_to_the_end(environment: TerminalEnvironment, data_dir: Path, card: Path) -> None:
    assert board(environment, data_dir, card).exit_code == 0
    assert run(environment, data_dir, "fare", str(last_ride_id(data_dir)), "1200").exit_code == 0


def test_daily_limit_refusal_comes_in_the_drivers_language(
    data_dir: Path, environment: TerminalEnvironment, rider: Rider
) -> None:
    ride_to_the_end(environment, data_dir, rider.card)
    ride_to_the_end(environment, data_dir, rider.card)
    third = board(environment, data_dir, rider.card, "--lang", "en")
    assert third.exit_code == EXIT_REFUSED
    assert "The daily ride limit has been reached." in third.stderr


def test_wrong_pin_reports_tries_left_and_records_nothing(
    data_dir: Path, environment: TerminalEnvironment, session: Session, rider: Rider, tmp_path: Path
) -> None:
    card = tmp_path / "own-card.json"
    shutil.copyfile(rider.card, card)  # the try counter lives in the card file; keep the shared one intact
    result = run(environment, data_dir, "board", "--card", str(card), "--pin", wrong_pin())
    assert result.exit_code == EXIT_REFUSED
    assert "暗証番号が違います。あと2回間違えるとロックされます。" in result.stderr
    assert session.scalar(select(Ride.id).where(Ride.resident_id == rider.resident.id)) is None
    with TerminalStore.open(data_dir) as store:
        assert store.entries() == []  # no number spent on a card that said no


def test_a_card_still_on_board_is_not_boarded_twice(
    data_dir: Path, environment: TerminalEnvironment, session: Session, rider: Rider
) -> None:
    assert board(environment, data_dir, rider.card).exit_code == 0
    again = board(environment, data_dir, rider.card)
    assert again.exit_code == 0
    assert "すでに乗車中です" in again.stdout
    session.expire_all()
    assert len(session.scalars(select(Ride.id).where(Ride.resident_id == rider.resident.id)).all()) == 1
    assert balance(session, rider) == 23


def test_sequence_numbers_continue_across_invocations(
    data_dir: Path, environment: TerminalEnvironment, session: Session, rider: Rider
) -> None:
    ride_to_the_end(environment, data_dir, rider.card)
    assert board(environment, data_dir, rider.card).exit_code == 0
    session.expire_all()
    sequences = session.scalars(
        select(Ride.terminal_sequence)
        .where(Ride.resident_id == rider.resident.id)
        .order_by(Ride.terminal_sequence)
    ).all()
    assert list(sequences) == [1, 2]
    journal = run(environment, data_dir, "journal")
    assert journal.exit_code == 0
    assert len(journal.stdout.splitlines()) == 2
