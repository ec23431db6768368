"""The in-car kiosk in headless Debian Chromium against the real API (PostgreSQL when TEST_DATABASE_URL is
set): a full shift online; a shift with the API stopped and restarted in the middle; the same exhausted
entitlement used offline in two cars, one conflict flagged at sync, shown to the driver and in finance's
review.

The kiosk runs as in the car: its Flask app served on 127.0.0.1 by one thread, its background sync in
another, its store and key in a temporary data directory; the rider's card is a virtual card put on the
kiosk's virtual reader. The API runs in a thread on its own fresh database and can be stopped and
started again on the same port. Screenshots go to E2E_SCREENSHOTS_DIR (docs/screens/kiosk-*.png).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from auth_mock.issuer import CardHolder
from driver_terminal.kiosk.app import KIOSK_TIMEOUT, KioskContext, create_kiosk_app
from driver_terminal.kiosk.reader import VirtualCardSlot
from driver_terminal.sync import Backoff, SyncWorker
from driver_terminal.terminal import Terminal, enrol_terminal
from tests import factories as f
from tests.conftest import (
    RecordingTaskSender,
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
)
from tests.e2e.conftest import CARDS_ISSUED, START, RunningClock, assert_accessible, shot
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import BindingMethod, Entitlement, Ride, RideStatus, StaffRole
from voucher_api.services import identity, terminals
from voucher_api.services.identity import CardVerifier

pytestmark = pytest.mark.e2e

VIEWPORT = {"width": 1280, "height": 800}  # a 10-inch landscape tablet
PROGRAMS: dict[str, dict[str, Any]] = {
    "elderly": {
        "eligibility": [{"type": "min_age", "years": 75}],
        "subsidy": {
            "formula": "percent_capped",
            "percent": 50,
            "cap_per_ride": 1000,
            "shared_cap_per_person": 800,
        },
        "grant": {"unit": "ride", "amount": 24},
        "limits": {},
        "options": {},
    },
    "bus_abolished": {
        "eligibility": [{"type": "min_age", "years": 65}],
        "subsidy": {"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000},
        "grant": {"unit": "ride", "amount": 48},
        "limits": {},
        "options": {"tap_allowed": True},
    },
}
# key: (family, given, birth date, program or None for a card bound to nobody, balance or None)
RIDERS: dict[str, tuple[str, str, date, str | None, int | None]] = {
    "hana": ("山田", "ハナ", date(1941, 5, 10), "elderly", None),
    "kiyo": ("渡辺", "キヨ", date(1955, 2, 2), "bus_abolished", None),
    "ichiro": ("鈴木", "一郎", date(1948, 8, 8), "elderly", None),
    "haruko": ("松本", "春子", date(1947, 11, 3), "elderly", None),
    "yoshi": ("木村", "ヨシ", date(1946, 12, 24), "elderly", None),
    "tadashi": ("伊藤", "正", date(1945, 9, 9), "elderly", None),
    "masaru": ("山本", "勝", date(1942, 2, 12), "elderly", None),
    "tome": ("佐藤", "トメ", date(1944, 3, 3), "elderly", 1),
    "tabito": ("吉田", "旅人", date(1949, 1, 1), None, None),
}


class LiveApi:
    """The API in a thread, on a port that stays the same when it is stopped and started again."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.server: BaseWSGIServer | None = None
        self.thread: threading.Thread | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="kiosk-e2e-api", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None


@dataclass
class KioskCity:
    api: LiveApi
    sessions: sessionmaker[Session]
    clock: RunningClock
    cards: dict[str, Path]
    residents: dict[str, int]
    entitlements: dict[str, int]
    municipality_id: int
    vehicles: list[int] = field(default_factory=list)

    def enrolment_code(self, vehicle_index: int = 0) -> str:
        with self.sessions() as session:
            created = terminals.create_terminal(
                session,
                vehicle_id=self.vehicles[vehicle_index],
                municipality_id=self.municipality_id,
                actor="test",
                now=self.clock.now(),
                ttl=timedelta(hours=1),
            )
            session.commit()
            return created.enrolment_code

    def rides_of(self, key: str) -> list[Ride]:
        with self.sessions() as session:
            return list(
                session.scalars(select(Ride).where(Ride.resident_id == self.residents[key]).order_by(Ride.id))
            )

    def balance(self, key: str) -> int:
        with self.sessions() as session:
            value = session.scalar(
                select(Entitlement.balance).where(Entitlement.id == self.entitlements[key])
            )
            assert value is not None
            return int(value)


