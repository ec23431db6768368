"""A real Celery worker closes a month: prefork processes, a real broker, a real database.

- on the embedded default (SQLite database, server-less SQLAlchemy broker): always runs;
- on PostgreSQL + Redis (CI): one draft statement per operator, and a worker process SIGKILLed in the
  middle of a run loses nothing and duplicates nothing once its messages are redelivered;
- on PostgreSQL + RabbitMQ (CI): the same close, with the chord's results in the database.

Each test starts its own worker on its own queue and its own database, and stops it at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from settlement import service
from settlement.celery_app import create_celery
from tests.unit.settlement.factories import city, jst, ride
from voucher_api import migrate
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import RunStatus, SettlementRun, Statement, StatementLine, StatementStatus

ROOT = Path(__file__).resolve().parents[2]
CELERY = ROOT / ".venv" / "bin" / "celery"
SEPTEMBER = date(2026, 9, 1)
AFTER_SEPTEMBER = jst(2026, 10, 1, 2, 0)
OPERATORS = 3
RIDES_PER_OPERATOR = 4
WAIT_SECONDS = 120.0  # a ceiling for a slow CI machine, not a speed requirement

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass
class Stack:
    """Where the worker and the test meet: the database, the broker, a queue of their own."""

    database_url: str
    broker_url: str
    queue: str
    var_dir: Path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            CELERY_QUEUE=self.queue,
            VOUCHER_VAR_DIR=str(self.var_dir),
            JWT_SECRET="worker-test-" + "x" * 60,
            PYTHONUNBUFFERED="1",
        )
        return env

    def settings(self) -> Settings:
        return Settings.from_env(self.env())  # CELERY_QUEUE is in the environment


def wait_until(
    condition: Callable[[], bool],
    what: str,
    log: Path | None = None,
    worker: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and worker.poll() is not None:
            what += f" (the worker exited with {worker.returncode})"
            break
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    pytest.fail(f"gave up waiting for {what}\n--- worker log ---\n{tail}")


@contextmanager
def running_worker(stack: Stack, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        str(CELERY),
        "-A",
        "settlement.celery_app",
        "worker",
        "--pool=prefork",
        "-c",
        "2",
        "-l",
        "INFO",
        "-Q",
        stack.queue,
        "-n",
        f"{stack.queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command, cwd=ROOT, env=stack.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield worker
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)


def seed(factory: sessionmaker[Session]) -> tuple[int, int]:
    """A city with operators and a month of rides; returns (municipality id, number of rides)."""
    with factory() as session:
        town = city(session, operators=OPERATORS)
        count = 0
        for fleet in town.fleets:
            for n in range(RIDES_PER_OPERATOR):
                ride(session, town, fleet, boarded_at=jst(2026, 9, 2 + n), fare=1000 + 300 * n)
                count += 1
        session.commit()
        return town.mun.id, count


def queue_run(factory: sessionmaker[Session], municipality_id: int) -> int:
    with factory() as session:
        run = service.start_run(
            session,
            municipality_id=municipality_id,
            period=SEPTEMBER,
            trigger="api",
            requested_by="test",
            now=AFTER_SEPTEMBER,
        )
        session.commit()
        return run.id


def run_status(factory: sessionmaker[Session], run_id: int) -> SettlementRun:
    with factory() as session:
        run = session.get(SettlementRun, run_id)
        assert run is not None
        return run


def statement_snapshot(factory: sessionmaker[Session]) -> dict[str, list[tuple[int | None, int]]]:
    """Every statement's lines as (ride, subsidy), by statement number."""
    with factory() as session:
        rows = session.execute(
            select(Statement.number, StatementLine.ride_id, StatementLine.subsidy_amount)
            .join(StatementLine, StatementLine.statement_id == Statement.id)
            .order_by(Statement.number, StatementLine.line_no)
        ).all()
    snapshot: dict[str, list[tuple[int | None, int]]] = {}
    for number, ride_id, subsidy in rows:
        snapshot.setdefault(number, []).append((ride_id, subsidy))
    return snapshot


