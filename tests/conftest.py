"""Shared fixtures: one migrated database per test session, a savepoint per test, the app, cards.

TEST_DATABASE_URL selects PostgreSQL (CI sets it); without it the suite runs on a SQLite file. Tests marked
`postgres` or `redis` need the real service: they skip when it is missing, and fail instead when CI=true.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import CARD_PASSWORD, CARD_PIN
from tests.privacy import SUITE_SECRETS, DatabaseWatch, describe, findings_in, scan_database
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.db import make_engine

IN_CI = os.environ.get("CI", "").lower() == "true"

# No timing assertion in a test, Hypothesis's default 200 ms deadline included: a loaded CI machine would
# fail a correct property. CI prints the failing example's blob so it can be replayed (@reproduce_failure).
hypothesis_settings.register_profile("suite", deadline=None, print_blob=True)
hypothesis_settings.load_profile("suite")
CARD_SECRETS = (CARD_PIN, CARD_PASSWORD)  # the API tests' cards; SUITE_SECRETS holds every secret typed


class LogTap(logging.Handler):
    """Keeps every log line the project writes during the session, for the privacy guard."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a broken record must not break the suite; the guard reads what it can
            self.lines.append(str(record.msg))


LOG_TAP = LogTap()
PROJECT_LOGGERS = ("voucher_api", "settlement", "auth_mock", "driver_terminal", "werkzeug", "celery", "flask")


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(LOG_TAP)
    for name in PROJECT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The privacy guard over the whole suite's logs: no individual number, no PIN or password."""
    findings = [
        f"{hit}: {line[:120]}" for line in LOG_TAP.lines for hit in findings_in(line, SUITE_SECRETS, "log")
    ]
    if findings:
        print("\nPRIVACY GUARD: the logs hold what must never be kept:\n" + "\n".join(findings[:20]))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _missing(service: str, why: str) -> None:
    if IN_CI:
        pytest.fail(f"{service} is required in CI but is not available: {why}")
    pytest.skip(f"{service} not available: {why}")


def postgres_admin_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


def create_postgres_database(admin_url: str, prefix: str) -> str:
    """A fresh database next to the one in `admin_url`; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(admin_url: str, db_url: str) -> None:
    name = make_url(db_url).database
    url = make_url(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    admin = postgres_admin_url()
    if admin:
        url = create_postgres_database(admin, "voucher_test")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    migrate.upgrade(url)
    yield url
    # Each test's work is scanned before its rollback (`connection`); this catches what was committed.
    engine = make_engine(url)
    findings = scan_database(engine, SUITE_SECRETS)
    engine.dispose()
    if admin:
        drop_postgres_database(admin, url)
    assert not findings, findings


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """The test's connection, inside a transaction rolled back at the end.

    The privacy guard: before the rollback, the text, JSON and binary columns of every project table the
    test wrote to are scanned for individual numbers and the suite's PINs and passwords; a hit fails the
    test (at teardown). What the API committed during the test is in the transaction, so it is seen.
    """
    conn = engine.connect()
    watch = DatabaseWatch.attach(conn)
    outer = conn.begin()
    yield conn
    findings: list[str] = []
    try:
        if outer.is_active:
            findings = watch.findings(SUITE_SECRETS)
    finally:
        outer.rollback()
        conn.close()
    assert not findings, describe(findings)


@pytest.fixture
def session_factory(connection: Connection) -> sessionmaker[Session]:
    # Every commit inside the code under test releases a savepoint; the test's transaction is rolled back.
    return sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    s = session_factory()
    yield s
    s.close()


@pytest.fixture
def clock() -> FixedClock:
    from datetime import UTC, datetime

    # 2026-10-15 10:00 in Japan: a Thursday in fiscal year 2026.
    return FixedClock(datetime(2026, 10, 15, 1, 0, tzinfo=UTC))


class RecordingTaskSender:
    """Stands in for the broker in API tests; integration tests use a real worker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        self.sent.append((name, args))
        return f"task-{len(self.sent)}"

    def ping(self) -> bool:
        return True


@pytest.fixture
def task_sender() -> RecordingTaskSender:
    return RecordingTaskSender()


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    var = tmp_path_factory.mktemp("var")
    return Settings.from_env(
        {"VOUCHER_VAR_DIR": str(var), "JWT_SECRET": "test-secret-" + "x" * 70, "DATABASE_URL": "sqlite://"}
    )


# --- cards ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A mock J-LIS for the whole session (key generation is slow)."""
    from datetime import UTC, datetime

    from auth_mock.issuer import Issuer

    directory = tmp_path_factory.mktemp("issuer")
    return Issuer.create(directory, base_url="http://127.0.0.1:9", now=datetime(2026, 4, 1, tzinfo=UTC))


@pytest.fixture(scope="session")
def verifier(issuer: Any) -> Any:
    from voucher_api.services.identity import CardVerifier

    return CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes())


@pytest.fixture(scope="session")
def card_factory(issuer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Issue virtual cards; cached by label so the slow RSA work happens once per session."""
    from datetime import UTC, date, datetime

    from auth_mock.issuer import CardHolder

    directory = tmp_path_factory.mktemp("cards")
    made: dict[str, Path] = {}

    def make(
        label: str = "a", *, kind: str = "standard", pin: str = CARD_PIN, password: str = CARD_PASSWORD
    ) -> Path:
        key = f"{label}:{kind}"
        if key not in made:
            holder = CardHolder(
                family_name="尾花沢",
                given_name=f"花子{label}",
                family_name_kana="オバナザワ",
                given_name_kana="ハナコ",
                sex="female",
                birth_date=date(1945, 6, 1),
                address="山形県尾花沢市若葉町一丁目1番1号",
                municipality_code="062120",
                registry_id=f"062120-9{abs(hash(label)) % 1000000:06d}",
            )
            out = directory / f"{label}-{kind}.json"
            issuer.issue_card(
                holder,
                pin=pin,
                password=password if kind != "face_recognition" else None,
                kind=kind,
                out=out,
                now=datetime(2026, 4, 1, tzinfo=UTC),
            )
            made[key] = out
        return made[key]

    return make


@pytest.fixture
def app(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    verifier: Any,
    task_sender: RecordingTaskSender,
) -> Flask:
    return create_app(
        settings, session_factory=session_factory, clock=clock, verifier=verifier, task_sender=task_sender
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- real services -------------------------------------------------------------------------------


def _own_postgres_database(prefix: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards (skipped, or failed in CI, without one)."""
    admin = postgres_admin_url()
    if not admin:
        _missing("PostgreSQL", "TEST_DATABASE_URL is not set")
        raise AssertionError("unreachable")
    url = create_postgres_database(admin, prefix)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(admin, url)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for tests that race real connections."""
    yield from _own_postgres_database("voucher_race")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of this test's own, for data it commits."""
    yield from _own_postgres_database("voucher_own")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """RabbitMQ, the other production broker (§9): TEST_AMQP_URL, or the local default."""
    url = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    try:
        from kombu.connection import Connection

        with Connection(url, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # any failure to reach the broker means "missing"
        _missing("RabbitMQ", str(exc))
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure to reach Redis means "missing"
        _missing("Redis", str(exc))
    return url