@pytest.fixture(scope="module")
def kiosk_city(
    world: Any, settings: Any, issuer: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KioskCity]:
    """A city of its own (own database, own API thread): programs, two cars, drivers, riders with cards."""
    admin = postgres_admin_url()
    url = (
        create_postgres_database(admin, "voucher_kiosk")
        if admin
        else f"sqlite:///{tmp_path_factory.mktemp('kiosk-db') / 'kiosk.sqlite3'}"
    )
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    clock = RunningClock(START)
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes())
    card_dir = tmp_path_factory.mktemp("kiosk-cards")
    cards: dict[str, Path] = {}
    for n, (key, (family, given, birth, _program, _balance)) in enumerate(RIDERS.items(), start=1):
        holder = CardHolder(
            family_name=family,
            given_name=given,
            family_name_kana="ヤマダ",
            given_name_kana="ハナ",
            sex="female",
            birth_date=birth,
            address="山形県尾花沢市若葉町一丁目1番1号",
            municipality_code="062120",
            registry_id=f"062120-8{n:06d}",
        )
        cards[key] = card_dir / f"{key}.json"
        issuer.issue_card(
            holder,
            pin=f.CARD_PIN,
            password=f.CARD_PASSWORD,
            kind="standard",
            out=cards[key],
            now=CARDS_ISSUED,
        )
    residents: dict[str, int] = {}
    entitlements: dict[str, int] = {}
    with sessions() as session:
        mun = f.municipality(session)
        operator = f.operator(session, mun, code="OP01")
        vehicles = [f.vehicle(session, operator).id, f.vehicle(session, operator).id]
        f.driver(session, operator.id, "D01", "佐々木 大輔")
        f.driver(session, operator.id, "D02", "小野 健二")
        clerk = f.staff_user(session, mun, StaffRole.COUNTER, username="kiosk-madoguchi")
        f.staff_user(session, mun, StaffRole.FINANCE, username="kiosk-keiri")
        programs = {code: f.program(session, mun, code=code, rules=rules) for code, rules in PROGRAMS.items()}
        for key, (_family, given, birth, program, balance) in RIDERS.items():
            if program is None:
                continue
            person = f.resident(session, mun, birth_date=birth, given_name=given)
            residents[key] = person.id
            entitlements[key] = f.entitlement(session, person, programs[program], balance=balance).id
            reader = f.card_reader(cards[key])
            verified = verifier.verify_certificate(
                reader.read_user_certificate(), [reader.read_user_ca_certificate()], START
            )
            identity.bind_card(
                session,
                resident_id=person.id,
                municipality_id=mun.id,
                card=verified,
                method=BindingMethod.PIN_SIGNATURE,
                staff_id=clerk.id,
                now=START - timedelta(days=1),
            )
        session.commit()
        municipality_id = mun.id
    app = create_app(
        settings, session_factory=sessions, clock=clock, verifier=verifier, task_sender=RecordingTaskSender()
    )
    api = LiveApi(app)
    api.start()
    yield KioskCity(api, sessions, clock, cards, residents, entitlements, municipality_id, vehicles)
    api.stop()
    engine.dispose()
    if admin:
        drop_postgres_database(admin, url)


@dataclass
class Car:
    """One car's kiosk: its server thread, its context (store, reader, sync) and its browser tab."""

    context: KioskContext
    server: BaseWSGIServer
    thread: threading.Thread
    page: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def slot(self) -> VirtualCardSlot:
        assert isinstance(self.context.slot, VirtualCardSlot)
        return self.context.slot

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        if self.context.worker is not None:
            self.context.worker.stop()
        if self.context.http is not None:
            self.context.http.close()


@pytest.fixture
def cars(kiosk_city: KioskCity, browser: Any, tmp_path: Path) -> Iterator[Callable[..., Car]]:
    made: list[Car] = []

    def make(name: str = "car", *, vehicle: int = 0, enrolled: bool = True) -> Car:
        data_dir = tmp_path / name
        context = KioskContext(
            data_dir=data_dir,
            api_url=kiosk_city.api.base_url,
            slot=VirtualCardSlot(),
            http=httpx.Client(timeout=KIOSK_TIMEOUT),
            clock=kiosk_city.clock.now,
        )
        # The car's sync retries quickly here (in a car: 1 s doubling up to a minute).
        context.worker = SyncWorker(
            context.open_terminal,
            context.connectivity,
            backoff=Backoff(first=0.2, ceiling=1.0),
            idle_wait=1.0,
        )
        if enrolled:
            enrol_terminal(
                data_dir,
                kiosk_city.api.base_url,
                kiosk_city.enrolment_code(vehicle),
                clock=kiosk_city.clock.now,
            )
            with Terminal.open(data_dir, clock=kiosk_city.clock.now) as terminal:
                terminal.refresh_snapshot()
            context.start_worker()
        server = make_server("127.0.0.1", 0, create_kiosk_app(context), threaded=False)
        thread = threading.Thread(target=server.serve_forever, name=f"kiosk-{name}", daemon=True)
        thread.start()
        car = Car(context, server, thread)
        tab_context = browser.new_context(viewport=VIEWPORT, locale="ja-JP", timezone_id="Asia/Tokyo")
        tab_context.set_default_timeout(20_000)
        car.page = tab_context.new_page()
        car.page.goto(car.url)
        made.append(car)
        return car

    yield make
    for car in made:
        car.page.context.close()
        car.stop()