def close_september(
    stack: Stack,
    factory: sessionmaker[Session],
    municipality_id: int,
    log: Path,
    worker: subprocess.Popen[bytes],
) -> int:
    run_id = queue_run(factory, municipality_id)
    sender = create_celery(stack.settings())
    sender.send_task("settlement.close_period", args=[str(run_id)])

    def finished() -> bool:
        return run_status(factory, run_id).status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

    wait_until(finished, f"run {run_id} to finish", log, worker)
    return run_id


def assert_one_draft_statement_per_operator(factory: sessionmaker[Session], rides: int) -> None:
    with factory() as session:
        statements = session.scalars(select(Statement)).all()
        lines = session.scalar(select(func.count()).select_from(StatementLine))
        distinct_rides = session.scalar(select(func.count(func.distinct(StatementLine.ride_id))))
        for statement in statements:
            subsidy = session.scalar(
                select(func.sum(StatementLine.subsidy_amount)).where(
                    StatementLine.statement_id == statement.id
                )
            )
            assert statement.subsidy_total == subsidy
    assert sorted((s.number, s.status) for s in statements) == [
        (f"062120-202609-OP{n:02d}", StatementStatus.DRAFT) for n in range(1, OPERATORS + 1)
    ]
    assert (lines, distinct_rides) == (rides, rides)


def close_once_and_check(stack: Stack, log: Path) -> None:
    """Seed the city, let a worker close September, and check the run and its statements."""
    engine = make_engine(stack.database_url)
    factory = make_session_factory(engine)
    try:
        municipality_id, rides = seed(factory)
        with running_worker(stack, log) as worker:
            run_id = close_september(stack, factory, municipality_id, log, worker)
        run = run_status(factory, run_id)
        assert (run.status, run.operators_done, run.operators_total) == (
            RunStatus.SUCCEEDED,
            OPERATORS,
            OPERATORS,
        ), log.read_text()[-3000:]
        assert_one_draft_statement_per_operator(factory, rides)
    finally:
        engine.dispose()


# --- the embedded default ------------------------------------------------------------------------


def embedded_stack(tmp_path: Path) -> Stack:
    """A migrated SQLite database and kombu's server-less SQLite broker, as `dev.py start` runs them."""
    var = tmp_path / "var"
    var.mkdir()
    database_url = f"sqlite:///{var / 'voucher.sqlite3'}"
    migrate.upgrade(database_url)
    return Stack(database_url, f"sqla+sqlite:///{var / 'broker.sqlite3'}", f"q-{uuid.uuid4().hex[:8]}", var)


# kombu's SQLAlchemy transport declares its queue model with `lazy="noload"`, deprecated in SQLAlchemy 2.1.
@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_worker_closes_a_month_on_the_embedded_sqlite_broker(tmp_path: Path) -> None:
    stack = embedded_stack(tmp_path)
    close_once_and_check(stack, tmp_path / "worker.log")


@pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")
def test_a_run_left_running_on_the_embedded_broker_is_finished_when_the_worker_starts(tmp_path: Path) -> None:
    # The SQLite broker deletes a message when a worker takes it: a worker killed mid-close loses it.
    # Here the run is marked running and no message waits anywhere, as after such a kill.
    stack = embedded_stack(tmp_path)
    engine = make_engine(stack.database_url)
    factory = make_session_factory(engine)
    try:
        municipality_id, rides = seed(factory)
        run_id = queue_run(factory, municipality_id)
        with factory() as session:
            service.begin_run(session, run_id=run_id, now=AFTER_SEPTEMBER)  # the killed worker got this far
            session.commit()
        assert run_status(factory, run_id).status is RunStatus.RUNNING
        log = tmp_path / "worker.log"
        with running_worker(stack, log) as worker:

            def finished() -> bool:
                return run_status(factory, run_id).status is RunStatus.SUCCEEDED

            wait_until(finished, f"run {run_id} to be finished by the restarted worker", log, worker)
        assert "sending its close again" in log.read_text()
        assert_one_draft_statement_per_operator(factory, rides)
    finally:
        engine.dispose()


# --- PostgreSQL and Redis ------------------------------------------------------------------------


