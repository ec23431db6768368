"""The terminal's offline work against the real API (in-process, over httpx's WSGI transport, with a
network that can drop): the signed snapshot, boardings kept offline and synced exactly once, provisional
amounts equal to the API's, conflicts explained, shifts told later."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from driver_terminal.cli import EXIT_REFUSED
from driver_terminal.client import ApiError, RetryPolicy
from driver_terminal.faults import PAUSE_AT_ENV, PAUSE_FILE_ENV
from driver_terminal.snapshot import OfflineRefusal, SnapshotInvalid
from driver_terminal.store import JournalState, RecordStatus, TerminalStore
from driver_terminal.terminal import Terminal, enrol_terminal
from tests import factories as f
from tests.api.conftest import City, Rider
from tests.conftest import (
    RecordingTaskSender,
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
)
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.clock import FixedClock, SystemClock, fiscal_year_of, japan_date
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import (
    Entitlement,
    Municipality,
    Operator,
    Program,
    Ride,
    RideStatus,
    StaffRole,
    TerminalRecord,
    Vehicle,
)
from voucher_api.services import terminals
from voucher_api.services.entitlements import ledger_sum
from voucher_api.services.revocation import RevocationUnknown

API_URL = "http://terminal-offline.invalid"


class Network(httpx.BaseTransport):
    """The API behind a mobile network: it can be `down` (nothing gets through), or lose the answers to
    one route (the API acts, the terminal never hears back)."""

    def __init__(self, app: Flask) -> None:
        self.inner = httpx.WSGITransport(app=app)
        self.down = False
        self.lose_answers_to: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("no signal", request=request)
        response = self.inner.handle_request(request)
        if self.lose_answers_to and f"{request.method} {request.url.path}" == self.lose_answers_to:
            response.read()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


@pytest.fixture
def network(app: Flask) -> Network:
    return Network(app)


def new_enrolment_code(
    client: FlaskClient, session: Session, operator_id: int, vehicle_id: int | None = None
) -> str:
    admin = f.bearer(f.staff_token(client, "jigyosha"))
    if vehicle_id is None:
        vehicle_id = session.scalar(select(Vehicle.id).where(Vehicle.operator_id == operator_id))
    created = client.post("/api/v1/terminals", json={"vehicle_id": vehicle_id}, headers=admin)
    assert created.status_code == 201, created.get_json()
    return str(created.get_json()["enrolment_code"])


@pytest.fixture
def device(
    tmp_path: Path, network: Network, client: FlaskClient, session: Session, city: City, clock: FixedClock
) -> Iterator[Terminal]:
    """An enrolled terminal (its own key, its own store)."""
    with _device(tmp_path / "car-1", network, client, session, city, clock) as terminal:
        yield terminal


@contextmanager
def _device(
    data_dir: Path,
    network: Network,
    client: FlaskClient,
    session: Session,
    city: City,
    clock: FixedClock,
    vehicle_id: int | None = None,
) -> Iterator[Terminal]:
    http = httpx.Client(transport=network)
    code = new_enrolment_code(client, session, city.operator_id, vehicle_id)
    enrol_terminal(data_dir, API_URL, code, http=http, clock=clock.now)
    terminal = Terminal.open(
        data_dir, http=http, clock=clock.now, sleep=lambda _s: None, retry=RetryPolicy(attempts=1)
    )
    try:
        yield terminal
    finally:
        terminal.close()
        http.close()


def reader(card: Path) -> Any:
    return f.card_reader(card)


def rides_of(session: Session, rider: Rider) -> list[Ride]:
    session.expire_all()
    return list(session.scalars(select(Ride).where(Ride.resident_id == rider.resident.id).order_by(Ride.id)))


def balance(session: Session, rider: Rider) -> int:
    session.expire_all()
    value = session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id))
    assert value is not None
    return int(value)


# -- the snapshot --


def test_snapshot_verifies_with_the_key_learnt_at_enrolment(device: Terminal, rider: Rider) -> None:
    snapshot = device.refresh_snapshot()
    assert device.identity.snapshot_public_key is not None
    binding = next(iter(snapshot.bindings.values()))
    assert (binding.given_name, binding.balance, binding.tap_allowed) == ("花子", 24, False)
    assert device.snapshot() == snapshot  # kept, and verified again when read back


def test_a_snapshot_changed_after_it_was_signed_is_refused_and_not_kept(
    device: Terminal, rider: Rider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (one signed with another key: tests/unit/driver_terminal/test_sync_worker.py)
    genuine = device.client.snapshot()
    forged = {**genuine, "snapshot": {**genuine["snapshot"], "bindings": []}}
    monkeypatch.setattr(device.client, "snapshot", lambda: forged)
    with pytest.raises(SnapshotInvalid):
        device.refresh_snapshot()
    assert device.stored_snapshot() is None


# -- offline boardings --


def test_offline_boarding_is_pending_until_sync_and_then_confirmed_once(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    boarding = device.board(reader(rider.card), pin=f.CARD_PIN)
    facts = boarding.facts
    assert (boarding.confirmed, facts.pending, facts.given_name, facts.balance) == (False, True, "花子", 23)
    assert rides_of(session, rider) == []  # nothing reached the API

    network.down = False
    report = device.sync()
    assert [r.status.value for r in report.results] == ["accepted"]
    confirmed = device.facts(facts.sequence)
    assert (confirmed.confirmed, confirmed.pending) == (True, False)
    assert confirmed.ride_id == rides_of(session, rider)[0].id
    assert device.sync().sent == 0  # nothing left to send
    assert len(rides_of(session, rider)) == 1
    assert balance(session, rider) == ledger_sum(session, rider.entitlement.id) == 23


class RevocationOutage:
    """The card issuer's OCSP responder and CRL both out of reach."""

    def check(self, certificate: Any, issuer: Any, at: datetime) -> None:
        raise RevocationUnknown("card.revocation_unknown")


