"""The thin task layer, called in this process (no broker): sessions, commits, failure bookkeeping.

The fan-out through a real broker and worker is tested in tests/integration/test_settlement_worker.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from settlement import service
from settlement.celery_app import SettlementCelery, create_celery
from tests.unit.settlement.factories import city, jst, ride
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.models import RunStatus, SettlementRun, Statement

AFTER_SEPTEMBER = jst(2026, 10, 1, 2, 0)


@pytest.fixture
def worker_app(tmp_path: Path, session_factory: sessionmaker[Session]) -> SettlementCelery:
    settings = Settings.from_env({"VOUCHER_VAR_DIR": str(tmp_path / "var"), "JWT_SECRET": "s" * 64})
    app = create_celery(settings, clock=FixedClock(AFTER_SEPTEMBER))
    app.voucher_database.use(session_factory)
    app.loader.import_default_modules()
    return app


def running_run(session: Session, municipality_id: int) -> SettlementRun:
    run = service.start_run(
        session,
        municipality_id=municipality_id,
        period=AFTER_SEPTEMBER.date().replace(month=9),
        trigger="beat",
        requested_by="system:beat",
        now=AFTER_SEPTEMBER,
    )
    service.begin_run(session, run_id=run.id, now=AFTER_SEPTEMBER)
    session.commit()
    return run


def test_close_operator_task_commits_the_statement_and_returns_its_id(
    worker_app: SettlementCelery, session: Session
) -> None:
    town = city(session, operators=1)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 9))
    run = running_run(session, town.mun.id)
    task: Any = worker_app.tasks["settlement.close_operator"]
    statement_id = task(str(run.id), str(town.fleets[0].operator.id))
    found = session.scalar(select(Statement).where(Statement.id == int(statement_id)))
    assert found is not None
    assert found.ride_count == 1


def test_finish_run_task_marks_the_run_succeeded(worker_app: SettlementCelery, session: Session) -> None:
    town = city(session, operators=1)
    run = running_run(session, town.mun.id)
    task: Any = worker_app.tasks["settlement.finish_run"]
    assert task(str(run.id)) == "succeeded"
    session.expire_all()
    stored = session.get(SettlementRun, run.id)
    assert stored is not None
    assert (stored.status, stored.finished_at is not None) == (RunStatus.SUCCEEDED, True)


def test_task_that_fails_for_good_marks_its_run_failed_with_a_reason(
    worker_app: SettlementCelery, session: Session
) -> None:
    town = city(session, operators=1)
    run = running_run(session, town.mun.id)
    task: Any = worker_app.tasks["settlement.close_operator"]
    error = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    task.on_failure(error, "task-1", (str(run.id), "1"), {}, None)
    failed = session.scalar(
        select(SettlementRun).where(SettlementRun.id == run.id).execution_options(populate_existing=True)
    )
    assert failed is not None
    assert failed.status is RunStatus.FAILED
    assert "OperationalError" in failed.error


def test_database_hiccups_are_retried_with_backoff(worker_app: SettlementCelery) -> None:
    task: Any = worker_app.tasks["settlement.close_operator"]
    assert OperationalError in task.autoretry_for
    assert (task.retry_backoff, task.acks_late) == (2, True)
