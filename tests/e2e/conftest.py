"""The e2e world: the real API and the reader bridge served on 127.0.0.1 in threads, one fresh migrated
database with committed data (PostgreSQL when TEST_DATABASE_URL is set, else SQLite), a mock city with
residents and their virtual cards, and one headless Debian Chromium for the whole session.

Tests skip when /usr/bin/chromium or Playwright is missing, and fail instead when CI=true. No browser is
ever downloaded: Playwright drives the system Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from auth_mock.bridge import ReaderSlot, create_bridge_app
from auth_mock.issuer import CardHolder
from auth_mock.issuer_http import create_issuer_app
from tests import factories as f
from tests.conftest import (
    IN_CI,
    RecordingTaskSender,
    create_postgres_database,
    drop_postgres_database,
    postgres_admin_url,
)
from tests.privacy import SUITE_SECRETS, describe, scan_database
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import (
    BindingMethod,
    District,
    Municipality,
    Operator,
    Program,
    ProgramExclusion,
    Resident,
    ResidentStatus,
    StaffRole,
    StaffUser,
)
from voucher_api.services import entitlements, identity, staff
from voucher_api.services.identity import CardVerifier
from voucher_api.services.program_rules import validate_rules
from voucher_api.services.revocation import OcspCrlChecker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)  # 10:00 in Japan, a Thursday of fiscal year 2026
CARDS_ISSUED = datetime(2026, 4, 1, tzinfo=UTC)
CITY_CONTACT = "尾花沢市役所 福祉課 高齢者支援係 0237-22-1111(平日8時30分〜17時15分)"
SCREENS = os.environ.get("E2E_SCREENSHOTS_DIR")

# Counts what reaches the page from a keyboard, what is typed into fields, the resident's pad presses,
# and every other tap; kept per tab across page loads.
COUNTING_SCRIPT = """
(() => {
  const empty = '{"keys":0,"typed":0,"pad":0,"taps":0}';
  const load = () => JSON.parse(sessionStorage.getItem("__e2e_counts") || empty);
  const save = (c) => sessionStorage.setItem("__e2e_counts", JSON.stringify(c));
  document.addEventListener("keydown", () => { const c = load(); c.keys += 1; save(c); }, true);
  document.addEventListener("input", (e) => {
    if (e.target && e.target.matches && e.target.matches("input, textarea, [contenteditable]")) {
      const c = load(); c.typed += 1; save(c);
    }
  }, true);
  document.addEventListener("click", (e) => {
    const c = load();
    if (e.target.closest && e.target.closest("[data-pad-key]")) c.pad += 1;
    else if (e.target.closest && e.target.closest("button, a, summary")) c.taps += 1;
    save(c);
  }, true);
})();
"""


def _require(condition: bool, why: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"e2e tests need {why} in CI")
    pytest.skip(f"e2e tests skipped: {why}")


class RunningClock:
    """The city's clock in the e2e world: starts at START and runs with real time (waits are measured)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.started = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.started)

    def advance(self, seconds: float) -> None:
        """Jump ahead (a card challenge outliving its TTL) without waiting for it; never goes back."""
        self.start += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Person:
    """A registry resident (or, with in_registry False, a visitor) and the card they carry."""

    key: str
    family: str
    given: str
    family_kana: str
    given_kana: str
    sex: str
    birth: date
    district: str
    licence: str = "returned"
    disability: tuple[tuple[str, str], ...] = ()
    card_kind: str | None = "standard"
    in_registry: bool = True

    @property
    def address(self) -> str:
        return ADDRESSES[self.district] + f"{self.birth.month}番{self.birth.day}号"

    @property
    def name(self) -> str:
        return f"{self.family} {self.given}"


ADDRESSES = {
    "01": "山形県尾花沢市若葉町一丁目",
    "02": "山形県尾花沢市大字宮沢",
    "03": "山形県尾花沢市大字玉野",
    "04": "山形県尾花沢市大字上柳",
    "05": "山形県尾花沢市大字延沢",
}

