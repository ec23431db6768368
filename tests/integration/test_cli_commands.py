"""`voucher-api` commands against a real (SQLite) database and the embedded broker they would use.

- `settle` (queued mode) puts the run on CELERY_QUEUE, the only queue the worker consumes (and so does
  the API's sender; beat uses the worker's own `task_default_queue`, see tests/unit/settlement);
- `create-staff` leaves an audit entry saying who ran it and when;
- `terminal-code` creates a pending terminal for a vehicle and prints a one-time code that enrols it;
- `terminal-revoke` stops a lost terminal getting tokens, with the reason in the audit log.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from driver_terminal.keys import TerminalKey
from settlement.tasks import CLOSE_PERIOD
from tests import factories as f
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.cli import main
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import (
    AuditEntry,
    Operator,
    SettlementRun,
    StaffUser,
    Terminal,
    TerminalStatus,
    Vehicle,
)
from voucher_api.services import terminals
from voucher_api.services.errors import Refused, Unauthorized


@dataclass
class Installation:
    var_dir: Path
    database_url: str
    factory: sessionmaker[Session]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "VOUCHER_VAR_DIR": str(self.var_dir),
            "DATABASE_URL": self.database_url,
            "JWT_SECRET": "test-secret-" + "x" * 40,
            **extra,
        }


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """A migrated database of its own (the commands commit), with a city and one operator."""
    var_dir = tmp_path_factory.mktemp("cli-var")
    url = f"sqlite:///{var_dir / 'voucher.sqlite3'}"
    migrate.upgrade(url)
    factory = make_session_factory(make_engine(url))
    with factory() as session:
        mun = f.municipality(session)
        f.operator(session, mun, code="OP01")
        session.commit()
    return Installation(var_dir, url, factory)


def queued_tasks(broker_file: Path) -> dict[str, list[str]]:
    """The task names waiting on each queue of kombu's SQLAlchemy broker."""
    engine = create_engine(f"sqlite:///{broker_file}")
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT q.name, m.payload FROM kombu_message m JOIN kombu_queue q ON q.id = m.queue_id")
        ).all()
    engine.dispose()
    queues: dict[str, list[str]] = {}
    for name, payload in rows:
        queues.setdefault(name, []).append(json.loads(payload)["headers"]["task"])
    return queues


# kombu's SQLAlchemy transport declares its queue model with `lazy="noload"`, deprecated in SQLAlchemy 2.1.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_settle_puts_the_run_on_the_configured_queue(installation: Installation, tmp_path: Path) -> None:
    broker_file = tmp_path / "broker.sqlite3"
    env = installation.env(CELERY_BROKER_URL=f"sqla+sqlite:///{broker_file}", CELERY_QUEUE="obanazawa")
    result = CliRunner(env=env).invoke(main, ["settle", "--period", "2025-05"])
    assert result.exit_code == 0, result.output
    assert "ワーカーに依頼しました" in result.output
    assert queued_tasks(broker_file) == {"obanazawa": [CLOSE_PERIOD]}
    with installation.factory() as session:
        run = session.scalars(select(SettlementRun).order_by(SettlementRun.id.desc())).first()
    assert run is not None
    assert (run.trigger, run.status.value) == ("cli", "queued")


def test_settle_with_the_broker_down_fails_the_run_so_the_month_can_be_run_again(
    installation: Installation,
) -> None:
    env = installation.env(CELERY_BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    result = CliRunner(env=env).invoke(main, ["settle", "--period", "2025-06"])
    assert result.exit_code == 1, result.output
    assert "ワーカーに依頼できませんでした" in result.output
    assert "--sync" in result.output
    assert "Traceback" not in result.output
    with installation.factory() as session:
        run = session.scalars(select(SettlementRun).order_by(SettlementRun.id.desc())).first()
    assert run is not None
    assert (run.status.value, run.error, run.requested_by.startswith("cli")) == (
        "failed",
        "ワーカーに依頼できませんでした",
        True,
    )
    # the month is not held: the whole close runs here and now
    again = CliRunner(env=env).invoke(main, ["settle", "--period", "2025-06", "--sync"])
    assert again.exit_code == 0, again.output
    assert "精算が終わりました" in again.output


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_the_api_sends_to_the_configured_queue_too(installation: Installation, tmp_path: Path) -> None:
    """The sender the app factory builds (POST /settlement-runs uses it) targets CELERY_QUEUE."""
    broker_file = tmp_path / "broker.sqlite3"
    env = installation.env(CELERY_BROKER_URL=f"sqla+sqlite:///{broker_file}", CELERY_QUEUE="obanazawa")
    app = create_app(Settings.from_env(env), session_factory=installation.factory)
    app.extensions["voucher"]["tasks"].send(CLOSE_PERIOD, args=["1"])
    assert queued_tasks(broker_file) == {"obanazawa": [CLOSE_PERIOD]}


def test_create_staff_is_audited_with_who_ran_it_and_when(installation: Installation) -> None:
    args = [
        "create-staff",
        "--username",
        "yamada",
        "--password",
        "long-enough-1",
        "--roles",
        "counter,finance",
    ]
    before = datetime.now(UTC)
    result = CliRunner(env=installation.env(LOGNAME="sysadmin-sato")).invoke(main, args)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    with installation.factory() as session:
        user = session.scalars(select(StaffUser).where(StaffUser.username == "yamada")).one()
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity_type == "staff_user", AuditEntry.entity_id == str(user.id)
            )
        ).all()
    assert [(e.action, e.actor, e.municipality_id) for e in entries] == [
        ("staff.created", "cli:sysadmin-sato", user.municipality_id)
    ]
    assert before <= entries[0].at <= after
    assert entries[0].details["roles"] == ["counter", "finance"]
    assert "long-enough-1" not in json.dumps(entries[0].details)


