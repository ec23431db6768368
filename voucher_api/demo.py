"""The demo city: a mock Obanazawa with residents, programs, operators, terminals, cards and a month of rides.

Issue 2 point 10. Everything goes through the real services (applications.apply, identity.bind_card,
terminals.create_terminal/enrol, rides.board/complete/void) with a simulated clock, inside one database
transaction: a seed happens completely or not at all. Running it again finds the municipality and only
describes what is there.

Rides of residents who hold one of the demo's virtual cards are boarded with a real card proof (a signed
challenge). The other residents have no card file, so their boardings take `redeem_without_card`, which
consumes the entitlement exactly as `rides.board` does after the card check. Those rides carry no card
binding (`binding_id` is NULL), which tells them apart in the data.
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import logging
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jpholiday
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from auth_mock import cli as mock_card
from auth_mock.issuer import Issuer
from auth_mock.reader import JPKIReader, VirtualCardTransport
from auth_mock.registry import DISTRICTS, Registry, RegistryPerson
from voucher_api.clock import (
    JST,
    Clock,
    FixedClock,
    fiscal_year_of,
    fiscal_year_start,
    japan_date,
    next_month,
    previous_month,
)
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import (
    Application,
    ApplicationChannel,
    ApplicationStatus,
    District,
    Driver,
    Entitlement,
    EntitlementStatus,
    Municipality,
    Operator,
    Program,
    ProgramExclusion,
    Resident,
    ResidentStatus,
    Ride,
    RideStatus,
    StaffRole,
    StaffUser,
    Terminal,
    TerminalStatus,
    Vehicle,
)
from voucher_api.services import applications, enrolment, identity, rides, staff, terminals
from voucher_api.services.errors import DomainError, Forbidden, Refused
from voucher_api.services.identity import CardProof, CardVerifier
from voucher_api.services.program_rules import PersonFacts, evaluate_predicate, validate_rules
from voucher_api.services.tokens import Principal

MUNICIPALITY_CODE = "062120"
DEFAULT_ISSUER_URL = "http://127.0.0.1:8001"
REGISTRY_SEED = 2025

# Demo credentials. They are printed by the start command on purpose: this is a demo city.
DEMO_STAFF_PASSWORD = "demo-pass-2026"  # noqa: S105
DEMO_CARD_PIN = "1234"
DEMO_CARD_PASSWORD = "ABC123"  # noqa: S105

log = logging.getLogger(__name__)


# --- the city's fixed data -----------------------------------------------------------------------

MUNICIPALITY = {
    "code": MUNICIPALITY_CODE,
    "name": "尾花沢市",
    "name_kana": "オバナザワシ",
    "prefecture": "山形県",
    "contact": "尾花沢市役所 福祉課 0237-22-1111",
}

# 全銀 remitter: the city's account at 山形銀行 (0122) 尾花沢支店 (451); zengin-code knows both codes.
REMITTER = {
    "requester_code": "0621200001",
    "requester_name_kana": "オバナザワシ",
    "bank_code": "0122",
    "branch_code": "451",
    "account_type": "ordinary",
    "account_number": "0100223",
}


@dataclass(frozen=True)
class StaffSpec:
    username: str
    display_name: str
    roles: tuple[StaffRole, ...]


CITY_STAFF: tuple[StaffSpec, ...] = (
    StaffSpec("madoguchi", "福祉課 窓口担当", (StaffRole.COUNTER,)),
    StaffSpec("idou", "福祉課 移動市役所担当", (StaffRole.MOBILE_OFFICE,)),
    StaffSpec("keiri", "会計課 精算担当", (StaffRole.FINANCE,)),
    StaffSpec("shonin", "会計課長(承認)", (StaffRole.FINANCE_APPROVER,)),
    # Small offices give one person both roles: the four-eyes rule then refuses them approving a
    # statement they confirmed themselves (statement.same_person), which the demo should let you see.
    StaffSpec("kenmu", "会計課 係長(精算・承認を兼務)", (StaffRole.FINANCE, StaffRole.FINANCE_APPROVER)),
    StaffSpec("kansa", "監査委員事務局", (StaffRole.AUDITOR,)),
    StaffSpec("admin", "情報政策係 システム管理者", (StaffRole.ADMIN,)),
)


@dataclass(frozen=True)
class OperatorSpec:
    code: str
    name: str
    name_kana: str
    contact: str
    bank_code: str
    branch_code: str
    account_number: str
    account_holder_kana: str
    plate_kana: str
    vehicles: int
    admin_username: str


# The bank/branch pairs exist in zengin-code: 山形銀行 尾花沢・大石田, きらやか銀行 尾花沢,
# 北郡信用組合 尾花沢, みちのく村山農協 尾花沢.
OPERATORS: tuple[OperatorSpec, ...] = (
    OperatorSpec(
        code="OP01",
        name="尾花沢タクシー株式会社",
        name_kana="オバナザワタクシーカブシキガイシャ",
        contact="0237-22-0101",
        bank_code="0122",
        branch_code="451",
        account_number="0345120",
        account_holder_kana="カ)オバナザワタクシー",
        plate_kana="あ",
        vehicles=9,
        admin_username="op01",
    ),
    OperatorSpec(
        code="OP02",
        name="銀山観光タクシー有限会社",
        name_kana="ギンザンカンコウタクシーユウゲンガイシャ",
        contact="0237-28-0202",
        bank_code="0508",
        branch_code="332",
        account_number="0211874",
        account_holder_kana="ユ)ギンザンカンコウタクシー",
        plate_kana="い",
        vehicles=7,
        admin_username="op02",
    ),
    OperatorSpec(
        code="OP03",
        name="徳良湖交通株式会社",
        name_kana="トクラココウツウカブシキガイシャ",
        contact="0237-22-0303",
        bank_code="2083",
        branch_code="003",
        account_number="0056391",
        account_holder_kana="カ)トクラココウツウ",
        plate_kana="う",
        vehicles=5,
        admin_username="op03",
    ),
    OperatorSpec(
        code="OP04",
        name="花笠ハイヤー株式会社",
        name_kana="ハナガサハイヤーカブシキガイシャ",
        contact="0237-23-0404",
        bank_code="3960",
        branch_code="012",
        account_number="0730218",
        account_holder_kana="カ)ハナガサハイヤー",
        plate_kana="え",
        vehicles=5,
        admin_username="op04",
    ),
    OperatorSpec(
        code="OP05",
        name="宮沢合同タクシー",
        name_kana="ミヤサワゴウドウタクシー",
        contact="0237-25-0505",
        bank_code="0122",
        branch_code="452",
        account_number="0418057",
        account_holder_kana="ミヤサワゴウドウタクシー",
        plate_kana="か",
        vehicles=4,
        admin_username="op05",
    ),
)

# Which companies residents of each district call, with weights (the local company first).
DISTRICT_OPERATORS: dict[str, dict[str, int]] = {
    "01": {"OP01": 6, "OP03": 3, "OP04": 2, "OP02": 1},
    "02": {"OP05": 6, "OP01": 2, "OP03": 1},
    "03": {"OP04": 5, "OP01": 2, "OP03": 1},
    "04": {"OP03": 5, "OP01": 2, "OP04": 1},
    "05": {"OP02": 6, "OP01": 1},
}

DRIVER_FAMILY = [
    "佐藤",
    "鈴木",
    "高橋",
    "斎藤",
    "阿部",
    "押切",
    "奥山",
    "大山",
    "庄司",
    "小関",
    "板垣",
    "芳賀",
]
DRIVER_GIVEN = [
    "健一",
    "正樹",
    "浩二",
    "誠",
    "和也",
    "一郎",
    "美智子",
    "幸子",
    "勝",
    "修",
    "隆",
    "恵子",
    "茂",
]

MOBILE_STOPS: dict[str, tuple[str, ...]] = {
    "01": ("尾花沢市役所 駐車場", "若葉町公民館", "朧気集会所", "五十沢公民館"),
    "02": ("宮沢地区公民館", "原田集会所", "二藤袋公民館", "北郷集会所"),
    "03": ("玉野地区公民館", "母袋集会所", "牛房野集会所"),
    "04": ("常盤地区公民館", "丹生集会所", "名木沢集会所", "正厳公民館"),
    "05": ("福原地区公民館", "延沢集会所", "銀山温泉 観光案内所"),
}


def program_specs() -> list[dict[str, Any]]:
    """The three mutually exclusive programs of the demo city (rules in the shape program_rules validates)."""
    return [
        {
            "code": "elderly",
            "name": "高齢者おもいやりタクシー",
            "name_en": "Taxi tickets for elderly residents without a car licence",
            "rules": {
                "eligibility": [
                    {"type": "min_age", "years": 75, "on": "fiscal_year_start"},
                    {"type": "car_licence", "states": ["none", "returned"]},
                ],
                "subsidy": {"formula": "ticket", "ticket_value": 500, "max_tickets_per_ride": 2},
                "grant": {"unit": "ticket", "amount": 24},
                "limits": {"per_day": 2},
                "options": {},
            },
        },
        {
            "code": "disability",
            "name": "障がい者福祉タクシー",
            "name_en": "Welfare taxi for people with a disability certificate",
            "rules": {
                "eligibility": [
                    {
                        "type": "disability",
                        "certificates": [
                            {"kind": "physical", "grades": ["1", "2"]},
                            {"kind": "intellectual", "grades": ["A"]},
                            {"kind": "mental", "grades": ["1"]},
                        ],
                    }
                ],
                "subsidy": {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000},
                "grant": {"unit": "ride", "amount": 36},
                "limits": {"per_month": 6},
                "options": {},
            },
        },
        {
            "code": "bus_abolished",
            "name": "路線バス廃止地区デマンド補助",
            "name_en": "Demand taxi subsidy for districts whose bus routes were abolished",
            "rules": {
                "eligibility": [
                    {"type": "district", "districts": ["03", "05"]},
                    {"type": "min_age", "years": 65, "on": "fiscal_year_start"},
                ],
                "subsidy": {"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000},
                "grant": {"unit": "ride", "amount": 48},
                "limits": {"per_day": 2},
                "options": {"tap_allowed": True},
            },
        },
    ]


PROGRAM_ORDER = ("elderly", "disability", "bus_abolished")


# --- the summary ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffLogin:
    username: str
    display_name: str
    roles: tuple[str, ...]
    password: str


@dataclass(frozen=True)
class DemoCard:
    path: Path
    registry_id: str
    resident_name: str
    program_code: str | None
    pin: str
    password: str


@dataclass(frozen=True)
class DemoTerminal:
    terminal_id: int
    operator_name: str
    vehicle_registration: str
    key_path: Path


@dataclass(frozen=True)
class DemoSummary:
    """What the seed made (or found): printed by the start command."""

    created: bool
    municipality_code: str
    municipality_name: str
    residents: int
    applications_approved: int
    applications_rejected: int
    entitlements: dict[str, int]
    operators: int
    vehicles: int
    drivers: int
    ride_month: date | None
    rides_completed: int
    rides_voided: int
    rides_with_card: int
    subsidy_total: int
    staff: list[StaffLogin]
    cards: list[DemoCard]
    terminals: list[DemoTerminal]
    timings: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary in Japanese, one printable line each."""
        head = "デモデータを作成しました" if self.created else "デモデータは作成済みです(変更なし)"
        out = [
            f"{head}: {self.municipality_name}(地方公共団体コード {self.municipality_code})",
            f"  住民 {self.residents:,}人 / 申請 承認 {self.applications_approved:,}件・"
            f"却下 {self.applications_rejected:,}件",
            "  受給資格: " + "、".join(f"{code} {n:,}人" for code, n in self.entitlements.items()),
            f"  事業者 {self.operators}社 / 車両 {self.vehicles}台 / 乗務員 {self.drivers}人 / "
            f"端末 {len(self.terminals)}台",
        ]
        if self.ride_month is not None:
            out.append(
                f"  乗車 {self.ride_month:%Y年%m月}: 完了 {self.rides_completed:,}件"
                f"(うちカード認証 {self.rides_with_card:,}件)・取消 {self.rides_voided:,}件・"
                f"助成額 合計 {self.subsidy_total:,}円"
            )
        out.append(f"  職員アカウント(デモ用パスワード: {DEMO_STAFF_PASSWORD}):")
        for login in self.staff:
            out.append(f"    {login.username:<10} {login.display_name}({', '.join(login.roles)})")
        if self.cards:
            out.append(f"  仮想カード(暗証番号 {DEMO_CARD_PIN} / 署名用パスワード {DEMO_CARD_PASSWORD}):")
            for card in self.cards:
                out.append(f"    {card.path}  {card.resident_name}({card.program_code or '対象外'})")
        if self.terminals:
            first = self.terminals[0]
            out.append(
                f"  車載端末の鍵: {first.key_path.parent}/<端末ID>.key(例: 端末 {first.terminal_id} "
                f"{first.operator_name} {first.vehicle_registration})"
            )
        if self.timings:
            out.append("  所要時間: " + "、".join(f"{k} {v:.1f}秒" for k, v in self.timings.items()))
        return out