PEOPLE = (
    Person("hana", "山田", "ハナ", "ヤマダ", "ハナ", "female", date(1941, 5, 10), "01"),
    Person("tome", "佐藤", "トメ", "サトウ", "トメ", "female", date(1950, 3, 3), "03", licence="held"),
    Person("ichiro", "鈴木", "一郎", "スズキ", "イチロウ", "male", date(1948, 8, 8), "01"),
    Person("ken", "高橋", "健", "タカハシ", "ケン", "male", date(1980, 1, 20), "02", licence="held"),
    Person(
        "kiyo",
        "渡辺",
        "キヨ",
        "ワタナベ",
        "キヨ",
        "female",
        date(1955, 2, 2),
        "02",
        "held",
        (("physical", "1"),),
    ),
    Person("tadashi", "伊藤", "正", "イトウ", "タダシ", "male", date(1945, 9, 9), "01"),
    Person("sachi", "中村", "サチ", "ナカムラ", "サチ", "female", date(1944, 4, 4), "04", card_kind="locked"),
    Person(
        "shigeru", "小林", "茂", "コバヤシ", "シゲル", "male", date(1946, 6, 16), "05", card_kind="revoked"
    ),
    Person("mitsu", "加藤", "ミツ", "カトウ", "ミツ", "female", date(1943, 7, 7), "05", card_kind="expired"),
    Person("tabito", "吉田", "旅人", "ヨシダ", "タビト", "male", date(1949, 1, 1), "01", in_registry=False),
    Person("masaru", "山本", "勝", "ヤマモト", "マサル", "male", date(1942, 2, 12), "01"),
    Person("haruko", "松本", "春子", "マツモト", "ハルコ", "female", date(1947, 11, 3), "01"),
    Person(
        "toshi",
        "井上",
        "トシ",
        "イノウエ",
        "トシ",
        "female",
        date(1940, 10, 1),
        "03",
        card_kind="face_recognition",
    ),
    Person("yoshi", "木村", "ヨシ", "キムラ", "ヨシ", "female", date(1946, 12, 24), "02"),
    # The mobile office losing its network (test_mobile_offline) and the resident look-up's "end".
    Person("fumi", "斎藤", "フミ", "サイトウ", "フミ", "female", date(1942, 3, 21), "04"),
    Person("sumi", "池田", "スミ", "イケダ", "スミ", "female", date(1943, 8, 18), "01"),
    Person("nobu", "森", "ノブ", "モリ", "ノブ", "female", date(1945, 6, 6), "02"),
    Person("kazuo", "清水", "和夫", "シミズ", "カズオ", "male", date(1944, 12, 5), "05"),
)

