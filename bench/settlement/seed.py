"""The benchmark's city and its rides: the demo city's fixed data, then N rides of a month loaded by COPY.

The city is the demo's 尾花沢市 (voucher_api.demo): its 5 operators and 30 vehicles (one enrolled terminal
each), its three mutually exclusive programs, finance staff to confirm and approve, the city's remitter
account for the transfer file. Residents and entitlements are written in bulk (one per resident, in the
program the resident's group qualifies for); rides go straight to the table with COPY, their amounts
split by the program's own formula (`program_rules.split_fare`), so they pass the rides' checks.

The mix per month (fractions of N): ≈ 97.9 % completed, 1 % voided (half before and half after the
fare), 0.6 % never given a fare (settled by the program's fare-less rule, or left waiting when boarded
in the last hours of the month), 0.5 % offline rides flagged for review (`review_code`), plus about 4 %
ordinary offline rides. Two programs set the rules the statement must honour: the disability programme
pays its cap for a fare-less ride, the bus-abolished programme leaves offline losses to the operator.
"""

from __future__ import annotations

import base64
import io
import random
import secrets
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from auth_mock.registry import DISTRICTS
from voucher_api.clock import JST, fiscal_year_of, fiscal_year_start, next_month
from voucher_api.demo import MUNICIPALITY, OPERATORS, REMITTER, program_specs
from voucher_api.models import (
    District,
    Entitlement,
    EntitlementStatus,
    LedgerEntry,
    LedgerKind,
    Municipality,
    Operator,
    Program,
    Resident,
    ResidentStatus,
    StaffRole,
    Vehicle,
)
from voucher_api.services import staff, terminals
from voucher_api.services.program_rules import FareSplit, split_fare, validate_rules

STAFF_PASSWORD = secrets.token_urlsafe(18)

# Options that make the statement rules visible in the benchmark's month.
PROGRAM_OPTIONS: dict[str, dict[str, Any]] = {
    "elderly": {},
    "disability": {"fareless_rule": "cap", "fareless_after_hours": 6},
    "bus_abolished": {"offline_loss_borne_by": "operator", "tap_allowed": True},
}
# How a month's rides spread over the operators (the demo's district preferences, flattened).
OPERATOR_WEIGHTS = (36, 14, 22, 16, 12)
REVIEW_CODES = ("entitlement.exhausted", "limit.per_day", "card.revoked")


@dataclass(frozen=True)
class SeedProgram:
    id: int
    code: str
    subsidy: dict[str, Any]
    unit: str
    held: int  # units held at boarding


@dataclass(frozen=True)
class SeedRider:
    resident_id: int
    entitlement_id: int
    program: SeedProgram


@dataclass(frozen=True)
class SeedCar:
    operator_id: int
    vehicle_id: int
    terminal_id: int


@dataclass
class SeededCity:
    municipality_id: int
    municipality_code: str
    finance_id: int
    approver_id: int
    operator_ids: list[int]
    riders: list[SeedRider]
    cars_by_operator: list[list[SeedCar]]
    next_sequence: dict[int, int]  # terminal id -> next terminal sequence