# --- the entry point -----------------------------------------------------------------------------


def seed_demo(
    settings: Settings,
    *,
    var_dir: Path,
    clock: Clock,
    cards: int = 12,
    size: int = 14_000,
    issuer_base_url: str = DEFAULT_ISSUER_URL,
    rides_per_entitlement: float = 2.5,
    seed: int = REGISTRY_SEED,
    session_factory: sessionmaker[Session] | None = None,
) -> DemoSummary:
    """Seed the demo city once; a second run changes nothing and describes what is there.

    The municipality's code decides whether the city exists. The registry (`var_dir/registry.sqlite3`,
    `size` people) and the issuer (`var_dir/issuer`) are created when missing and reused otherwise.
    The month of rides is the calendar month before `clock.now()` in Japan time; the programs are those
    of the fiscal year that month belongs to. Everything in the database is one transaction; files made
    by a failed run (card files, terminal keys) are removed again. Raises whatever a service raises
    for data it refuses (a bug in the seed, not an expected outcome), and ValueError for bad arguments.
    """
    if cards < 0 or size < 1 or rides_per_entitlement < 0:
        raise ValueError("cards, size and rides_per_entitlement must not be negative")
    if session_factory is None:
        engine = make_engine(settings.database_url)
        try:
            return seed_demo(
                settings,
                var_dir=var_dir,
                clock=clock,
                cards=cards,
                size=size,
                issuer_base_url=issuer_base_url,
                rides_per_entitlement=rides_per_entitlement,
                seed=seed,
                session_factory=make_session_factory(engine),
            )
        finally:
            engine.dispose()
    var_dir = Path(var_dir)
    with session_factory() as session:
        existing = session.scalar(select(Municipality).where(Municipality.code == MUNICIPALITY_CODE))
        if existing is not None:
            return describe_demo(session, existing, var_dir=var_dir, created=False)

    timings: dict[str, float] = {}
    with _timed(timings, "住民台帳"):
        registry = open_registry(var_dir / "registry.sqlite3", size=size, seed=seed)
        try:
            people = list(registry.iter_people(municipality_code=MUNICIPALITY_CODE))
        finally:
            registry.close()
    now = clock.now()
    with _timed(timings, "発行者"):
        issuer = Issuer.open_or_create(var_dir / "issuer", base_url=issuer_base_url, now=now)
    verifier = CardVerifier.from_pem(issuer.root_certificate_pem_path.read_bytes())

    written: list[Path] = []
    try:
        with session_factory() as session, session.begin():
            seeder = _Seeder(
                session=session,
                settings=settings,
                var_dir=var_dir,
                now=now,
                rng=random.Random(seed),
                issuer=issuer,
                verifier=verifier,
                written=written,
            )
            seeder.run(people, cards=cards, rides_per_entitlement=rides_per_entitlement, timings=timings)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    with session_factory() as session:
        mun = session.scalar(select(Municipality).where(Municipality.code == MUNICIPALITY_CODE))
        assert mun is not None
        summary = describe_demo(session, mun, var_dir=var_dir, created=True)
    return dataclasses.replace(summary, timings=timings)


