"""The demo city seed: its shape, its books balancing, and that it runs only once.

One seed (2,000 residents, two card files) on a temporary SQLite file is shared by the module; tests only
read it, except the last two, which re-run the seed and run the first settlement.
"""

from __future__ import annotations

import base64
import json
import re
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from zengin_code import Bank

from auth_mock import cli as mock_card
from auth_mock.registry import Registry, demo_program_for
from settlement.tasks import run_period_now
from tests.privacy import SUITE_SECRETS, scan_database
from voucher_api import migrate
from voucher_api.cli import main
from voucher_api.clock import JST, FixedClock, japan_date
from voucher_api.config import Settings
from voucher_api.db import Base, make_engine, make_session_factory
from voucher_api.demo import (
    DEMO_STAFF_PASSWORD,
    MUNICIPALITY_CODE,
    DemoSummary,
    seed_demo,
    sync_residents,
)
from voucher_api.models import (
    Application,
    BindingMethod,
    CardBinding,
    Entitlement,
    LedgerEntry,
    LedgerKind,
    Municipality,
    Operator,
    Program,
    ProgramExclusion,
    Resident,
    Ride,
    RideStatus,
    Statement,
    Terminal,
    TerminalStatus,
    Vehicle,
)
from voucher_api.services import staff

pytestmark = pytest.mark.slow

SIZE = 2_000
CARDS = 2
# 2026-10-15 10:00 in Japan: the month of rides is September 2026, in fiscal year 2026.
NOW = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)