def _public_key_b64() -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_terminal_code_makes_a_one_time_code_that_enrols_the_vehicle(installation: Installation) -> None:
    with installation.factory() as session, session.begin():
        op = session.scalars(select(Operator).where(Operator.code == "OP01")).one()
        vehicle = Vehicle(operator_id=op.id, registration="山形 500 あ 12-34", label="1号車")
        session.add(vehicle)
        session.flush()
        vehicle_id = vehicle.id
    runner = CliRunner(env=installation.env(LOGNAME="sysadmin-sato"))

    shown = runner.invoke(main, ["terminal-code", "--operator", "OP01", "--vehicle", "1号車"])
    assert shown.exit_code == 0, shown.output
    assert "登録コード: " in shown.output
    assert "driver-terminal enrol --api http://127.0.0.1:8000 --code " in shown.output

    quiet = runner.invoke(
        main, ["terminal-code", "--operator", "OP01", "--vehicle", "山形 500 あ 12-34", "--code-only"]
    )
    assert quiet.exit_code == 0, quiet.output
    code = quiet.output.strip()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)

    with installation.factory() as session, session.begin():
        enrolled = terminals.enrol(
            session, code=code, public_key_b64=_public_key_b64(), now=datetime.now(UTC)
        )
        terminal_id = enrolled.id
        assert (enrolled.vehicle_id, enrolled.status) == (vehicle_id, TerminalStatus.ACTIVE)
        created = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "terminal.created", AuditEntry.entity_id == str(terminal_id)
            )
        ).one()
        assert created.actor == "cli:sysadmin-sato"
    with installation.factory() as session, session.begin(), pytest.raises(Refused) as used:
        terminals.enrol(session, code=code, public_key_b64=_public_key_b64(), now=datetime.now(UTC))
    assert used.value.code == "terminal.enrolment_invalid"  # the code works once
    with installation.factory() as session:
        pending = session.scalars(
            select(Terminal).where(
                Terminal.vehicle_id == vehicle_id, Terminal.status == TerminalStatus.PENDING
            )
        ).all()
    assert len(pending) == 1  # the first command's code, not used


@pytest.mark.parametrize(
    ("operator", "vehicle", "message"),
    [("OP99", "1号車", "事業者コード OP99"), ("OP01", "99号車", "車両 99号車 はありません")],
)
def test_terminal_code_names_what_it_cannot_find(
    installation: Installation, operator: str, vehicle: str, message: str
) -> None:
    result = CliRunner(env=installation.env()).invoke(
        main, ["terminal-code", "--operator", operator, "--vehicle", vehicle]
    )
    assert result.exit_code == 1
    assert message in result.output


def test_terminal_revoke_stops_a_lost_terminal_signing_in_and_says_why_in_the_audit_log(
    installation: Installation,
) -> None:
    key = TerminalKey(Ed25519PrivateKey.generate())
    with installation.factory() as session, session.begin():
        op = session.scalars(select(Operator).where(Operator.code == "OP01")).one()
        vehicle = Vehicle(operator_id=op.id, registration="山形 500 あ 77-77", label="7号車")
        session.add(vehicle)
        session.flush()
        now = datetime.now(UTC)
        created = terminals.create_terminal(
            session,
            vehicle_id=vehicle.id,
            municipality_id=op.municipality_id,
            actor="t",
            now=now,
            ttl=timedelta(hours=1),
        )
        terminal_id = terminals.enrol(
            session, code=created.enrolment_code, public_key_b64=key.public_key_b64(), now=now
        ).id
        terminals.authenticate_terminal(session, assertion=key.assertion(terminal_id, now), now=now)
    runner = CliRunner(env=installation.env(LOGNAME="sysadmin-sato"))

    refused = runner.invoke(main, ["terminal-revoke", str(terminal_id), "--reason", " "])
    assert refused.exit_code == 1
    assert "理由" in refused.output
    unknown = runner.invoke(main, ["terminal-revoke", "987654", "--reason", "車両盗難"])
    assert unknown.exit_code == 1

    done = runner.invoke(main, ["terminal-revoke", str(terminal_id), "--reason", "車両盗難"])
    assert done.exit_code == 0, done.output
    assert f"端末番号 {terminal_id}" in done.output
    again = runner.invoke(main, ["terminal-revoke", str(terminal_id), "--reason", "車両盗難"])
    assert again.exit_code == 0, again.output  # changes nothing more
    with installation.factory() as session:
        revoked = session.get(Terminal, terminal_id)
        assert revoked is not None
        assert (revoked.status, revoked.enrolment_code_hash) == (TerminalStatus.REVOKED, None)
        entries = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "terminal.revoked", AuditEntry.entity_id == str(terminal_id)
            )
        ).all()
        assert [(e.actor, e.details["reason"], e.details["was"]) for e in entries] == [
            ("cli:sysadmin-sato", "車両盗難", "active")
        ]
        later = datetime.now(UTC)
        with pytest.raises(Unauthorized) as stopped:
            terminals.authenticate_terminal(session, assertion=key.assertion(terminal_id, later), now=later)
    assert stopped.value.code == "terminal.not_active"