PROGRAMS: dict[str, dict[str, Any]] = {
    "elderly": {
        "name": "高齢者おもいやりタクシー",
        "name_en": "Taxi tickets for elderly residents without a car licence",
        "rules": {
            "eligibility": [
                {"type": "min_age", "years": 75},
                {"type": "car_licence", "states": ["none", "returned"]},
            ],
            "subsidy": {"formula": "ticket", "ticket_value": 500, "max_tickets_per_ride": 2},
            "grant": {"unit": "ticket", "amount": 24},
            "limits": {"per_day": 2},
            "options": {},
        },
    },
    "disability": {
        "name": "障がい者福祉タクシー",
        "name_en": "Welfare taxi for people with a disability certificate",
        "rules": {
            "eligibility": [
                {"type": "disability", "certificates": [{"kind": "physical", "grades": ["1", "2"]}]}
            ],
            "subsidy": {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000},
            "grant": {"unit": "ride", "amount": 36},
            "limits": {"per_month": 6},
            "options": {},
        },
    },
    "bus_abolished": {
        "name": "路線バス廃止地区デマンド補助",
        "name_en": "Demand taxi subsidy for districts whose bus routes were abolished",
        "rules": {
            "eligibility": [
                {"type": "district", "districts": ["03", "05"]},
                {"type": "min_age", "years": 65},
            ],
            "subsidy": {"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000},
            "grant": {"unit": "ride", "amount": 48},
            "limits": {"per_day": 2},
            "options": {"tap_allowed": True},
        },
    },
}


@dataclass
class World:
    """What the e2e tests drive and look into."""

    base_url: str
    bridge_url: str
    engine: Engine
    sessions: sessionmaker[Session]
    card_dir: Path
    residents: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    municipality_id: int = 0
    clock: RunningClock | None = None

    def insert_card(self, name: str) -> None:
        """The resident puts their card on the counter's reader."""
        r = httpx.post(f"{self.bridge_url}/reader/insert", json={"card": f"{name}.json"}, timeout=10)
        assert r.status_code == 200, r.text

    def eject_card(self) -> None:
        httpx.post(f"{self.bridge_url}/reader/eject", timeout=10)

    def staff_token(self, username: str) -> str:
        r = httpx.post(
            f"{self.base_url}/api/v1/auth/token",
            json={"username": username, "password": f.PASSWORD},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def _serve(server: BaseWSGIServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=f"e2e-{server.port}", daemon=True)
    thread.start()
    return thread


def _seed(session: Session, world: World, verifier: CardVerifier, cards: dict[str, Path]) -> None:
    mun = Municipality(
        code="062120",
        name="尾花沢市",
        name_kana="オバナザワシ",
        prefecture="山形県",
        contact=CITY_CONTACT,
        created_at=f.NOW,
    )
    session.add(mun)
    session.flush()
    world.municipality_id = mun.id
    names = {"01": "尾花沢", "02": "宮沢", "03": "玉野", "04": "常盤", "05": "福原"}
    for code, name in names.items():
        session.add(District(municipality_id=mun.id, code=code, name=name, name_kana=""))
    session.flush()
    district_ids = {
        d.code: d.id for d in session.scalars(select(District).where(District.municipality_id == mun.id))
    }
    for username, display, role in (
        ("madoguchi", "福祉課 窓口担当", StaffRole.COUNTER),
        ("idou", "福祉課 移動市役所担当", StaffRole.MOBILE_OFFICE),
    ):
        staff.create_staff(
            session,
            municipality_id=mun.id,
            username=username,
            display_name=display,
            password=f.PASSWORD,
            roles=[role],
            now=f.NOW,
        )
    session.add(
        Operator(
            municipality_id=mun.id,
            code="OP01",
            name="尾花沢タクシー株式会社",
            name_kana="オバナザワタクシー(カ",
            contact="0237-22-0101",
            bank_code="0122",
            branch_code="451",
            account_type="ordinary",
            account_number="1234567",
            account_holder_kana="オバナザワタクシー(カ",
            created_at=f.NOW,
        )
    )
    made: dict[str, Program] = {}
    for code, spec in PROGRAMS.items():
        program = Program(
            municipality_id=mun.id,
            code=code,
            name=spec["name"],
            name_en=spec["name_en"],
            fiscal_year=2026,
            valid_from=date(2026, 4, 1),
            valid_to=date(2027, 3, 31),
            created_at=f.NOW,
            **validate_rules(spec["rules"]),
        )
        session.add(program)
        session.flush()
        made[code] = program
    for a in made.values():
        for b in made.values():
            if a.id != b.id:
                session.add(ProgramExclusion(program_id=a.id, excluded_program_id=b.id))
    world.programs = {code: p.id for code, p in made.items()}
    clerk = session.scalar(select(StaffUser).where(StaffUser.username == "madoguchi"))
    assert clerk is not None
    for n, person in enumerate(PEOPLE, start=1):
        if not person.in_registry:
            continue
        resident = Resident(
            municipality_id=mun.id,
            registry_id=f"062120-{n:07d}",
            household_id=f"H{n:07d}",
            family_name=person.family,
            given_name=person.given,
            family_name_kana=person.family_kana,
            given_name_kana=person.given_kana,
            sex=person.sex,
            birth_date=person.birth,
            address=person.address,
            district_id=district_ids[person.district],
            car_licence=person.licence,
            disability_certificates=[{"kind": k, "grade": g} for k, g in person.disability],
            status=ResidentStatus.RESIDENT,
            synced_at=f.NOW,
        )
        session.add(resident)
        session.flush()
        world.residents[person.key] = resident.id
    # Already enrolled and granted: 山本 勝. Lost card: 松本 春子's old card is bound.
    for key, card in (("masaru", cards["masaru"]), ("haruko", cards["haruko-old"])):
        reader = f.card_reader(card)
        verified = verifier.verify_certificate(
            reader.read_user_certificate(), [reader.read_user_ca_certificate()], START
        )
        identity.bind_card(
            session,
            resident_id=world.residents[key],
            municipality_id=mun.id,
            card=verified,
            method=BindingMethod.SIGNATURE_CERTIFICATE,
            staff_id=clerk.id,
            now=START - timedelta(days=30),
        )
    entitlements.grant(
        session,
        resident_id=world.residents["masaru"],
        program=made["elderly"],
        application_id=None,
        actor=f"staff:{clerk.id}",
        now=START - timedelta(days=30),
    )


def _issue_cards(issuer: Any, directory: Path) -> dict[str, Path]:
    """A card per person (two for the lost and reissued one), named <key>.json in the reader's directory."""
    cards: dict[str, Path] = {}
    wanted = [(p, p.key) for p in PEOPLE] + [(next(p for p in PEOPLE if p.key == "haruko"), "haruko-old")]
    for n, (person, name) in enumerate(wanted, start=1):
        holder = CardHolder(
            family_name=person.family,
            given_name=person.given,
            family_name_kana=person.family_kana,
            given_name_kana=person.given_kana,
            sex=person.sex,
            birth_date=person.birth,
            address=person.address,
            municipality_code="062120",
            registry_id=f"062120-{n:07d}",
        )
        kind = person.card_kind or "standard"
        issued_now = START if kind in ("revoked", "expired") else CARDS_ISSUED
        out = directory / f"{name}.json"
        issuer.issue_card(
            holder, pin=f.CARD_PIN, password=f.CARD_PASSWORD, kind=kind, out=out, now=issued_now
        )
        cards[name] = out
    return cards


@pytest.fixture(scope="session")
def e2e_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    admin = postgres_admin_url()
    if admin:
        url = create_postgres_database(admin, "voucher_e2e")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('e2e-db') / 'e2e.sqlite3'}"
    migrate.upgrade(url)
    yield url
    # The privacy guard over everything the browser journeys committed (tests/privacy.py).
    engine = make_engine(url)
    try:
        findings = scan_database(engine, SUITE_SECRETS)
    finally:
        engine.dispose()
        if admin:
            drop_postgres_database(admin, url)
    assert not findings, describe(findings)


@pytest.fixture(scope="session")
def world(
    e2e_database_url: str, settings: Settings, issuer: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    _require(CHROMIUM.exists(), f"{CHROMIUM} (apt-get install chromium)")
    _require(importlib.util.find_spec("playwright") is not None, "the playwright package")
    _require(importlib.util.find_spec("axe_playwright_python") is not None, "axe-playwright-python")
    clock = RunningClock(START)
    card_dir = tmp_path_factory.mktemp("reader")
    cards = _issue_cards(issuer, card_dir)
    checker = OcspCrlChecker(
        httpx.Client(transport=httpx.WSGITransport(app=create_issuer_app(issuer, clock=clock.now))),
        cache_for=timedelta(minutes=5),
    )
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes(), checker)
    engine = make_engine(e2e_database_url)
    sessions = make_session_factory(engine)
    app = create_app(
        settings, session_factory=sessions, clock=clock, verifier=verifier, task_sender=RecordingTaskSender()
    )
    api_server = make_server("127.0.0.1", 0, app, threaded=True)
    base_url = f"http://127.0.0.1:{api_server.port}"
    bridge_app = create_bridge_app(ReaderSlot(card_dir), allowed_origin=base_url)
    bridge_server = make_server("127.0.0.1", 0, bridge_app, threaded=True)
    bridge_url = f"http://127.0.0.1:{bridge_server.port}"
    app.config["CARD_BRIDGE_URL"] = bridge_url
    world = World(base_url, bridge_url, engine, sessions, card_dir, clock=clock)
    with sessions() as session:
        _seed(session, world, verifier, cards)
        session.commit()
    threads = [_serve(api_server), _serve(bridge_server)]
    yield world
    for server in (api_server, bridge_server):
        server.shutdown()
        server.server_close()
    for thread in threads:
        thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def browser(world: World) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any, world: World) -> Iterator[Any]:
    ctx = browser.new_context(
        viewport={"width": 1280, "height": 900},
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        base_url=world.base_url,
    )
    ctx.add_init_script(COUNTING_SCRIPT)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any, world: World) -> Iterator[Any]:
    world.eject_card()
    tab = context.new_page()
    yield tab
    world.eject_card()