def seed_city(session: Session, *, residents: int, now: datetime, seed: int = 2026) -> SeededCity:
    """Create the city, its staff, programs, operators, vehicles, terminals, residents and entitlements.

    Commits at the end. `residents` residents each get one entitlement in one of the three programs.
    """
    rng = random.Random(seed)
    setup_at = now
    mun = Municipality(**MUNICIPALITY, remitter=dict(REMITTER), created_at=setup_at)
    session.add(mun)
    session.flush()
    district_ids = []
    for code, name, kana in DISTRICTS:
        district = District(municipality_id=mun.id, code=code, name=name, name_kana=kana)
        session.add(district)
        session.flush()
        district_ids.append(district.id)
    accounts = {}
    for username, display, role in (
        ("keiri", "会計課 精算担当", StaffRole.FINANCE),
        ("shonin", "会計課長(承認)", StaffRole.FINANCE_APPROVER),
        ("admin", "情報政策係 システム管理者", StaffRole.ADMIN),
    ):
        accounts[username] = staff.create_staff(
            session,
            municipality_id=mun.id,
            username=username,
            display_name=display,
            password=STAFF_PASSWORD,
            roles=[role],
            now=setup_at,
        )
    admin = accounts["admin"]

    fiscal_year = fiscal_year_of(setup_at.astimezone(JST).date())
    programs: list[SeedProgram] = []
    for program_spec in program_specs():
        rules = dict(program_spec["rules"])
        rules["options"] = PROGRAM_OPTIONS[program_spec["code"]]
        rules["grant"] = {**rules["grant"], "amount": 10_000}
        validated = validate_rules(rules)
        program = Program(
            municipality_id=mun.id,
            code=program_spec["code"],
            name=program_spec["name"],
            name_en=program_spec["name_en"],
            fiscal_year=fiscal_year,
            valid_from=fiscal_year_start(fiscal_year),
            valid_to=fiscal_year_start(fiscal_year + 1) - timedelta(days=1),
            created_at=setup_at,
            **validated,
        )
        session.add(program)
        session.flush()
        unit = validated["grant"]["unit"]
        held = int(validated["subsidy"].get("max_tickets_per_ride") or 1) if unit == "ticket" else 1
        programs.append(SeedProgram(program.id, program_spec["code"], validated["subsidy"], unit, held))

    operator_ids: list[int] = []
    cars_by_operator: list[list[SeedCar]] = []
    plate = 1000
    for spec in OPERATORS:
        op = Operator(
            municipality_id=mun.id,
            code=spec.code,
            name=spec.name,
            name_kana=spec.name_kana,
            contact=spec.contact,
            bank_code=spec.bank_code,
            branch_code=spec.branch_code,
            account_type="ordinary",
            account_number=spec.account_number,
            account_holder_kana=spec.account_holder_kana,
            created_at=setup_at,
        )
        session.add(op)
        session.flush()
        operator_ids.append(op.id)
        cars = []
        for number in range(1, spec.vehicles + 1):
            plate += 37
            vehicle = Vehicle(
                operator_id=op.id,
                registration=f"山形 500 {spec.plate_kana} {plate // 100:2d}-{plate % 100:02d}",
                label=f"{number}号車",
            )
            session.add(vehicle)
            session.flush()
            created = terminals.create_terminal(
                session,
                vehicle_id=vehicle.id,
                municipality_id=mun.id,
                actor=f"staff:{admin.id}",
                now=setup_at,
                ttl=timedelta(hours=1),
            )
            key = Ed25519PrivateKey.generate().public_key()
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            terminal = terminals.enrol(
                session,
                code=created.enrolment_code,
                public_key_b64=base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
                now=setup_at,
            )
            cars.append(SeedCar(op.id, vehicle.id, terminal.id))
        cars_by_operator.append(cars)

    riders = _residents_and_entitlements(session, mun.id, district_ids, programs, residents, rng, setup_at)
    session.commit()
    return SeededCity(
        municipality_id=mun.id,
        municipality_code=mun.code,
        finance_id=accounts["keiri"].id,
        approver_id=accounts["shonin"].id,
        operator_ids=operator_ids,
        riders=riders,
        cars_by_operator=cars_by_operator,
        next_sequence={car.terminal_id: 1 for cars in cars_by_operator for car in cars},
    )


def _residents_and_entitlements(
    session: Session,
    municipality_id: int,
    district_ids: list[int],
    programs: list[SeedProgram],
    count: int,
    rng: random.Random,
    now: datetime,
) -> list[SeedRider]:
    people = []
    for n in range(count):
        people.append(
            {
                "municipality_id": municipality_id,
                "registry_id": f"062120-S{n + 1:07d}",
                "household_id": f"H{n + 1:07d}",
                "family_name": rng.choice(("尾花沢", "鈴木", "佐藤", "高橋", "大山", "荒木")),
                "given_name": rng.choice(("花子", "太郎", "ハル", "清", "トメ", "正雄", "キヨ")),
                "family_name_kana": "ベンチ",
                "given_name_kana": "ジュウミン",
                "sex": "female" if n % 2 == 0 else "male",
                "birth_date": date(1935 + n % 20, 1 + n % 12, 1 + n % 28),
                "address": f"山形県尾花沢市若葉町{n % 9 + 1}丁目{n % 30 + 1}番地",
                "district_id": district_ids[n % len(district_ids)],
                "car_licence": "returned",
                "disability_certificates": [],
                "status": ResidentStatus.RESIDENT,
                "synced_at": now,
            }
        )
    resident_ids = list(
        session.scalars(insert(Resident).returning(Resident.id, sort_by_parameter_order=True), people)
    )
    weights = (60, 15, 25)  # elderly, disability, bus-abolished
    chosen = rng.choices(programs, weights=weights, k=count)
    grants = [
        {
            "municipality_id": municipality_id,
            "resident_id": resident_id,
            "program_id": program.id,
            "application_id": None,
            "unit": program.unit,
            "granted": 10_000,
            "balance": 10_000,
            "status": EntitlementStatus.ACTIVE,
            "valid_from": date(2026, 4, 1),
            "valid_to": date(2027, 3, 31),
            "created_at": now,
        }
        for resident_id, program in zip(resident_ids, chosen, strict=True)
    ]
    entitlement_ids = list(
        session.scalars(insert(Entitlement).returning(Entitlement.id, sort_by_parameter_order=True), grants)
    )
    session.execute(
        insert(LedgerEntry),
        [
            {
                "entitlement_id": entitlement_id,
                "kind": LedgerKind.GRANT,
                "amount": 10_000,
                "balance_after": 10_000,
                "actor": "system:bench",
                "note": "",
                "created_at": now,
            }
            for entitlement_id in entitlement_ids
        ],
    )
    return [
        SeedRider(resident_id, entitlement_id, program)
        for resident_id, entitlement_id, program in zip(resident_ids, entitlement_ids, chosen, strict=True)
    ]


# --- rides ---------------------------------------------------------------------------------------

