"""Thin settlement tasks: they take ids and periods as strings, open a session, call the service, commit.

    settlement.close_previous_month()          beat, 02:00 JST on the 1st: queue a run per municipality
    settlement.close_period(run_id)            mark the run running, fan out a chord:
      settlement.close_operator(run_id, op_id)   one statement, one transaction, counted on the run
      → settlement.finish_run(run_id)            the run succeeded

Database hiccups (OperationalError: a dropped connection, a deadlock, SQLite busy) are retried with
exponential backoff; a task that still fails marks its run failed, so the period can be run again.
Every task is idempotent, so a redelivery after a killed worker is harmless.

`run_period_now` runs a whole period in the calling process, without a broker (CLI, demo seed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from celery import Task, chord, shared_task
from celery.utils.log import get_task_logger
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from settlement import service
from settlement.statements import format_period, parse_period
from voucher_api.clock import Clock, SystemClock
from voucher_api.models import Municipality, SettlementRun
from voucher_api.services.errors import DomainError, NotFound

log = get_task_logger(__name__)

CLOSE_PERIOD = "settlement.close_period"
CLOSE_OPERATOR = "settlement.close_operator"
FINISH_RUN = "settlement.finish_run"
CLOSE_PREVIOUS_MONTH = "settlement.close_previous_month"


class SettlementTask(Task):  # type: ignore[misc]  # Celery ships no type hints
    """Retries database hiccups with backoff; on final failure marks the task's run (first arg) failed."""

    autoretry_for = (OperationalError,)
    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8
    acks_late = True

    def session_factory(self) -> sessionmaker[Session]:
        """The worker process's session factory (see celery_app.WorkerDatabase)."""
        database = getattr(self.app, "voucher_database", None)
        if database is None:
            raise RuntimeError("settlement tasks run on the app made by settlement.celery_app.create_celery")
        factory: sessionmaker[Session] = database.session_factory()
        return factory

    def now(self) -> datetime:
        """The current instant from the app's domain clock (fixed in tests)."""
        clock: Clock = getattr(self.app, "voucher_clock", None) or SystemClock()
        return clock.now()

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Celery calls this once retries are exhausted: the run fails, so the period can be run again."""
        run_id = args[0] if args else (kwargs or {}).get("run_id")
        if run_id is None:
            log.error("%s failed: %r", self.name, exc)
            return
        message = f"{self.name} が失敗しました: {type(exc).__name__}"
        if isinstance(exc, DomainError):
            message += f" ({exc.code})"
        try:
            with self.session_factory()() as session:
                service.fail_run(session, run_id=int(run_id), error=message, now=self.now())
                session.commit()
        except Exception:  # the run must not hide the original failure; log and move on
            log.exception("could not mark settlement run %s failed", run_id)


def settlement_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`shared_task` with the settlement base class, bound (Celery's own decorator has no type hints)."""
    decorator: Callable[[Callable[..., Any]], Any] = shared_task(
        bind=True, base=SettlementTask, name=name, **options
    )
    return decorator


@settlement_task(CLOSE_PERIOD)
def close_period(self: SettlementTask, run_id: str) -> list[str]:
    """Start a queued run: mark it running and fan out one close_operator per operator, then finish_run."""
    factory = self.session_factory()
    with factory() as session:
        plan = service.begin_run(session, run_id=int(run_id), now=self.now())
        session.commit()
    if not plan.proceed:
        log.info("run %s already ended; nothing to do", run_id)
        return []
    operators = [str(operator_id) for operator_id in plan.operator_ids]
    if not operators:
        with factory() as session:
            service.finish_run(session, run_id=int(run_id), now=self.now())
            session.commit()
        return []
    header = [self.app.signature(CLOSE_OPERATOR, args=(run_id, op), immutable=True) for op in operators]
    body = self.app.signature(FINISH_RUN, args=(run_id,), immutable=True)
    chord(header, app=self.app)(body)
    log.info("run %s (%s): %d operators queued", run_id, format_period(plan.period), len(operators))
    return operators


@settlement_task(CLOSE_OPERATOR, ignore_result=False)
def close_operator(self: SettlementTask, run_id: str, operator_id: str) -> str:
    """Build one operator's statement of the run's period (idempotent); returns the statement id."""
    with self.session_factory()() as session:
        statement = service.close_operator(
            session, run_id=int(run_id), operator_id=int(operator_id), now=self.now()
        )
        statement_id = statement.id
        session.commit()
    return str(statement_id)


@settlement_task(FINISH_RUN, ignore_result=False)
def finish_run(self: SettlementTask, run_id: str) -> str:
    """Mark the run succeeded once every operator is closed."""
    with self.session_factory()() as session:
        run = service.finish_run(session, run_id=int(run_id), now=self.now())
        status = run.status.value
        session.commit()
    return status


@settlement_task(CLOSE_PREVIOUS_MONTH)
def close_previous_month(self: SettlementTask) -> list[str]:
    """Beat: queue a run of last month for every municipality, then start each (after the commit)."""
    with self.session_factory()() as session:
        runs = service.close_previous_month(session, now=self.now())
        run_ids = [str(run.id) for run in runs]
        session.commit()
    for run_id in run_ids:
        self.app.signature(CLOSE_PERIOD, args=(run_id,)).apply_async()
    return run_ids


def run_period_now(
    session_factory: sessionmaker[Session],
    municipality_code: str,
    period: date | str,
    requested_by: str,
    *,
    clock: Clock | None = None,
    trigger: str = "cli",
) -> SettlementRun:
    """Run a whole period in this process, no broker: queue, close every operator, finish.

    Each operator is its own transaction, as in the worker. Raises NotFound for an unknown municipality,
    and what start_run raises (settlement.period_open, settlement.already_running); any other failure
    marks the run failed and is re-raised.
    """
    clock = clock or SystemClock()
    month = parse_period(period) if isinstance(period, str) else period.replace(day=1)
    with session_factory() as session:
        municipality_id = session.scalar(
            select(Municipality.id).where(Municipality.code == municipality_code)
        )
        if municipality_id is None:
            raise NotFound("not_found", municipality_code=municipality_code)
        run = service.start_run(
            session,
            municipality_id=municipality_id,
            period=month,
            trigger=trigger,
            requested_by=requested_by,
            now=clock.now(),
        )
        run_id = run.id
        session.commit()
    try:
        with session_factory() as session:
            plan = service.begin_run(session, run_id=run_id, now=clock.now())
            session.commit()
        for operator_id in plan.operator_ids:
            with session_factory() as session:
                service.close_operator(session, run_id=run_id, operator_id=operator_id, now=clock.now())
                session.commit()
        with session_factory() as session:
            finished = service.finish_run(session, run_id=run_id, now=clock.now())
            session.commit()
            return finished
    except BaseException as exc:
        with session_factory() as session:
            service.fail_run(
                session,
                run_id=run_id,
                error=f"run_period_now が失敗しました: {type(exc).__name__}",
                now=clock.now(),
            )
            session.commit()
        raise