@pytest.fixture(scope="session")
def screens_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if SCREENS:
        path = Path(SCREENS)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screens")


def slip_png(pdf: bytes, out: Path) -> None:
    """Render a slip's first page to PNG for the docs (pdftoppm, when it is installed)."""
    if shutil.which("pdftoppm") is None:
        return
    source = out.with_suffix(".pdf")
    source.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "70", "-png", "-singlefile", str(source), str(out.with_suffix(""))], check=True
    )
    source.unlink()


def counts(page: Any) -> dict[str, int]:
    raw = page.evaluate("sessionStorage.getItem('__e2e_counts')")
    return dict(json.loads(raw)) if raw else {"keys": 0, "typed": 0, "pad": 0, "taps": 0}


# --- what the tests do with the page --------------------------------------------------------------


def sign_in(page: Any, username: str = "madoguchi", *, next_path: str | None = None) -> None:
    """Staff sign in (the one place they type, once per shift); the key counters start after it."""
    target = "/staff/sign-in" + (f"?next={next_path}" if next_path else "")
    page.goto(target)
    page.get_by_label("ユーザー名").fill(username)
    page.get_by_label("パスワード").fill(f.PASSWORD)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(lambda url: "/sign-in" not in url)
    page.evaluate("sessionStorage.removeItem('__e2e_counts')")