def test_a_ride_synced_while_revocation_cannot_be_checked_waits_and_is_accepted_later(
    device: Terminal,
    network: Network,
    session: Session,
    rider: Rider,
    verifier: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    device.refresh_snapshot()
    network.down = True
    boarding = device.board(reader(rider.card), pin=f.CARD_PIN)
    network.down = False
    monkeypatch.setattr(verifier, "_revocation", RevocationOutage())
    with pytest.raises(ApiError) as outage:
        device.sync()
    assert (outage.value.status, outage.value.code) == (503, "card.revocation_unknown")
    # a passing outage is no verdict: nothing is kept, the signed record waits on the device
    assert rides_of(session, rider) == []
    assert session.scalar(select(func.count()).select_from(TerminalRecord)) == 0
    assert device.store.count_pending() == 1
    assert device.facts(boarding.facts.sequence).pending

    monkeypatch.setattr(verifier, "_revocation", None)  # the issuer answers again
    report = device.sync()
    assert [r.status.value for r in report.results] == ["accepted"]
    assert [ride.id for ride in rides_of(session, rider)] == [device.facts(boarding.facts.sequence).ride_id]
    assert balance(session, rider) == 23


def test_offline_fare_shows_the_amount_the_api_then_confirms(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    boarding = device.board(reader(rider.card), pin=f.CARD_PIN)
    provisional = device.alight(boarding.entry.sequence, 1840)
    assert (provisional.rider_share, provisional.subsidy, provisional.fare_provisional) == (920, 920, True)

    network.down = False
    device.sync()
    [ride] = rides_of(session, rider)
    assert (ride.status, ride.meter_fare, ride.subsidy_amount, ride.rider_share) == (
        RideStatus.COMPLETED,
        1840,
        920,
        920,
    )
    confirmed = device.facts(boarding.entry.sequence)
    assert (confirmed.rider_share, confirmed.fare_provisional, confirmed.confirmed) == (920, False, True)


def test_a_boarding_whose_answer_was_lost_is_kept_offline_and_counted_once(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.lose_answers_to = "POST /api/v1/rides"  # the API records the ride; the car hears nothing
    boarding = device.board(reader(rider.card), pin=f.CARD_PIN, on_unanswered="abandon")
    assert (boarding.entry.offline, boarding.confirmed) == (True, False)
    network.lose_answers_to = None

    report = device.sync()
    [ride] = rides_of(session, rider)
    assert [(r.status.value, r.ride_id) for r in report.results] == [("duplicate", ride.id)]
    assert device.facts(boarding.entry.sequence).ride_id == ride.id
    assert balance(session, rider) == 23


def test_a_boarding_refused_offline_after_a_lost_answer_is_voided_at_sync(
    tmp_path: Path,
    network: Network,
    client: FlaskClient,
    session: Session,
    city: City,
    clock: FixedClock,
    card_factory: Any,
    verifier: Any,
) -> None:
    rules = {**f.ELDERLY_RULES, "options": {"offline_max_rides_per_day": 0}}
    program = f.program(session, city.mun, code="no-offline", rules=rules)
    person = f.resident(session, city.mun)
    entitlement = f.entitlement(session, person, program)
    card = card_factory("no-offline")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    with _device(tmp_path / "car", network, client, session, city, clock) as terminal:
        terminal.refresh_snapshot()
        network.lose_answers_to = "POST /api/v1/rides"
        with pytest.raises(OfflineRefusal) as refused:
            terminal.board(reader(card), pin=f.CARD_PIN, on_unanswered="abandon")
        assert refused.value.code == "limit.offline_per_day"
        network.lose_answers_to = None
        report = terminal.sync()
        assert [r.status.value for r in report.results] == ["accepted"]  # the void
    session.expire_all()
    [ride] = session.scalars(select(Ride).where(Ride.resident_id == person.id)).all()
    assert ride.status is RideStatus.VOIDED
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement.id)) == 24


def test_offline_limit_per_day_is_kept_by_the_terminal(
    device: Terminal, network: Network, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    for _ride in range(2):
        boarding = device.board(reader(rider.card), pin=f.CARD_PIN)
        device.alight(boarding.entry.sequence, 900)
    with pytest.raises(OfflineRefusal) as refused:
        device.board(reader(rider.card), pin=f.CARD_PIN)
    assert (refused.value.code, refused.value.params) == ("limit.offline_per_day", {"limit": 2})


def test_a_card_the_snapshot_does_not_know_is_refused_offline(
    device: Terminal, network: Network, rider: Rider, card_factory: Any
) -> None:
    device.refresh_snapshot()
    network.down = True
    with pytest.raises(OfflineRefusal) as refused:
        device.board(reader(card_factory("stranger")), pin=f.CARD_PIN)
    assert refused.value.code == "card.not_bound"


def test_tap_is_refused_offline_where_the_program_needs_the_pin(
    device: Terminal, network: Network, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    with pytest.raises(OfflineRefusal) as refused:
        device.board(reader(rider.card), pin=None, online=False)
    assert refused.value.code == "card.tap_not_allowed"


def test_offline_void_gives_the_ride_back_after_sync(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    boarding = device.board(reader(rider.card), pin=f.CARD_PIN)
    voided = device.cancel(boarding.entry.sequence, "乗車取り消し")
    assert (voided.state, voided.balance) == (JournalState.VOIDED, 24)
    network.down = False
    assert [r.status.value for r in device.sync().results] == ["accepted", "accepted"]
    [ride] = rides_of(session, rider)
    assert ride.status is RideStatus.VOIDED
    assert balance(session, rider) == 24


def test_online_and_offline_records_share_one_sequence_space(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    online = device.board(reader(rider.card), pin=f.CARD_PIN)
    network.down = True
    fare = device.alight(online.entry.sequence, 1200)  # the fare of an online ride, entered offline
    assert fare.fare_provisional
    network.down = False
    report = device.sync()
    assert [r.sequence for r in report.results] == [online.entry.sequence + 1]
    assert report.gaps == ()
    [ride] = rides_of(session, rider)
    assert (ride.terminal_sequence, ride.meter_fare) == (online.entry.sequence, 1200)


# -- two cars, one exhausted balance --


def test_exhausted_balance_used_offline_on_two_terminals_is_one_conflict_shown_to_driver_and_finance(
    tmp_path: Path,
    network: Network,
    client: FlaskClient,
    session: Session,
    city: City,
    clock: FixedClock,
    card_factory: Any,
    verifier: Any,
) -> None:
    person = f.resident(session, city.mun)
    entitlement = f.entitlement(session, person, city.program, balance=1)
    card = card_factory("two-cars-offline")
    f.bind_card(session, verifier, person, card, city.counter.id)
    operator = session.get(Operator, city.operator_id)
    assert operator is not None
    second_vehicle = f.vehicle(session, operator)
    finance = f.staff_user(session, city.mun, StaffRole.FINANCE, username="offline-keiri")
    session.commit()
    cars = ExitStack()
    first = cars.enter_context(_device(tmp_path / "car-a", network, client, session, city, clock))
    second = cars.enter_context(
        _device(tmp_path / "car-b", network, client, session, city, clock, second_vehicle.id)
    )
    for car in (first, second):
        car.refresh_snapshot()
    network.down = True
    for car in (first, second):
        assert car.board(reader(card), pin=f.CARD_PIN).facts.balance == 0  # each car saw one ride left
    network.down = False
    assert [r.status.value for r in first.sync().results] == ["accepted"]
    report = second.sync()
    [result] = report.results
    assert (result.status.value, result.code) == ("conflict", "entitlement.exhausted")
    [attention] = second.needing_attention()
    assert attention.status is RecordStatus.CONFLICT
    assert attention.title
    session.expire_all()
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement.id)) == 0
    review = client.get(
        "/api/v1/rides/under-review", headers=f.bearer(f.staff_token(client, finance.username))
    ).get_json()
    assert [(item["kind"], item["code"], item["ride_id"]) for item in review] == [
        ("conflict", "entitlement.exhausted", result.ride_id)
    ]
    second.acknowledge([attention.sequence])
    assert second.needing_attention() == []
    cars.close()


# -- shifts --


def test_a_shift_started_offline_is_told_to_the_api_later(
    device: Terminal, network: Network, session: Session, city: City
) -> None:
    f.driver(session, city.operator_id, "D07", "運転 七郎")
    session.commit()
    network.down = True
    shift = device.start_shift("d07")
    assert (shift.driver_code, shift.server_shift_id) == ("D07", None)
    network.down = False
    device.tell_shifts()
    told = device.current_shift()
    assert told is not None
    assert told.server_shift_id is not None
    assert told.driver_name == "運転 七郎"
    ended, rides = device.end_shift()
    assert (ended.end_sent, rides) == (True, 0)


def test_store_keeps_every_synced_record_with_its_answer(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.down = True
    device.board(reader(rider.card), pin=f.CARD_PIN)
    network.down = False
    device.sync()
    with TerminalStore(device.store.path) as onlooker:
        [record] = onlooker.records()
    session.expire_all()
    kept = session.scalar(select(func.count()).select_from(TerminalRecord))
    assert (record.status, record.kind, kept) == (RecordStatus.ACCEPTED, "board", 1)
    assert timedelta(0) <= (record.synced_at or record.created_at) - record.created_at


# -- crashes: the terminal killed at named points, in a subprocess, against a live API ----------------

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class LiveCity:
    """A live API on 127.0.0.1 over its own committed database, and a way to make riders and terminals."""

    base_url: str
    sessions: sessionmaker[Session]
    municipality_id: int
    operator_id: int
    vehicle_id: int
    program_id: int
    counter_id: int


@pytest.fixture(scope="module")
def live_city(tmp_path_factory: pytest.TempPathFactory, settings: Any, verifier: Any) -> Iterator[LiveCity]:
    admin = postgres_admin_url()
    url = (
        create_postgres_database(admin, "voucher_crash")
        if admin
        else f"sqlite:///{tmp_path_factory.mktemp('crash-db') / 'crash.sqlite3'}"
    )
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    today = japan_date(datetime.now(UTC))
    with sessions() as session:
        mun = f.municipality(session)
        operator = f.operator(session, mun)
        vehicle = f.vehicle(session, operator)
        rules = {**f.ELDERLY_RULES, "limits": {}}
        program = f.program(session, mun, code="crash", rules=rules, fiscal_year=fiscal_year_of(today))
        counter = f.staff_user(session, mun, StaffRole.COUNTER, username="crash-madoguchi")
        session.commit()
        city = LiveCity("", sessions, mun.id, operator.id, vehicle.id, program.id, counter.id)
    app = create_app(
        settings,
        session_factory=sessions,
        clock=SystemClock(),
        verifier=verifier,
        task_sender=RecordingTaskSender(),
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="crash-api", daemon=True)
    thread.start()
    city.base_url = f"http://127.0.0.1:{server.server_port}"
    yield city
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    engine.dispose()
    if admin:
        drop_postgres_database(admin, url)


def live_rider(city: LiveCity, card_factory: Any, verifier: Any, label: str) -> tuple[int, Path]:
    """A resident with an entitlement and a bound card in the live city: (resident id, card file)."""
    card = card_factory(f"crash-{label}")
    with city.sessions() as session:
        mun = session.get(Municipality, city.municipality_id)
        program = session.get(Program, city.program_id)
        assert mun is not None
        assert program is not None
        person = f.resident(session, mun)
        f.entitlement(session, person, program)
        f.bind_card(session, verifier, person, card, city.counter_id)
        session.commit()
        return person.id, card


def live_terminal(city: LiveCity, data_dir: Path) -> None:
    """Enrol a terminal in the live city and give it a snapshot (as the kiosk does when set up)."""
    with city.sessions() as session:
        created = terminals.create_terminal(
            session,
            vehicle_id=city.vehicle_id,
            municipality_id=city.municipality_id,
            actor="test",
            now=datetime.now(UTC),
            ttl=timedelta(hours=1),
        )
        session.commit()
        code = created.enrolment_code
    enrol_terminal(data_dir, city.base_url, code)
    with Terminal.open(data_dir) as terminal:
        terminal.refresh_snapshot()


def terminal_command(
    data_dir: Path, *args: str, pause_at: str | None = None, marker: Path | None = None
) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DRIVER_TERMINAL_")}
    env["PYTHONPATH"] = str(REPOSITORY)
    if pause_at is not None and marker is not None:
        env[PAUSE_AT_ENV] = pause_at
        env[PAUSE_FILE_ENV] = str(marker)
    return subprocess.Popen(
        [sys.executable, "-m", "driver_terminal", "--data-dir", str(data_dir), *args],
        cwd=REPOSITORY,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_terminal(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    process = terminal_command(data_dir, *args)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def kill_at(point: str, data_dir: Path, *args: str) -> None:
    """Run the terminal until it reaches `point`, then SIGKILL it there."""
    marker = data_dir.parent / f"paused-{point}"
    marker.unlink(missing_ok=True)
    process = terminal_command(data_dir, *args, pause_at=point, marker=marker)
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the terminal ended before {point}: {process.returncode}\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the terminal never reached {point}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def live_rides(city: LiveCity, resident_id: int) -> list[tuple[RideStatus, str]]:
    with city.sessions() as session:
        rows = session.execute(
            select(Ride.status, Ride.idempotency_key).where(Ride.resident_id == resident_id)
        ).all()
    return [(row.status, row.idempotency_key) for row in rows]


BOARD = ("board", "--pin", f.CARD_PIN)

# point -> (extra options for the boarding, exit status of the driver's retry with the same card)
BOARDING_CRASHES = {
    "board.numbered": ((), EXIT_REFUSED),  # the retry hears "still checking"; sync sends it
    "board.answered": ((), EXIT_REFUSED),  # the API has the ride; sync hears it again (replayed)
    "offline.writing": (("--offline",), 0),  # rolled back: the retry boards
    "offline.kept": (("--offline",), 0),  # on disk: the retry finds the rider already on board
}


@pytest.mark.slow
@pytest.mark.parametrize("point", sorted(BOARDING_CRASHES))
def test_a_terminal_killed_while_boarding_delivers_the_ride_exactly_once(
    point: str, tmp_path: Path, live_city: LiveCity, card_factory: Any, verifier: Any
) -> None:
    resident_id, card = live_rider(live_city, card_factory, verifier, point)
    data_dir = tmp_path / "terminal"
    live_terminal(live_city, data_dir)
    extra, retry_status = BOARDING_CRASHES[point]

    kill_at(point, data_dir, *BOARD, "--card", str(card), *extra)
    retry = run_terminal(data_dir, *BOARD, "--card", str(card), *extra)
    assert retry.returncode == retry_status, retry.stdout + retry.stderr
    synced = run_terminal(data_dir, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr

    [(status, _key)] = live_rides(live_city, resident_id)
    assert status is RideStatus.BOARDED
    assert run_terminal(data_dir, "sync").stdout.strip() == "送信する記録はありません。"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["sync.sending", "sync.answered"])
def test_a_terminal_killed_while_syncing_delivers_every_ride_exactly_once(
    point: str, tmp_path: Path, live_city: LiveCity, card_factory: Any, verifier: Any
) -> None:
    riders = [live_rider(live_city, card_factory, verifier, f"{point}-{n}") for n in range(2)]
    data_dir = tmp_path / "terminal"
    live_terminal(live_city, data_dir)
    for _resident_id, card in riders:
        boarded = run_terminal(data_dir, *BOARD, "--card", str(card), "--offline")
        assert boarded.returncode == 0, boarded.stdout + boarded.stderr
        assert "オフラインで受け付けました" in boarded.stdout

    kill_at(point, data_dir, "sync")
    synced = run_terminal(data_dir, "sync")
    assert synced.returncode == 0, synced.stdout + synced.stderr

    for resident_id, _card in riders:
        assert [status for status, _key in live_rides(live_city, resident_id)] == [RideStatus.BOARDED]
    with TerminalStore.open(data_dir) as store:
        statuses = [record.status for record in store.records()]
    expected = RecordStatus.DUPLICATE if point == "sync.answered" else RecordStatus.ACCEPTED
    assert statuses == [expected, expected]


class CountingReader:
    """The card on the reader, counting its signatures; `taken_away_after` signatures it is gone."""

    def __init__(self, card: Path, taken_away_after: int | None = None) -> None:
        self.inner = f.card_reader(card)
        self.signatures = 0
        self.taken_away_after = taken_away_after

    def read_user_certificate(self) -> bytes:
        return bytes(self.inner.read_user_certificate())

    def read_user_ca_certificate(self) -> bytes:
        return bytes(self.inner.read_user_ca_certificate())

    def has_user_pin(self) -> bool:
        return bool(self.inner.has_user_pin())

    def sign_with_user_key(self, message: bytes, pin: str | None = None) -> bytes:
        from auth_mock.reader import CardAbsent

        if self.taken_away_after is not None and self.signatures >= self.taken_away_after:
            raise CardAbsent()
        self.signatures += 1
        return bytes(self.inner.sign_with_user_key(message, pin))


def test_an_online_boarding_asks_the_card_for_one_signature_only(device: Terminal, rider: Rider) -> None:
    device.refresh_snapshot()
    card = CountingReader(rider.card)
    assert device.board(card, pin=f.CARD_PIN).confirmed
    assert card.signatures == 1


def test_a_lost_answer_after_the_card_was_taken_away_asks_to_hold_it_again_and_cancels(
    device: Terminal, network: Network, session: Session, rider: Rider
) -> None:
    device.refresh_snapshot()
    network.lose_answers_to = "POST /api/v1/rides"
    with pytest.raises(OfflineRefusal) as refused:
        device.board(CountingReader(rider.card, taken_away_after=1), pin=f.CARD_PIN, on_unanswered="abandon")
    assert refused.value.code == "offline.card_gone"
    network.lose_answers_to = None
    device.sync()
    assert [ride.status for ride in rides_of(session, rider)] == [RideStatus.VOIDED]
    assert balance(session, rider) == 24