@dataclass
class SeededCity:
    settings: Settings
    var_dir: Path
    engine: Engine
    factory: sessionmaker[Session]
    summary: DemoSummary
    cards_issued_by_mock_card: list[dict[str, Any]]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededCity]:
    var_dir = tmp_path_factory.mktemp("demo-var")
    url = f"sqlite:///{var_dir / 'voucher.sqlite3'}"
    settings = Settings.from_env(
        {"VOUCHER_VAR_DIR": str(var_dir), "DATABASE_URL": url, "JWT_SECRET": "test-secret-" + "x" * 40}
    )
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    calls: list[dict[str, Any]] = []
    issue = mock_card.issue_card_file

    def recording_issue(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return issue(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:  # the module's fixture cannot use `monkeypatch`
        patch.setattr(mock_card, "issue_card_file", recording_issue)
        summary = seed_demo(
            settings,
            var_dir=var_dir,
            clock=FixedClock(NOW),
            cards=CARDS,
            size=SIZE,
            issuer_base_url="http://127.0.0.1:9",
            session_factory=factory,
        )
    yield SeededCity(settings, var_dir, engine, factory, summary, calls)
    engine.dispose()


@pytest.fixture
def db(city: SeededCity) -> Iterator[Session]:
    with city.factory() as session:
        yield session


def registry_people(city: SeededCity) -> dict[str, Any]:
    with Registry.open(city.var_dir / "registry.sqlite3") as registry:
        return {p.registry_id: p for p in registry.iter_people(municipality_code=MUNICIPALITY_CODE)}


def test_every_registry_person_becomes_a_resident(city: SeededCity, db: Session) -> None:
    assert db.scalar(select(func.count()).select_from(Resident)) == SIZE
    assert db.scalar(select(func.count()).select_from(Resident).where(Resident.district_id.is_(None))) == 0


def test_three_programs_exclude_each_other_both_ways(db: Session) -> None:
    programs = {p.id: p for p in db.scalars(select(Program))}
    assert sorted(p.code for p in programs.values()) == ["bus_abolished", "disability", "elderly"]
    assert all(p.fiscal_year == 2026 and p.valid_from == date(2026, 4, 1) for p in programs.values())
    assert all(p.valid_to == date(2027, 3, 31) for p in programs.values())
    pairs = {(e.program_id, e.excluded_program_id) for e in db.scalars(select(ProgramExclusion))}
    assert pairs == {(a, b) for a in programs for b in programs if a != b}


def test_each_eligible_resident_holds_exactly_the_first_program_they_qualify_for(
    city: SeededCity, db: Session
) -> None:
    people = registry_people(city)
    held = dict(
        db.execute(
            select(Resident.registry_id, Program.code)
            .join(Entitlement, Entitlement.resident_id == Resident.id)
            .join(Program, Program.id == Entitlement.program_id)
        ).all()
    )
    per_resident = Counter(db.scalars(select(Entitlement.resident_id)))
    assert max(per_resident.values()) == 1
    expected = {
        rid: code
        for rid, person in people.items()
        if (code := demo_program_for(person, date(2026, 4, 1))) is not None
    }
    assert held == expected
    assert set(held.values()) == {"elderly", "disability", "bus_abolished"}


def test_applications_are_taken_at_counter_and_mobile_office_in_spring(db: Session) -> None:
    rows = db.execute(select(Application.channel, Application.decided_at, Application.mobile_stop)).all()
    channels = Counter(row.channel.value for row in rows)
    assert channels["counter"] > 0
    assert channels["mobile_office"] > 0
    assert all(date(2026, 4, 1) <= japan_date(row.decided_at) <= date(2026, 5, 31) for row in rows)
    assert all((row.mobile_stop is not None) == (row.channel.value == "mobile_office") for row in rows)


def test_a_few_refused_applications_are_recorded_with_reasons(db: Session) -> None:
    refused = db.scalars(select(Application).where(Application.status == "rejected")).all()
    assert refused
    assert all(any(not reason["met"] for reason in a.reasons) for a in refused)


def test_five_operators_have_bank_accounts_zengin_knows(db: Session) -> None:
    operators = db.scalars(select(Operator)).all()
    assert len(operators) == 5
    for op in operators:
        bank = Bank.all[op.bank_code]
        assert op.branch_code in bank.branches
        assert re.fullmatch(r"\d{7}", op.account_number)
    mun = db.scalar(select(Municipality))
    assert mun is not None
    assert mun.remitter["branch_code"] in Bank.all[mun.remitter["bank_code"]].branches


def test_every_vehicle_has_one_enrolled_terminal_whose_key_file_matches(
    city: SeededCity, db: Session
) -> None:
    vehicles = db.scalars(select(Vehicle)).all()
    assert len(vehicles) == 30
    rows = db.scalars(select(Terminal)).all()
    assert sorted(t.vehicle_id for t in rows) == sorted(v.id for v in vehicles)
    for terminal in rows:
        assert terminal.status is TerminalStatus.ACTIVE
        key_path = city.var_dir / "terminals" / f"{terminal.id}.key"
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == terminal.public_key


def test_rides_fill_the_previous_month_in_japan_time(db: Session) -> None:
    boarded = db.scalars(select(Ride.boarded_at)).all()
    assert len(boarded) > SIZE // 10
    assert {(b.astimezone(JST).year, b.astimezone(JST).month) for b in boarded} == {(2026, 9)}
    assert len({japan_date(b) for b in boarded}) >= 25
    operators = {op for (op,) in db.execute(select(Ride.operator_id).distinct())}
    assert len(operators) == 5


def test_completed_rides_have_meter_fares_and_amounts_that_add_up(db: Session) -> None:
    completed = db.scalars(select(Ride).where(Ride.status == RideStatus.COMPLETED)).all()
    assert completed
    for ride in completed:
        assert ride.meter_fare is not None
        assert 700 <= ride.meter_fare <= 4_500
        assert ride.subsidy_amount is not None
        assert ride.rider_share is not None
        assert ride.subsidy_amount + ride.rider_share == ride.meter_fare
        assert ride.alighted_at is not None
        assert ride.alighted_at > ride.boarded_at


def test_some_rides_are_voided_and_their_units_returned(db: Session) -> None:
    voided = db.scalars(select(Ride).where(Ride.status == RideStatus.VOIDED)).all()
    assert voided
    returned = db.scalars(
        select(LedgerEntry.ride_id).where(LedgerEntry.kind == LedgerKind.VOID, LedgerEntry.amount > 0)
    ).all()
    assert {r.id for r in voided} == set(returned)


def test_every_balance_equals_the_sum_of_its_ledger(db: Session) -> None:
    sums = {
        ent_id: int(total)
        for ent_id, total in db.execute(
            select(LedgerEntry.entitlement_id, func.sum(LedgerEntry.amount)).group_by(
                LedgerEntry.entitlement_id
            )
        ).all()
    }
    entitlements = db.scalars(select(Entitlement)).all()
    assert entitlements
    for ent in entitlements:
        assert 0 <= ent.balance <= ent.granted
        assert sums[ent.id] == ent.balance


def test_program_limits_hold_for_every_resident(db: Session) -> None:
    rows = db.execute(
        select(Ride.entitlement_id, Ride.boarded_at, Program.limits)
        .join(Program, Program.id == Ride.program_id)
        .where(Ride.status != RideStatus.VOIDED)
    ).all()
    per_day: Counter[tuple[int, date]] = Counter()
    per_month: Counter[int] = Counter()
    limits: dict[int, dict[str, Any]] = {}
    for ent_id, boarded_at, program_limits in rows:
        per_day[(ent_id, japan_date(boarded_at))] += 1
        per_month[ent_id] += 1
        limits[ent_id] = program_limits
    for (ent_id, _day), n in per_day.items():
        assert n <= (limits[ent_id].get("per_day") or n)
    for ent_id, n in per_month.items():
        assert n <= (limits[ent_id].get("per_month") or n)


def test_card_holders_are_bound_by_their_signature_certificate_and_board_with_the_card(
    city: SeededCity, db: Session
) -> None:
    bindings = db.scalars(select(CardBinding)).all()
    assert len(bindings) == CARDS == len(city.summary.cards)
    assert {b.method for b in bindings} == {BindingMethod.SIGNATURE_CERTIFICATE}
    assert all(card.path.is_file() for card in city.summary.cards)
    card_rides = db.scalar(select(func.count()).select_from(Ride).where(Ride.binding_id.is_not(None)))
    assert card_rides
    methods = db.scalars(
        select(Application.identity_method).where(
            Application.resident_id.in_([b.resident_id for b in bindings])
        )
    ).all()
    assert set(methods) == {"signature_certificate"}


def test_the_demo_cards_are_made_by_the_mock_card_issue_command_for_registry_residents(
    city: SeededCity, db: Session
) -> None:
    calls = city.cards_issued_by_mock_card
    bound = set(
        db.scalars(
            select(Resident.registry_id).join(CardBinding, CardBinding.resident_id == Resident.id)
        ).all()
    )
    assert len(calls) == CARDS
    assert {call["resident_id"] for call in calls} == bound
    assert {call["registry_path"] for call in calls} == {city.var_dir / "registry.sqlite3"}
    listed = CliRunner().invoke(
        mock_card.main, ["--issuer-dir", str(city.var_dir / "issuer"), "list", "--json"]
    )
    assert listed.exit_code == 0, listed.output
    assert {card["registry_id"] for card in json.loads(listed.output)} == bound


def test_the_demo_database_holds_no_pin_or_password(city: SeededCity) -> None:
    assert scan_database(city.engine, SUITE_SECRETS) == []


def test_staff_sign_in_with_the_demo_password(db: Session) -> None:
    for username, role in (("madoguchi", "counter"), ("keiri", "finance"), ("shonin", "finance_approver")):
        principal = staff.authenticate(db, username=username, password=DEMO_STAFF_PASSWORD)
        assert role in principal.roles
    both = staff.authenticate(db, username="kenmu", password=DEMO_STAFF_PASSWORD)
    assert {"finance", "finance_approver"} <= set(both.roles)  # shows the four-eyes refusal
    op_admins = db.scalars(select(Operator.id)).all()
    principal = staff.authenticate(db, username="op01", password=DEMO_STAFF_PASSWORD)
    assert principal.operator_id in op_admins


def _twelve_digit_runs(value: Any) -> list[str]:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return re.findall(r"(?<![0-9A-Za-z])[0-9]{12,}(?![0-9A-Za-z])", text)


def test_no_twelve_digit_number_is_stored_anywhere(city: SeededCity, db: Session) -> None:
    found: list[tuple[str, str]] = []
    for table in Base.metadata.sorted_tables:
        for row in db.execute(select(table)).all():
            for column, value in zip(table.columns, row, strict=True):
                if isinstance(value, bool) or not isinstance(value, str | dict | list | int):
                    continue
                shown = str(value) if isinstance(value, int) else value  # an integer column too
                found += [(f"{table.name}.{column.name}", hit) for hit in _twelve_digit_runs(shown)]
    notes = sorted((city.var_dir / "terminals").glob("*.json"))
    assert notes, "the seed writes a note next to each terminal key"
    for path in [city.var_dir / "cards" / "index.json", *notes]:
        found += [(str(path), hit) for hit in _twelve_digit_runs(path.read_text(encoding="utf-8"))]
    found += [("summary", hit) for line in city.summary.lines() for hit in _twelve_digit_runs(line)]
    assert found == []


def test_syncing_the_unchanged_registry_changes_nothing(city: SeededCity, db: Session) -> None:
    mun_id = db.scalar(select(Municipality.id))
    assert mun_id is not None
    result = sync_residents(db, municipality_id=mun_id, people=registry_people(city).values(), now=NOW)
    db.rollback()
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, SIZE)


def test_seeding_again_changes_nothing(city: SeededCity) -> None:
    def counts() -> tuple[int, ...]:
        with city.factory() as session:
            return tuple(
                int(session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Resident, Application, Entitlement, LedgerEntry, Ride, Terminal, CardBinding)
            )

    before = counts()
    again = seed_demo(
        city.settings, var_dir=city.var_dir, clock=FixedClock(NOW), cards=CARDS, session_factory=city.factory
    )
    assert again.created is False
    assert counts() == before
    assert again.rides_completed == city.summary.rides_completed
    assert [c.path for c in again.cards] == [c.path for c in city.summary.cards]


def test_the_first_settlement_gives_every_operator_a_statement(city: SeededCity) -> None:
    run = run_period_now(city.factory, MUNICIPALITY_CODE, "2026-09", "test", clock=FixedClock(NOW))
    assert run.status.value == "succeeded"
    with city.factory() as session:
        statements = session.scalars(select(Statement)).all()
        completed = session.scalar(
            select(func.coalesce(func.sum(Ride.subsidy_amount), 0)).where(Ride.status == RideStatus.COMPLETED)
        )
    assert len(statements) == 5
    assert all(s.ride_count > 0 for s in statements)
    assert sum(s.subsidy_total for s in statements) == completed


def _cli_env(city: SeededCity) -> dict[str, str]:
    return {
        "VOUCHER_VAR_DIR": str(city.var_dir),
        "DATABASE_URL": city.settings.database_url,
        "JWT_SECRET": city.settings.jwt_secret,
    }


def test_create_staff_command_makes_an_account_that_signs_in(city: SeededCity, db: Session) -> None:
    args = [
        "create-staff",
        "--username",
        "tanaka",
        "--password",
        "long-enough-1",
        "--roles",
        "counter,auditor",
    ]
    result = CliRunner(env=_cli_env(city)).invoke(main, args)
    assert result.exit_code == 0, result.output
    principal = staff.authenticate(db, username="tanaka", password="long-enough-1")
    assert principal.roles == {"counter", "auditor"}


def test_create_staff_command_refuses_an_unknown_role(city: SeededCity) -> None:
    args = ["create-staff", "--username", "sato", "--password", "long-enough-1", "--roles", "mayor"]
    result = CliRunner(env=_cli_env(city)).invoke(main, args)
    assert result.exit_code == 2
    assert "役割 'mayor' はありません" in result.output


def test_settle_command_refuses_a_month_that_has_not_ended(city: SeededCity) -> None:
    result = CliRunner(env=_cli_env(city)).invoke(main, ["settle", "--period", "2099-01", "--sync"])
    assert result.exit_code == 1
    assert "対象月がまだ終わっていない" in result.output


def test_sync_registry_command_reports_an_unchanged_registry(city: SeededCity) -> None:
    result = CliRunner(env=_cli_env(city)).invoke(main, ["sync-registry", "--full"])
    assert result.exit_code == 0, result.output
    assert f"変更なし {SIZE:,}人" in result.output