def press_pad(page: Any, text: str) -> None:
    """The resident taps the keys of the on-screen pad, then 決定."""
    pad = page.locator(".pad, .keyboard").first
    for key in text:
        pad.locator(f"[data-pad-key='{key}']").click()
    pad.locator("[data-pad-key='ok']").click()


def enter_pin(page: Any, pin: str = f.CARD_PIN) -> None:
    page.get_by_role("heading", name="暗証番号の入力").wait_for()
    press_pad(page, pin)


def enter_password(page: Any, password: str = f.CARD_PASSWORD) -> None:
    page.get_by_role("heading", name="署名用パスワードの入力").wait_for()
    press_pad(page, password)


def wait_for_form(page: Any) -> None:
    page.get_by_role("heading", name="申請内容(カードと住民票から自動入力)").wait_for()


def shot(page: Any, screens: Path, name: str) -> None:
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


def assert_accessible(page: Any) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    violations = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert violations == [], json.dumps(violations, ensure_ascii=False, indent=1)


def assert_reflows_at_200_percent(page: Any) -> None:
    """At 200 % zoom (half the CSS width of a 1280 px tablet) nothing needs sideways scrolling."""
    size = page.viewport_size
    page.set_viewport_size({"width": 640, "height": 450})
    try:
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 200 % zoom"
    finally:
        page.set_viewport_size(size)


def check_screen(page: Any, screens: Path, name: str) -> None:
    """Every screen: a screenshot for the docs, axe-core, and reflow at 200 % zoom."""
    shot(page, screens, name)
    assert_accessible(page)
    assert_reflows_at_200_percent(page)