@pytest.fixture
def pg_stack(postgres_database: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Stack, Engine]]:
    var = tmp_path / "var"
    var.mkdir()
    stack = Stack(postgres_database, redis_url, f"settle-{uuid.uuid4().hex[:8]}", var)
    engine = make_engine(postgres_database)
    yield stack, engine
    engine.dispose()


@pytest.mark.redis
@pytest.mark.postgres
def test_worker_closes_a_month_with_one_draft_statement_per_operator(
    pg_stack: tuple[Stack, Engine], tmp_path: Path
) -> None:
    stack, engine = pg_stack
    factory = make_session_factory(engine)
    municipality_id, rides = seed(factory)
    log = tmp_path / "worker.log"
    with running_worker(stack, log) as worker:
        run_id = close_september(stack, factory, municipality_id, log, worker)
        first = statement_snapshot(factory)
        again = close_september(stack, factory, municipality_id, log, worker)
    assert statement_snapshot(factory) == first  # a re-run changes nothing: same lines, same amounts
    for finished in (run_id, again):
        run = run_status(factory, finished)
        assert (run.status, run.operators_done) == (RunStatus.SUCCEEDED, OPERATORS), log.read_text()[-3000:]
    assert_one_draft_statement_per_operator(factory, rides)


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_worker_closes_a_month_on_rabbitmq_with_results_in_the_database(
    postgres_database: str, amqp_url: str, tmp_path: Path
) -> None:
    # RabbitMQ is the other broker production may use (§9); with it the chord's results live in the
    # database (settlement.celery_app.result_backend_url), so nothing here touches Redis.
    var = tmp_path / "var"
    var.mkdir()
    stack = Stack(postgres_database, amqp_url, f"settle-amqp-{uuid.uuid4().hex[:8]}", var)
    assert create_celery(stack.settings()).conf.result_backend.startswith("db+postgresql+psycopg://")
    log = tmp_path / "worker.log"
    try:
        close_once_and_check(stack, log)
    finally:
        _delete_queue(amqp_url, stack.queue)
    assert "transport:   amqp://" in log.read_text()  # the worker's banner: it did consume RabbitMQ


def _delete_queue(url: str, queue: str) -> None:
    """The test's own queue is durable on RabbitMQ: remove it so test runs do not pile queues up."""
    from kombu.connection import Connection

    with Connection(url, connect_timeout=2) as conn:  # type: ignore[no-untyped-call]
        conn.default_channel.queue_delete(queue)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The parent pid is the 2nd field after the parenthesised command name.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def backends_waiting_on_locks(engine: Engine) -> int:
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return int(waiting or 0)


@pytest.mark.redis
@pytest.mark.postgres
def test_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(
    pg_stack: tuple[Stack, Engine], tmp_path: Path
) -> None:
    stack, engine = pg_stack
    factory = make_session_factory(engine)
    municipality_id, rides = seed(factory)
    log = tmp_path / "worker.log"
    with running_worker(stack, log) as worker:
        close_september(stack, factory, municipality_id, log, worker)
        before = statement_snapshot(factory)

        run_id = queue_run(factory, municipality_id)
        # Hold the audit log: a rebuilding task deletes its old lines and writes the new ones, then
        # blocks recording that it did, with the whole rewrite not yet committed.
        blocker = engine.connect()
        held: Any = blocker.begin()
        blocker.execute(text("LOCK TABLE audit_entries IN SHARE MODE"))
        try:
            create_celery(stack.settings()).send_task("settlement.close_period", args=[str(run_id)])
            wait_until(
                lambda: backends_waiting_on_locks(engine) >= 2, "two tasks to be mid-write", log, worker
            )
            victims = children_of(worker.pid)
            assert victims, "the worker has no pool processes"
            for child in victims:
                os.kill(child, signal.SIGKILL)
        finally:
            held.rollback()
            blocker.close()

        def finished() -> bool:
            return run_status(factory, run_id).status in (RunStatus.SUCCEEDED, RunStatus.FAILED)

        wait_until(finished, "the run to finish after the kill", log, worker)
    run = run_status(factory, run_id)
    assert (run.status, run.operators_done) == (RunStatus.SUCCEEDED, OPERATORS), log.read_text()[-3000:]
    assert statement_snapshot(factory) == before
    assert_one_draft_statement_per_operator(factory, rides)