RIDE_COLUMNS = (
    "municipality_id",
    "entitlement_id",
    "program_id",
    "resident_id",
    "operator_id",
    "vehicle_id",
    "terminal_id",
    "terminal_sequence",
    "idempotency_key",
    "auth_method",
    "offline",
    "status",
    "boarded_at",
    "recorded_at",
    "units_held",
    "units_used",
    "alighted_at",
    "meter_fare",
    "subsidy_amount",
    "rider_share",
    "voided_at",
    "void_reason",
    "review_code",
)
_COPY_RIDES = f"COPY rides ({', '.join(RIDE_COLUMNS)}) FROM STDIN"
_NULL = "\\N"


def _minute_weights(month: date) -> tuple[list[datetime], list[float]]:
    """Every minute of the month in Japan time, weighted: daytime, weekdays, a quiet night."""
    minutes: list[datetime] = []
    weights: list[float] = []
    day = month
    while day < next_month(month):
        weekday = day.weekday() < 5
        for hour in range(24):
            if 8 <= hour < 18:
                weight = 10.0
            elif 6 <= hour < 21:
                weight = 4.0
            else:
                weight = 0.4
            if not weekday:
                weight *= 0.6
            start = datetime(day.year, day.month, day.day, hour, tzinfo=JST).astimezone(UTC)
            for minute in range(60):
                minutes.append(start + timedelta(minutes=minute))
                weights.append(weight)
        day += timedelta(days=1)
    return minutes, weights


def ride_lines(
    city: SeededCity,
    month: date,
    count: int,
    *,
    rng: random.Random,
    recorded_after: datetime | None = None,
) -> Iterator[str]:
    """`count` rides boarded in `month` (Japan time) as COPY text lines, in boarding order.

    `recorded_after` makes them late syncs: recorded (received by the server) at that instant.
    """
    minutes, weights = _minute_weights(month)
    cumulative = list(accumulate(weights))
    total = cumulative[-1]
    picks = sorted(bisect_right(cumulative, rng.random() * total) for _ in range(count))
    op_cumulative = list(accumulate(OPERATOR_WEIGHTS))
    splits: dict[tuple[int, int], FareSplit] = {}
    riders = city.riders
    for index in picks:
        boarded = minutes[min(index, len(minutes) - 1)] + timedelta(seconds=rng.randrange(60))
        rider = riders[rng.randrange(len(riders))]
        program = rider.program
        op_index = bisect_right(op_cumulative, rng.random() * op_cumulative[-1])
        car = rng.choice(city.cars_by_operator[op_index])
        sequence = city.next_sequence[car.terminal_id]
        city.next_sequence[car.terminal_id] = sequence + 1
        roll = rng.random()
        offline = roll < 0.045
        review = REVIEW_CODES[int(roll * 1000) % 3] if roll < 0.005 else None
        fare_steps = rng.randrange(4, 40)
        fare: int | None = 500 + 100 * fare_steps
        status = "completed"
        voided_at = None
        void_reason = ""
        if 0.05 <= roll < 0.056:
            fare = None
            status = "boarded"
        elif 0.06 <= roll < 0.07:
            status = "voided"
            voided_at = boarded + timedelta(minutes=3)
            void_reason = "乗車取消(誤操作)"
            if roll < 0.065:
                fare = None
        amounts: tuple[object, object, object] = (_NULL, _NULL, _NULL)
        if fare is not None:
            split = splits.get((program.id, fare))
            if split is None:
                split = splits[(program.id, fare)] = split_fare(
                    program.subsidy, program.unit, program.held, fare
                )
            amounts = (split.units_used, split.subsidy, split.rider_share)
        alighted = boarded + timedelta(minutes=12 + fare_steps) if fare is not None else None
        recorded = recorded_after or (boarded + timedelta(hours=2) if offline else boarded)
        fields = (
            city.municipality_id,
            rider.entitlement_id,
            program.id,
            rider.resident_id,
            car.operator_id,
            car.vehicle_id,
            car.terminal_id,
            sequence,
            f"bench-{car.terminal_id}-{sequence}",
            "tap" if program.code == "bus_abolished" else "pin",
            "t" if offline or recorded_after else "f",
            status,
            boarded.isoformat(),
            recorded.isoformat(),
            program.held,
            amounts[0],
            alighted.isoformat() if alighted else _NULL,
            fare if fare is not None else _NULL,
            amounts[1],
            amounts[2],
            voided_at.isoformat() if voided_at else _NULL,
            void_reason,
            review or _NULL,
        )
        yield "\t".join(map(str, fields)) + "\n"


def copy_rides(session: Session, lines: Iterator[str]) -> int:
    """COPY the rides in; returns how many. Commits."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None
    written = 0
    buffer = io.StringIO()
    with raw.cursor() as cursor, cursor.copy(_COPY_RIDES) as copy:
        for line in lines:
            buffer.write(line)
            written += 1
            if written % 20_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    session.commit()
    return written


def operator_codes(session: Session, municipality_id: int) -> dict[int, str]:
    rows = session.execute(
        select(Operator.id, Operator.code).where(Operator.municipality_id == municipality_id)
    )
    return {row[0]: row[1] for row in rows}