# --- what the driver and the rider do -------------------------------------------------------------


def visible(page: Any, screen: str) -> None:
    try:
        page.locator(f"#screen-{screen}").wait_for(state="visible")
    except Exception as error:
        shown = page.locator(".screen:not([hidden])").all_inner_texts()
        raise AssertionError(f"waited for the {screen} screen; the kiosk shows {shown}") from error


def sign_in_driver(page: Any, code: str = "D01") -> None:
    visible(page, "signin")
    for key in code:
        page.locator(f"#signin-keys [data-pad-key='{key}']").click()
    page.locator("#signin-keys [data-pad-key='ok']").click()
    visible(page, "home")


def hold_card(car: Car, kiosk_city: KioskCity, rider: str) -> None:
    car.slot.insert(kiosk_city.cards[rider])


def enter_pin(page: Any, pin: str = f.CARD_PIN) -> None:
    visible(page, "pin")
    for key in pin:
        page.locator(f"#pin-pad [data-pad-key='{key}']").click()
    page.locator("#pin-pad [data-pad-key='ok']").click()


def done(car: Car) -> None:
    """The driver taps OK and the rider takes the card away."""
    car.slot.eject()
    car.page.locator(
        ".screen:not([hidden]) button.big.primary, .screen:not([hidden]) #refused-ok"
    ).first.click()
    visible(car.page, "home")
    car.page.locator("body[data-card='off']").wait_for(state="attached")  # the kiosk saw the card go


def board_with_pin(car: Car, kiosk_city: KioskCity, rider: str) -> None:
    hold_card(car, kiosk_city, rider)
    enter_pin(car.page)
    visible(car.page, "boarded")


def enter_fare(page: Any, amount: str) -> None:
    visible(page, "fare")
    for key in amount:
        page.locator(f"#fare-pad [data-pad-key='{key}']").click()
    page.locator("#fare-pad [data-pad-key='ok']").click()
    visible(page, "pay")


def alight(page: Any, name: str) -> None:
    page.locator("#on-board li", has_text=name).get_by_role("button").click()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def screen(page: Any, screens_dir: Path, name: str, *, accessible: bool = True) -> None:
    shot(page, screens_dir, name)
    if accessible:
        assert_accessible(page)


# --- the tests ------------------------------------------------------------------------------------