@contextmanager
def _timed(timings: dict[str, float], label: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[label] = timings.get(label, 0.0) + time.perf_counter() - started


def open_registry(path: Path, *, size: int, seed: int = REGISTRY_SEED) -> Registry:
    """The registry file at `path`, generating the demo city's population into it when it has none."""
    if path.is_file():
        registry = Registry.open(path)
        if MUNICIPALITY_CODE in registry.municipality_codes():
            return registry
        registry.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    return Registry.generate(path, municipality_code=MUNICIPALITY_CODE, size=size, seed=seed)


# --- registry synchronisation --------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    inserted: int
    updated: int
    unchanged: int


_SYNCED_FIELDS = (
    "household_id",
    "family_name",
    "given_name",
    "family_name_kana",
    "given_name_kana",
    "sex",
    "birth_date",
    "address",
    "district_id",
    "car_licence",
    "licence_returned_on",
    "disability_certificates",
    "status",
    "status_since",
)


def _resident_values(person: RegistryPerson, district_ids: dict[str, int]) -> dict[str, Any]:
    return {
        "household_id": person.household_id,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "family_name_kana": person.family_name_kana,
        "given_name_kana": person.given_name_kana,
        "sex": person.sex,
        "birth_date": person.birth_date,
        "address": person.address,
        "district_id": district_ids.get(person.district_code),
        "car_licence": person.car_licence,
        "licence_returned_on": person.licence_returned_on,
        "disability_certificates": [
            {"kind": c.kind, "grade": c.grade} for c in person.disability_certificates
        ],
        "status": ResidentStatus(person.status),
        "status_since": person.status_since,
    }


def sync_residents(
    session: Session, *, municipality_id: int, people: Iterable[RegistryPerson], now: datetime
) -> SyncResult:
    """Bring the municipality's residents in line with the registry: insert new people, update changed ones.

    Inserts and updates are executed in bulk (Core executemany) in the caller's transaction. People are
    never deleted: a move or a death arrives as a status. Districts are matched by code; an unknown
    district code leaves `district_id` empty (eligibility by district then fails, with its reason).
    """
    district_ids = {
        code: did
        for code, did in session.execute(
            select(District.code, District.id).where(District.municipality_id == municipality_id)
        ).all()
    }
    current: dict[str, dict[str, Any]] = {}
    columns = [getattr(Resident, name) for name in _SYNCED_FIELDS]
    for row in session.execute(
        select(Resident.id, Resident.registry_id, *columns).where(Resident.municipality_id == municipality_id)
    ).all():
        current[row.registry_id] = row._asdict()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for person in people:
        values = _resident_values(person, district_ids)
        known = current.get(person.registry_id)
        if known is None:
            inserts.append(
                {"municipality_id": municipality_id, "registry_id": person.registry_id, "synced_at": now}
                | values
            )
        elif any(known[name] != values[name] for name in _SYNCED_FIELDS):
            updates.append({"id": known["id"], "synced_at": now} | values)
        else:
            unchanged += 1
    if inserts:
        session.execute(insert(Resident), inserts)
    if updates:
        session.execute(update(Resident), updates)
    return SyncResult(inserted=len(inserts), updated=len(updates), unchanged=unchanged)


# --- boarding without a card file ----------------------------------------------------------------


def redeem_without_card(
    session: Session,
    terminal: Principal,
    *,
    entitlement_id: int,
    sequence: int,
    idempotency_key: str,
    now: datetime,
    driver_id: int | None = None,
) -> int:
    """Board a ride for a demo resident who has no card file: `rides.board` after its card check.

    Same rules as a boarding: the resident must still live in the city, the entitlement must be active
    and valid today, units are held with one conditional UPDATE, the day/month/year limits are counted,
    the ledger and the audit trail get their entries. The ride has no card binding. Only the demo seed
    calls this; the API never does. Raises Refused entitlement.none / entitlement.suspended /
    entitlement.exhausted / limit.*, Forbidden when `terminal` is not a terminal.
    """
    if terminal.kind != "terminal" or terminal.operator_id is None or terminal.vehicle_id is None:
        raise Forbidden("auth.forbidden")
    today = japan_date(now)
    row = session.execute(
        select(
            Entitlement.id,
            Entitlement.status,
            Entitlement.unit,
            Entitlement.balance,
            Entitlement.resident_id,
            Entitlement.program_id,
            Entitlement.valid_from,
            Entitlement.valid_to,
            Resident.status.label("resident_status"),
            Program.subsidy,
            Program.limits,
        )
        .join(Resident, Resident.id == Entitlement.resident_id)
        .join(Program, Program.id == Entitlement.program_id)
        .where(Entitlement.id == entitlement_id, Entitlement.municipality_id == terminal.municipality_id)
    ).first()
    if (
        row is None
        or row.resident_status is not ResidentStatus.RESIDENT
        or not (row.valid_from <= today <= row.valid_to)
    ):
        raise Refused("entitlement.none")
    if row.status is EntitlementStatus.SUSPENDED:
        raise Refused("entitlement.suspended")
    if row.status is not EntitlementStatus.ACTIVE:
        raise Refused("entitlement.none")
    ride_id, _held, _balance = rides.redeem(
        session,
        terminal,
        rides.RedeemTarget(
            entitlement_id=row.id,
            resident_id=row.resident_id,
            program_id=row.program_id,
            unit=row.unit.value,
            balance_seen=int(row.balance),
            subsidy=row.subsidy,
            limits=row.limits,
            binding_id=None,
        ),
        sequence=sequence,
        idempotency_key=idempotency_key,
        method="pin",
        now=now,
        driver_id=driver_id,
        audit_details={"demo_without_card": True},
    )
    return int(ride_id)


# --- the seeding itself --------------------------------------------------------------------------


@dataclass
class _Rider:
    resident_id: int
    registry_id: str
    district_code: str
    entitlement_id: int
    program_code: str
    granted_at: datetime
    unit: str
    balance: int
    limits: dict[str, Any]
    card_path: Path | None = None
    tap_allowed: bool = False


@dataclass
class _Fleet:
    operator_id: int
    code: str
    vehicles: list[tuple[int, int]]  # (vehicle id, terminal id)
    drivers: list[int]


@dataclass(order=True)
class _PlannedRide:
    boarded_at: datetime
    alighted_at: datetime = field(compare=False)
    rider: _Rider = field(compare=False)
    vehicle_id: int = field(compare=False)
    terminal_id: int = field(compare=False)
    driver_id: int = field(compare=False)
    fare: int = field(compare=False)
    void: str | None = field(compare=False, default=None)  # None | "before_fare" | "after_fare"


@dataclass
class _Seeder:
    session: Session
    settings: Settings
    var_dir: Path
    now: datetime
    rng: random.Random
    issuer: Issuer
    verifier: CardVerifier
    written: list[Path]

    def run(
        self,
        people: list[RegistryPerson],
        *,
        cards: int,
        rides_per_entitlement: float,
        timings: dict[str, float],
    ) -> None:
        self.ride_month = previous_month(japan_date(self.now))
        self.fiscal_year = fiscal_year_of(self.ride_month)
        fy_start = fiscal_year_start(self.fiscal_year)
        # The city was set up two weeks before the fiscal year; everything happened in order after that.
        self.setup_at = _jst(fy_start - timedelta(days=14), 9, 0)
        with _timed(timings, "市・職員・制度"):
            self.mun = self._municipality()
            self.staff = self._staff()
            self.programs = self._programs()
        with _timed(timings, "住民の同期"):
            sync_residents(self.session, municipality_id=self.mun.id, people=people, now=self.setup_at)
        with _timed(timings, "事業者・車両・端末"):
            fleets = self._operators()
        with _timed(timings, "申請"):
            riders = self._applications(people, cards=cards)
        with _timed(timings, "乗車"):
            self._rides(riders, fleets, rides_per_entitlement)

    # -- city, staff, programs --

    def _municipality(self) -> Municipality:
        mun = Municipality(**MUNICIPALITY, remitter=dict(REMITTER), created_at=self.setup_at)
        self.session.add(mun)
        self.session.flush()
        for code, name, kana in DISTRICTS:
            self.session.add(District(municipality_id=mun.id, code=code, name=name, name_kana=kana))
        self.session.flush()
        return mun

    def _staff(self) -> dict[str, StaffUser]:
        made = {}
        for spec in CITY_STAFF:
            made[spec.username] = staff.create_staff(
                self.session,
                municipality_id=self.mun.id,
                username=spec.username,
                display_name=spec.display_name,
                password=DEMO_STAFF_PASSWORD,
                roles=list(spec.roles),
                now=self.setup_at,
            )
        return made

    def _programs(self) -> dict[str, Program]:
        fy = self.fiscal_year
        made: dict[str, Program] = {}
        for spec in program_specs():
            rules = validate_rules(spec["rules"])
            program = Program(
                municipality_id=self.mun.id,
                code=spec["code"],
                name=spec["name"],
                name_en=spec["name_en"],
                fiscal_year=fy,
                valid_from=fiscal_year_start(fy),
                valid_to=fiscal_year_start(fy + 1) - timedelta(days=1),
                created_at=self.setup_at,
                **rules,
            )
            self.session.add(program)
            made[spec["code"]] = program
        self.session.flush()
        for a in made.values():
            for b in made.values():
                if a.id != b.id:
                    self.session.add(ProgramExclusion(program_id=a.id, excluded_program_id=b.id))
        self.session.flush()
        return made

    # -- operators, vehicles, drivers, terminals --

    def _operators(self) -> dict[str, _Fleet]:
        fleets: dict[str, _Fleet] = {}
        keys_dir = self.var_dir / "terminals"
        keys_dir.mkdir(parents=True, exist_ok=True)
        used_plates: set[int] = set()
        driver_names: set[str] = set()
        for spec in OPERATORS:
            op = Operator(
                municipality_id=self.mun.id,
                code=spec.code,
                name=spec.name,
                name_kana=spec.name_kana,
                contact=spec.contact,
                bank_code=spec.bank_code,
                branch_code=spec.branch_code,
                account_type="ordinary",
                account_number=spec.account_number,
                account_holder_kana=spec.account_holder_kana,
                created_at=self.setup_at,
            )
            self.session.add(op)
            self.session.flush()
            admin = staff.create_staff(
                self.session,
                municipality_id=self.mun.id,
                username=spec.admin_username,
                display_name=f"{spec.name} 管理者",
                password=DEMO_STAFF_PASSWORD,
                roles=[StaffRole.OPERATOR_ADMIN],
                now=self.setup_at,
                operator_id=op.id,
            )
            fleet = _Fleet(operator_id=op.id, code=spec.code, vehicles=[], drivers=[])
            for number in range(1, spec.vehicles + 1):
                plate = self.rng.randrange(1000, 10000)
                while plate in used_plates:
                    plate = self.rng.randrange(1000, 10000)
                used_plates.add(plate)
                vehicle = Vehicle(
                    operator_id=op.id,
                    registration=f"山形 500 {spec.plate_kana} {plate // 100:2d}-{plate % 100:02d}",
                    label=f"{number}号車",
                )
                self.session.add(vehicle)
                self.session.flush()
                terminal_id = self._terminal(vehicle, admin, spec, keys_dir)
                fleet.vehicles.append((vehicle.id, terminal_id))
                for _ in range(self.rng.choice((2, 2, 3))):
                    name = self._driver_name(driver_names)
                    driver = Driver(
                        operator_id=op.id, code=f"D{len(fleet.drivers) + 1:03d}", name=name, active=True
                    )
                    self.session.add(driver)
                    self.session.flush()
                    fleet.drivers.append(driver.id)
            fleets[spec.code] = fleet
        return fleets

    def _driver_name(self, taken: set[str]) -> str:
        for _ in range(50):
            name = f"{self.rng.choice(DRIVER_FAMILY)} {self.rng.choice(DRIVER_GIVEN)}"
            if name not in taken:
                taken.add(name)
                return name
        return f"{self.rng.choice(DRIVER_FAMILY)} {self.rng.choice(DRIVER_GIVEN)}"

    def _terminal(self, vehicle: Vehicle, admin: StaffUser, spec: OperatorSpec, keys_dir: Path) -> int:
        """Create and enrol the vehicle's terminal; its private key goes to var_dir/terminals/<id>.key."""
        created = terminals.create_terminal(
            self.session,
            vehicle_id=vehicle.id,
            municipality_id=self.mun.id,
            actor=f"staff:{admin.id}",
            now=self.setup_at,
            ttl=timedelta(seconds=self.settings.enrolment_code_ttl_seconds),
        )
        key = Ed25519PrivateKey.generate()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        terminal = terminals.enrol(
            self.session,
            code=created.enrolment_code,
            public_key_b64=base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
            now=self.setup_at + timedelta(hours=2),
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_path = keys_dir / f"{terminal.id}.key"
        _write_private(key_path, pem)
        self.written.append(key_path)
        return terminal.id

    # -- applications (and the cards of a few residents) --

    def _applications(self, people: list[RegistryPerson], *, cards: int) -> list[_Rider]:
        fy_start = fiscal_year_start(self.fiscal_year)
        ride_month_start = self.ride_month
        # Applications are taken from April 1 for about two months, and always before the ride month ends.
        window_end = min(fy_start + timedelta(days=60), ride_month_start + timedelta(days=10))
        business_days = [d for d in _days(fy_start, window_end) if _is_business_day(d)]
        if not business_days:
            business_days = [fy_start]
        district_names = dict((code, name) for code, name, _ in DISTRICTS)

        matches: list[tuple[RegistryPerson, str]] = []
        near_misses: list[RegistryPerson] = []
        for person in people:
            if person.status != "resident":
                continue
            found = self._first_program(person, fy_start, district_names)
            if found is not None:
                matches.append((person, found))
            elif person.car_licence != "held" and 72 <= person.age_on(fy_start) < 75:
                near_misses.append(person)

        card_holders = self._choose_card_holders(matches, cards)
        resident_ids = {
            rid: pk
            for rid, pk in self.session.execute(
                select(Resident.registry_id, Resident.id).where(Resident.municipality_id == self.mun.id)
            ).all()
        }
        stops = self._mobile_rounds(business_days)

        plan: list[tuple[datetime, RegistryPerson, str, ApplicationChannel, str | None]] = []
        for person, code in matches:
            mobile = person.registry_id not in card_holders and self.rng.random() < (
                0.25 if person.district_code == "01" else 0.7
            )
            if mobile:
                stop, at = self._mobile_slot(stops[person.district_code])
                plan.append((at, person, code, ApplicationChannel.MOBILE_OFFICE, stop))
            else:
                at = self._counter_time(self.rng.choice(business_days))
                plan.append((at, person, code, ApplicationChannel.COUNTER, None))
        # A few people just short of 75 ask anyway: the counter records the refusal with its reasons.
        for person in self.rng.sample(near_misses, min(len(near_misses), max(3, len(matches) // 80))):
            plan.append(
                (
                    self._counter_time(self.rng.choice(business_days)),
                    person,
                    "elderly",
                    ApplicationChannel.COUNTER,
                    None,
                )
            )
        plan.sort(key=lambda item: (item[0], item[1].registry_id))

        riders: list[_Rider] = []
        card_paths: dict[str, Path] = {}
        for at, person, code, channel, mobile_stop in plan:
            resident_id = resident_ids[person.registry_id]
            clerk = self.staff["idou" if channel is ApplicationChannel.MOBILE_OFFICE else "madoguchi"]
            if person.registry_id in card_holders and person.registry_id not in card_paths:
                card_paths[person.registry_id] = self._issue_and_bind(person, resident_id, clerk, at)
            result = applications.apply(
                self.session,
                municipality_id=self.mun.id,
                resident_id=resident_id,
                program_id=self.programs[code].id,
                channel=channel,
                staff_id=clerk.id,
                now=at,
                staff_attested=person.registry_id not in card_paths,
                mobile_stop=mobile_stop,
            )
            ent = result.entitlement
            if ent is None:
                continue
            program = self.programs[code]
            riders.append(
                _Rider(
                    resident_id=resident_id,
                    registry_id=person.registry_id,
                    district_code=person.district_code,
                    entitlement_id=ent.id,
                    program_code=code,
                    granted_at=at,
                    unit=ent.unit.value,
                    balance=ent.balance,
                    limits=dict(program.limits),
                    card_path=card_paths.get(person.registry_id),
                    tap_allowed=bool(program.options.get("tap_allowed")),
                )
            )
        self._write_card_index(card_paths, matches)
        return riders

    def _first_program(
        self, person: RegistryPerson, fy_start: date, district_names: dict[str, str]
    ) -> str | None:
        """The first program (elderly, disability, bus_abolished) whose rules hold, by the rules' own code."""
        facts = PersonFacts(
            birth_date=person.birth_date,
            car_licence=person.car_licence,
            disability_certificates=tuple((c.kind, c.grade) for c in person.disability_certificates),
            district_code=person.district_code,
        )
        for code in PROGRAM_ORDER:
            program = self.programs[code]
            if all(
                evaluate_predicate(
                    pred, facts, fiscal_year_start=fy_start, today=fy_start, district_names=district_names
                ).met
                for pred in program.eligibility
            ):
                return code
        return None

    def _choose_card_holders(self, matches: list[tuple[RegistryPerson, str]], cards: int) -> set[str]:
        """Card files for `cards` eligible residents, spread over the three programs."""
        by_program: dict[str, list[RegistryPerson]] = defaultdict(list)
        for person, code in matches:
            by_program[code].append(person)
        chosen: list[str] = []
        pools = {code: self.rng.sample(group, len(group)) for code, group in sorted(by_program.items())}
        while len(chosen) < cards and any(pools.values()):
            for code in PROGRAM_ORDER:
                if pools.get(code) and len(chosen) < cards:
                    chosen.append(pools[code].pop().registry_id)
        return set(chosen)

    def _issue_and_bind(
        self, person: RegistryPerson, resident_id: int, clerk: StaffUser, at: datetime
    ) -> Path:
        """Issue the resident's virtual card, then enrol it at the counter the way the API does.

        The signature certificate (read with the password) proves the four facts, which must match the
        registry; a challenge signed with its key proves possession; then the user certificate is bound.
        """
        cards_dir = self.var_dir / "cards"
        cards_dir.mkdir(parents=True, exist_ok=True)
        out = cards_dir / f"{person.registry_id}.card.json"
        # A file left by an earlier demo whose database is gone: this seed owns var_dir/cards.
        out.unlink(missing_ok=True)
        # Made the way staff make them: `mock-card issue --resident ID` (one code path with the CLI).
        mock_card.issue_card_file(
            self.issuer.directory,
            out=out,
            pin=DEMO_CARD_PIN,
            password=DEMO_CARD_PASSWORD,
            resident_id=person.registry_id,
            registry_path=self.var_dir / "registry.sqlite3",
            base_url=self.issuer.base_url,
            now=self.setup_at - timedelta(days=self.rng.randrange(30, 900)),
        )
        self.written.append(out)
        reader = JPKIReader(VirtualCardTransport(out))
        # The counter's flow, through the same service the API uses: one staff challenge signed by the
        # user key (PIN) and by the signature key (password); the four facts find the resident.
        challenge = identity.issue_challenge(
            self.verifier.challenge_key,
            purpose="enrol",
            context=f"staff:{clerk.id}",
            now=at,
            ttl=timedelta(seconds=self.settings.challenge_ttl_seconds),
        )
        enrolled = enrolment.enrol_by_signature_certificate(
            self.session,
            self.verifier,
            user_proof=CardProof(
                certificate=reader.read_user_certificate(),
                chain=(reader.read_user_ca_certificate(),),
                nonce=challenge.nonce,
                signature=reader.sign_with_user_key(challenge.message, DEMO_CARD_PIN),
            ),
            signature_certificate=reader.read_signature_certificate(DEMO_CARD_PASSWORD),
            signature_chain=(reader.read_signature_ca_certificate(),),
            signature=reader.sign_with_signature_key(challenge.message, DEMO_CARD_PASSWORD),
            municipality_id=self.mun.id,
            staff_id=clerk.id,
            now=at,
        )
        if enrolled.resident.id != resident_id:
            raise Refused("enrolment.facts_mismatch")
        return out

    def _write_card_index(self, paths: dict[str, Path], matches: list[tuple[RegistryPerson, str]]) -> None:
        if not paths:
            return
        by_id = {p.registry_id: (p, code) for p, code in matches}
        entries = []
        for registry_id in sorted(paths):
            person, code = by_id[registry_id]
            entries.append(
                {
                    "file": paths[registry_id].name,
                    "registry_id": registry_id,
                    "name": person.full_name,
                    "program": code,
                    "pin": DEMO_CARD_PIN,
                    "password": DEMO_CARD_PASSWORD,
                }
            )
        index = self.var_dir / "cards" / "index.json"
        index.write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
        self.written.append(index)

    def _mobile_rounds(self, days: list[date]) -> dict[str, list[tuple[date, str]]]:
        """Each district's mobile-office stops, each on its own business day in the window."""
        rounds: dict[str, list[tuple[date, str]]] = {}
        for code, places in MOBILE_STOPS.items():
            rounds[code] = [(self.rng.choice(days), place) for place in places]
        return rounds

    def _mobile_slot(self, rounds: list[tuple[date, str]]) -> tuple[str, datetime]:
        day, place = self.rng.choice(rounds)
        minutes = self.rng.randrange(0, 6 * 60)  # 9:30 to 15:30
        return place, _jst(day, 9, 30) + timedelta(minutes=minutes, seconds=self.rng.randrange(60))

    def _counter_time(self, day: date) -> datetime:
        minutes = self.rng.randrange(0, 8 * 60)  # 8:45 to 16:45
        return _jst(day, 8, 45) + timedelta(minutes=minutes, seconds=self.rng.randrange(60))

    # -- a month of rides --

    def _rides(self, riders: list[_Rider], fleets: dict[str, _Fleet], per_entitlement: float) -> None:
        month_start = self.ride_month
        month_end = next_month(month_start)
        days = list(_days(month_start, month_end - timedelta(days=1)))
        planned = self._plan_rides(riders, fleets, days, round(len(riders) * per_entitlement))
        principals: dict[int, Principal] = {}
        for fleet in fleets.values():
            for vehicle_id, terminal_id in fleet.vehicles:
                principals[terminal_id] = Principal(
                    kind="terminal",
                    id=terminal_id,
                    municipality_id=self.mun.id,
                    roles=frozenset({"terminal"}),
                    operator_id=fleet.operator_id,
                    vehicle_id=vehicle_id,
                )
        sequences: Counter[int] = Counter()
        refused: Counter[str] = Counter()
        readers: dict[Path, JPKIReader] = {}
        sim = FixedClock(self.setup_at)
        for ride in sorted(planned):
            terminal = principals[ride.terminal_id]
            sequences[ride.terminal_id] += 1
            sequence = sequences[ride.terminal_id]
            key = f"seed-{ride.terminal_id:03d}-{sequence:05d}-{self.rng.getrandbits(40):010x}"
            sim.set(ride.boarded_at)
            nested = self.session.begin_nested()
            try:
                ride_id = self._board(ride, terminal, sequence, key, sim.now(), readers)
            except DomainError as refusal:
                # Refused at the car (a limit, an exhausted balance): nothing was recorded.
                nested.rollback()
                sequences[ride.terminal_id] -= 1
                refused[refusal.code] += 1
                continue
            nested.commit()
            if ride.void == "before_fare":
                sim.set(ride.boarded_at + timedelta(minutes=self.rng.randrange(1, 4)))
                rides.void(self.session, terminal, ride_id=ride_id, reason="乗車取消(誤操作)", now=sim.now())
                continue
            sim.set(ride.alighted_at)
            rides.complete(self.session, terminal, ride_id=ride_id, meter_fare=ride.fare, now=sim.now())
            if ride.void == "after_fare":
                sim.set(ride.alighted_at + timedelta(minutes=self.rng.randrange(1, 6)))
                rides.void(
                    self.session, terminal, ride_id=ride_id, reason="料金入力誤りのため取消", now=sim.now()
                )
        log.info("demo rides: %d planned, refused at boarding: %s", len(planned), dict(refused) or "none")
        for terminal_id, last in sequences.items():
            self.session.execute(
                update(Terminal).where(Terminal.id == terminal_id).values(last_sequence=last)
            )
        self._write_terminal_notes(fleets, sequences)

    def _board(
        self,
        ride: _PlannedRide,
        terminal: Principal,
        sequence: int,
        key: str,
        now: datetime,
        readers: dict[Path, JPKIReader],
    ) -> int:
        rider = ride.rider
        if rider.card_path is None:
            return redeem_without_card(
                self.session,
                terminal,
                entitlement_id=rider.entitlement_id,
                sequence=sequence,
                idempotency_key=key,
                now=now,
                driver_id=ride.driver_id,
            )
        reader = readers.get(rider.card_path)
        if reader is None:
            reader = readers[rider.card_path] = JPKIReader(VirtualCardTransport(rider.card_path))
        certificate = reader.read_user_certificate()
        chain = (reader.read_user_ca_certificate(),)
        if rider.tap_allowed and self.rng.random() < 0.3:
            proof = CardProof(certificate=certificate, chain=chain, nonce=None, signature=None)
        else:
            challenge = identity.issue_challenge(
                self.verifier.challenge_key,
                purpose="board",
                context=rides.board_context(terminal.id),
                now=now,
                ttl=timedelta(seconds=self.settings.challenge_ttl_seconds),
            )
            proof = CardProof(
                certificate=certificate,
                chain=chain,
                nonce=challenge.nonce,
                signature=reader.sign_with_user_key(challenge.message, DEMO_CARD_PIN),
            )
        view = rides.board(
            self.session,
            self.verifier,
            terminal,
            rides.BoardRequest(idempotency_key=key, sequence=sequence, proof=proof, driver_id=ride.driver_id),
            now,
        )
        return view.ride_id

    def _plan_rides(
        self, riders: list[_Rider], fleets: dict[str, _Fleet], days: list[date], target: int
    ) -> list[_PlannedRide]:
        """Spread `target` rides over riders, days and hours, within each program's limits and balances.

        Weekdays are busier than weekends; mornings (hospital) and early afternoons (shopping) are the
        peaks; many trips have a return ride the same day; outlying districts make longer trips.
        """
        if not riders or not days:
            return []
        day_weights = [_day_weight(d) for d in days]
        # Some residents never ride in a month, a few ride often.
        activity = [0.0 if self.rng.random() < 0.3 else self.rng.expovariate(1.0) + 0.2 for _ in riders]
        for i, rider in enumerate(riders):
            if rider.card_path is not None:
                activity[i] = max(activity[i], 1.5)
        per_day: Counter[tuple[int, date]] = Counter()
        per_month: Counter[int] = Counter()
        units_left = {r.entitlement_id: r.balance for r in riders}
        busy: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        planned: list[_PlannedRide] = []

        def fits(rider: _Rider, day: date, count: int) -> bool:
            limits = rider.limits
            if limits.get("per_day") and per_day[(rider.entitlement_id, day)] + count > limits["per_day"]:
                return False
            if limits.get("per_month") and per_month[rider.entitlement_id] + count > limits["per_month"]:
                return False
            need = 2 if rider.unit == "ticket" else 1  # a ticket ride holds at most two tickets
            return units_left[rider.entitlement_id] >= need * count

        def book(rider: _Rider, day: date, start: datetime) -> _PlannedRide:
            fare_steps = self._fare_steps(rider.district_code)
            fare = 700 + 90 * fare_steps
            minutes = 4 + fare_steps // 2 + self.rng.randrange(0, 5)
            end = start + timedelta(minutes=minutes, seconds=self.rng.randrange(60))
            fleet = fleets[_weighted(self.rng, DISTRICT_OPERATORS[rider.district_code])]
            free = [v for v in fleet.vehicles if all(e <= start or s >= end for s, e in busy[v[0]])]
            vehicle_id, terminal_id = self.rng.choice(free or fleet.vehicles)
            busy[vehicle_id].append((start, end))
            per_day[(rider.entitlement_id, day)] += 1
            per_month[rider.entitlement_id] += 1
            units_left[rider.entitlement_id] -= 2 if rider.unit == "ticket" else 1
            # About one ride in eighty is cancelled by the driver: half before the fare, half after.
            nth = len(planned) % 160
            void = "before_fare" if nth == 40 else "after_fare" if nth == 120 else None
            # A cancelled ride still takes its place in the plan: when it boards, it counts against
            # the limits like any other, so planning it as free could make a later-planned one fail.
            return _PlannedRide(
                boarded_at=start,
                alighted_at=end,
                rider=rider,
                vehicle_id=vehicle_id,
                terminal_id=terminal_id,
                driver_id=self.rng.choice(fleet.drivers),
                fare=fare,
                void=void,
            )

        rider_weights = list(itertools.accumulate(activity))
        day_cumulative = list(itertools.accumulate(day_weights))
        if rider_weights[-1] <= 0:
            return []
        attempts = 0
        while len(planned) < target and attempts < target * 6:
            attempts += 1
            rider = self.rng.choices(riders, cum_weights=rider_weights)[0]
            day = self.rng.choices(days, cum_weights=day_cumulative)[0]
            start = _jst(day, _weighted(self.rng, HOUR_WEIGHTS), self.rng.randrange(60))
            if start <= rider.granted_at + timedelta(hours=1):
                continue
            round_trip = self.rng.random() < 0.45
            if not fits(rider, day, 2 if round_trip else 1):
                round_trip = False
                if not fits(rider, day, 1):
                    continue
            out = book(rider, day, start)
            planned.append(out)
            if round_trip and len(planned) < target:
                back = out.alighted_at + timedelta(minutes=self.rng.randrange(60, 240))
                if japan_date(back) == day and _jst(day, 20, 0) > back:
                    planned.append(book(rider, day, back))
        return planned

    def _fare_steps(self, district_code: str) -> int:
        """Meter steps of ¥90 after the ¥700 start: short trips in town, long ones from the mountains."""
        low, high = {
            "01": (0, 14),
            "02": (8, 26),
            "04": (8, 26),
            "03": (20, 42),
            "05": (20, 42),
        }.get(district_code, (0, 20))
        return min(42, round(self.rng.triangular(low, high, low + (high - low) / 3)))

    def _write_terminal_notes(self, fleets: dict[str, _Fleet], sequences: Counter[int]) -> None:
        """Next to each key: which terminal it is and the last sequence number the seed used."""
        for fleet in fleets.values():
            for vehicle_id, terminal_id in fleet.vehicles:
                note = self.var_dir / "terminals" / f"{terminal_id}.json"
                note.write_text(
                    json.dumps(
                        {
                            "terminal_id": terminal_id,
                            "operator_code": fleet.code,
                            "vehicle_id": vehicle_id,
                            "key_file": f"{terminal_id}.key",
                            "last_sequence": sequences.get(terminal_id, 0),
                            "api_base_url": self.settings.public_base_url,
                        },
                        indent=1,
                    ),
                    encoding="utf-8",
                )
                self.written.append(note)


HOUR_WEIGHTS: dict[int, int] = {
    7: 2,
    8: 6,
    9: 10,
    10: 10,
    11: 7,
    12: 3,
    13: 6,
    14: 7,
    15: 5,
    16: 4,
    17: 2,
    18: 1,
}


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _jst(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST).astimezone(UTC)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def _is_business_day(day: date) -> bool:
    return day.weekday() < 5 and not jpholiday.is_holiday(day)


def _day_weight(day: date) -> float:
    if jpholiday.is_holiday(day) or day.weekday() == 6:
        return 0.3
    if day.weekday() == 5:
        return 0.6
    return 1.0


def _write_private(path: Path, content: bytes) -> None:
    """Write a secret file readable by its owner only (0600), replacing an older one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --- describing what is there --------------------------------------------------------------------


def describe_demo(session: Session, mun: Municipality, *, var_dir: Path, created: bool) -> DemoSummary:
    """Counts, logins, cards and terminals of the demo city as the database and var_dir hold them."""

    def count(stmt: Any) -> int:
        return int(session.scalar(stmt) or 0)

    residents = count(select(func.count()).select_from(Resident).where(Resident.municipality_id == mun.id))
    approved = count(
        select(func.count())
        .select_from(Application)
        .where(Application.municipality_id == mun.id, Application.status == ApplicationStatus.APPROVED)
    )
    rejected = count(
        select(func.count())
        .select_from(Application)
        .where(Application.municipality_id == mun.id, Application.status == ApplicationStatus.REJECTED)
    )
    by_program = {
        code: int(n)
        for code, n in session.execute(
            select(Program.code, func.count(Entitlement.id))
            .outerjoin(Entitlement, Entitlement.program_id == Program.id)
            .where(Program.municipality_id == mun.id)
            .group_by(Program.code)
            .order_by(Program.code)
        ).all()
    }
    operator_ids = select(Operator.id).where(Operator.municipality_id == mun.id)
    operators = count(select(func.count()).select_from(Operator).where(Operator.municipality_id == mun.id))
    vehicles = count(select(func.count()).select_from(Vehicle).where(Vehicle.operator_id.in_(operator_ids)))
    drivers = count(select(func.count()).select_from(Driver).where(Driver.operator_id.in_(operator_ids)))
    first_ride = session.scalar(select(func.min(Ride.boarded_at)).where(Ride.municipality_id == mun.id))
    ride_month = japan_date(first_ride).replace(day=1) if first_ride is not None else None

    def rides_where(*conditions: Any) -> int:
        return count(
            select(func.count()).select_from(Ride).where(Ride.municipality_id == mun.id, *conditions)
        )

    subsidy = count(
        select(func.coalesce(func.sum(Ride.subsidy_amount), 0)).where(
            Ride.municipality_id == mun.id, Ride.status == RideStatus.COMPLETED
        )
    )
    staff_rows = session.scalars(
        select(StaffUser).where(StaffUser.municipality_id == mun.id).order_by(StaffUser.id)
    ).all()
    logins = [StaffLogin(u.username, u.display_name, tuple(u.roles), DEMO_STAFF_PASSWORD) for u in staff_rows]
    terminal_rows = session.execute(
        select(Terminal.id, Operator.name, Vehicle.registration)
        .join(Operator, Operator.id == Terminal.operator_id)
        .join(Vehicle, Vehicle.id == Terminal.vehicle_id)
        .where(Operator.municipality_id == mun.id, Terminal.status == TerminalStatus.ACTIVE)
        .order_by(Terminal.id)
    ).all()
    keys_dir = var_dir / "terminals"
    demo_terminals = [
        DemoTerminal(tid, name, plate, keys_dir / f"{tid}.key") for tid, name, plate in terminal_rows
    ]
    return DemoSummary(
        created=created,
        municipality_code=mun.code,
        municipality_name=mun.name,
        residents=residents,
        applications_approved=approved,
        applications_rejected=rejected,
        entitlements=by_program,
        operators=operators,
        vehicles=vehicles,
        drivers=drivers,
        ride_month=ride_month,
        rides_completed=rides_where(Ride.status == RideStatus.COMPLETED),
        rides_voided=rides_where(Ride.status == RideStatus.VOIDED),
        rides_with_card=rides_where(Ride.status == RideStatus.COMPLETED, Ride.binding_id.is_not(None)),
        subsidy_total=subsidy,
        staff=logins,
        cards=_read_card_index(var_dir),
        terminals=demo_terminals,
    )


def _read_card_index(var_dir: Path) -> list[DemoCard]:
    index = var_dir / "cards" / "index.json"
    if not index.is_file():
        return []
    entries = json.loads(index.read_text(encoding="utf-8"))
    return [
        DemoCard(
            path=var_dir / "cards" / str(e["file"]),
            registry_id=str(e["registry_id"]),
            resident_name=str(e["name"]),
            program_code=e.get("program"),
            pin=str(e["pin"]),
            password=str(e["password"]),
        )
        for e in entries
    ]