def test_a_full_shift_online(cars: Callable[..., Car], kiosk_city: KioskCity, screens_dir: Path) -> None:
    car = cars("full-shift", enrolled=False)
    page = car.page

    visible(page, "setup")
    page.locator("#setup-code").fill(kiosk_city.enrolment_code())
    screen(page, screens_dir, "kiosk-01-setup")
    page.locator("#setup-go").click()
    visible(page, "signin")
    wait_until(
        lambda: car.context.worker is not None and car.context.worker.last is not None, "the first sync"
    )
    page.locator("#signin-keys [data-pad-key='D']").click()
    screen(page, screens_dir, "kiosk-02-sign-in")
    for key in "01":
        page.locator(f"#signin-keys [data-pad-key='{key}']").click()
    page.locator("#signin-keys [data-pad-key='ok']").click()
    visible(page, "home")
    page.get_by_text("運転者: 佐々木 大輔").wait_for()
    screen(page, screens_dir, "kiosk-03-waiting-for-a-card")

    # Boarding with the PIN: the rider's given name and age band for a visual check, the balance.
    hold_card(car, kiosk_city, "hana")
    visible(page, "pin")
    page.locator(f"#pin-pad [data-pad-key='{f.CARD_PIN[0]}']").click()
    screen(page, screens_dir, "kiosk-04-pin-pad")
    for key in f.CARD_PIN[1:]:
        page.locator(f"#pin-pad [data-pad-key='{key}']").click()
    page.locator("#pin-pad [data-pad-key='ok']").click()
    visible(page, "boarded")
    assert page.locator("#boarded-name").inner_text() == "ハナ 様"
    assert page.locator("#boarded-age").inner_text() == "80代"
    assert page.locator("#boarded-balance").inner_text() == "23回"
    assert page.locator("#boarded-chip").inner_text().endswith("確定")
    screen(page, screens_dir, "kiosk-05-boarded-confirmed")
    done(car)

    # A program that allows a tap: no PIN pad at all.
    hold_card(car, kiosk_city, "kiyo")
    visible(page, "boarded")
    assert page.locator("#boarded-name").inner_text() == "キヨ 様"
    done(car)

    # A wrong PIN says how many tries are left, and the pad comes back.
    hold_card(car, kiosk_city, "ichiro")
    enter_pin(page, "0000" if f.CARD_PIN != "0000" else "1111")
    page.get_by_text("暗証番号が違います。あと2回間違えるとロックされます。").wait_for()
    screen(page, screens_dir, "kiosk-06-wrong-pin")
    enter_pin(page)
    visible(page, "boarded")
    done(car)

    # A card bound to nobody: the refusal in words for the passenger.
    hold_card(car, kiosk_city, "tabito")
    enter_pin(page)
    visible(page, "refused")
    assert "今回は通常料金になります" in page.locator("#refused-message").inner_text()
    screen(page, screens_dir, "kiosk-07-refused")
    done(car)

    # Alighting: a big number pad for the meter fare, then the amount to collect in big digits.
    alight(page, "ハナ")
    visible(page, "fare")
    for key in "1840":
        page.locator(f"#fare-pad [data-pad-key='{key}']").click()
    screen(page, screens_dir, "kiosk-08-meter-fare")
    page.locator("#fare-pad [data-pad-key='ok']").click()
    visible(page, "pay")
    assert page.locator("#pay-list .amount").inner_text() == "920円"
    assert page.locator("#pay-chip").inner_text().endswith("確定")
    screen(page, screens_dir, "kiosk-09-amount-to-collect")
    done(car)
    for name in ("キヨ", "一郎"):
        alight(page, name)
        enter_fare(page, "2500")
        done(car)

    # A shared ride: two cards, one meter, each pays their share.
    page.locator("#shared-toggle").click()
    page.locator("#shared-banner").wait_for(state="visible")
    for rider in ("yoshi", "haruko"):
        board_with_pin(car, kiosk_city, rider)
        done(car)
    screen(page, screens_dir, "kiosk-10-shared-ride-on-board")
    page.get_by_role("button", name="相乗りの降車・料金").click()
    enter_fare(page, "3000")
    assert page.locator("#pay-list .amount").all_inner_texts() == ["750円", "750円"]
    screen(page, screens_dir, "kiosk-11-shared-ride-each-pays")
    done(car)

    # A void within the window.
    board_with_pin(car, kiosk_city, "tadashi")
    done(car)
    page.locator("#void-open").click()
    visible(page, "void")
    page.locator("#void-list li", has_text="正").get_by_role("button").click()
    page.locator("#void-reasons").wait_for(state="visible")
    screen(page, screens_dir, "kiosk-12-void")
    page.get_by_role("button", name="お客様が乗車をやめた").click()
    page.get_by_text("取り消しました: 正 様").wait_for()
    page.locator("#void-back").click()

    # English for a visitor-facing moment, then back.
    page.locator("#lang").click()
    page.get_by_role("heading", name="Please hold the card to the reader").wait_for()
    screen(page, screens_dir, "kiosk-13-english")
    page.locator("#lang").click()
    page.get_by_role("heading", name="カードをかざしてください").wait_for()

    # End of the shift.
    page.locator("#signout-open").click()
    visible(page, "signout")
    screen(page, screens_dir, "kiosk-14-end-of-shift")
    page.locator("#signout-go").click()
    visible(page, "bye")
    assert page.locator("#bye-summary").inner_text() == "この乗務の乗車: 5件"  # the void does not count

    hana = kiosk_city.rides_of("hana")
    assert [(r.status, r.meter_fare, r.rider_share) for r in hana] == [(RideStatus.COMPLETED, 1840, 920)]
    assert [r.status for r in kiosk_city.rides_of("tadashi")] == [RideStatus.VOIDED]
    assert kiosk_city.balance("tadashi") == 24
    shared = kiosk_city.rides_of("yoshi") + kiosk_city.rides_of("haruko")
    assert [(r.meter_fare, r.subsidy_amount) for r in shared] == [(1500, 750), (1500, 750)]


def test_a_shift_with_the_api_stopped_and_restarted_in_the_middle(
    cars: Callable[..., Car], kiosk_city: KioskCity, screens_dir: Path
) -> None:
    car = cars("outage")
    page = car.page
    sign_in_driver(page, "D02")
    board_with_pin(car, kiosk_city, "masaru")
    done(car)
    alight(page, "勝")
    enter_fare(page, "1200")
    done(car)

    kiosk_city.api.stop()
    try:
        # The rider is accepted from the snapshot and shown as pending, not confirmed.
        board_with_pin(car, kiosk_city, "masaru")
        assert page.locator("#boarded-heading").inner_text() == "仮受付しました(未送信)"
        assert page.locator("#boarded-chip").inner_text().endswith("未送信・仮")
        assert page.locator("#boarded-balance-label").inner_text() == "残り(仮)"
        screen(page, screens_dir, "kiosk-15-boarded-pending")
        done(car)
        page.locator("#net.offline").wait_for()
        alight(page, "勝")
        enter_fare(page, "2600")
        assert page.locator("#pay-list .amount").inner_text() == "1,600円"  # 50 % up to ¥1,000
        page.get_by_text("圏外のため仮の金額です。通信が戻ると確定します。").wait_for()
        screen(page, screens_dir, "kiosk-16-amount-provisional")
        done(car)
        page.locator("#pending").wait_for(state="visible")
        screen(page, screens_dir, "kiosk-17-offline-waiting")
        page.locator("#sync-open").click()
        visible(page, "sync")
        page.get_by_text("未送信の記録: 2件").wait_for()
        screen(page, screens_dir, "kiosk-18-sending-pending")
        page.locator("#sync-back").click()
        assert len(kiosk_city.rides_of("masaru")) == 1  # only the ride from before the outage
    finally:
        kiosk_city.api.start()

    page.locator("#net.online").wait_for(timeout=30_000)
    page.locator("#pending").wait_for(state="hidden", timeout=30_000)
    rides = kiosk_city.rides_of("masaru")
    assert [(r.status, r.meter_fare, r.offline) for r in rides] == [
        (RideStatus.COMPLETED, 1200, False),
        (RideStatus.COMPLETED, 2600, True),
    ]
    assert kiosk_city.balance("masaru") == 22
    with Terminal.open(car.context.data_dir, clock=kiosk_city.clock.now) as terminal:
        assert [e.confirmed for e in terminal.store.entries()] == [True, True]


def test_an_exhausted_entitlement_used_offline_in_two_cars_is_one_conflict_for_the_driver_and_finance(
    cars: Callable[..., Car], kiosk_city: KioskCity, screens_dir: Path
) -> None:
    first, second = cars("car-a", vehicle=0), cars("car-b", vehicle=1)
    for car in (first, second):
        sign_in_driver(car.page, "D01" if car is first else "D02")
    kiosk_city.api.stop()
    try:
        for car in (first, second):
            board_with_pin(car, kiosk_city, "tome")
            assert car.page.locator("#boarded-balance").inner_text() == "0回"  # each car saw one ride left
            done(car)
            alight(car.page, "トメ")
            enter_fare(car.page, "1500")
            done(car)
    finally:
        kiosk_city.api.start()

    for car in (first, second):
        car.page.locator("#pending").wait_for(state="hidden", timeout=30_000)
    wait_until(
        lambda: any(car.page.locator("#attention").is_visible() for car in (first, second)), "a conflict"
    )
    flagged = [car for car in (first, second) if car.page.locator("#attention").is_visible()]
    assert len(flagged) == 1
    page = flagged[0].page
    page.locator("#attention").click()
    visible(page, "sync")
    item = page.locator(".attention-item.conflict")
    item.get_by_text("記録しましたが、市の確認が必要です").wait_for()
    item.get_by_text("今年度の利用回数(残高)を使い切っています。今回は通常料金になります。").wait_for()
    screen(page, screens_dir, "kiosk-19-conflict-explained")
    item.get_by_role("button", name="確認しました").click()
    page.locator("#attention-none").wait_for(state="visible")

    rides = kiosk_city.rides_of("tome")
    assert len(rides) == 2  # both rides happened; neither is lost
    assert kiosk_city.balance("tome") == 0
    token = httpx.post(
        f"{kiosk_city.api.base_url}/api/v1/auth/token",
        json={"username": "kiosk-keiri", "password": f.PASSWORD},
        timeout=10,
    ).json()["access_token"]
    review = httpx.get(
        f"{kiosk_city.api.base_url}/api/v1/rides/under-review", headers=f.bearer(token), timeout=10
    ).json()
    mine = [item for item in review if item["ride_id"] in {r.id for r in rides}]
    assert [(item["kind"], item["code"]) for item in mine] == [("conflict", "entitlement.exhausted")]
