"""Adjustments never lose one another: many real PostgreSQL connections adjust at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from settlement import disputes
from tests import factories as f
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import (
    StaffUser,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementStatus,
)
from voucher_api.services.errors import DomainError

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
RACERS = 8
NOW = datetime(2026, 10, 20, 0, 0, tzinfo=UTC)


@dataclass
class Setup:
    factory: sessionmaker[Session]
    municipality_id: int
    operator_id: int
    finance_ids: list[int]
    confirmed: dict[date, int]  # period -> statement id


def confirmed_statement(session: Session, mun_id: int, operator_id: int, period: date, code: str) -> int:
    statement = Statement(
        municipality_id=mun_id,
        operator_id=operator_id,
        period=period,
        number=f"999980-{period:%Y%m}-{code}",
        status=StatementStatus.CONFIRMED,
        ride_count=0,
        fare_total=0,
        rider_share_total=0,
        subsidy_total=0,
        adjustment_total=0,
        amount_due=0,
        generated_at=NOW,
    )
    session.add(statement)
    session.flush()
    return statement.id


@pytest.fixture
def setup(postgres_url: str) -> Iterator[Setup]:
    engine: Engine = make_engine(postgres_url, pool_size=RACERS)
    factory = make_session_factory(engine)
    with factory() as s:
        mun = f.municipality(s, code="999980", name="調整競合市")
        operator = f.operator(s, mun)
        finance_ids = []
        for n in range(RACERS):
            user = StaffUser(
                municipality_id=mun.id,
                username=f"race-finance-{operator.id}-{n}",
                display_name="精算",
                password_hash="!unused",
                roles=["finance"],
                active=True,
                created_at=NOW,
            )
            s.add(user)
            s.flush()
            finance_ids.append(user.id)
        confirmed = {
            period: confirmed_statement(s, mun.id, operator.id, period, operator.code)
            for period in (date(2026, 8, 1), date(2026, 9, 1))
        }
        s.commit()
        made = Setup(factory, mun.id, operator.id, finance_ids, confirmed)
    yield made
    engine.dispose()


def race(setup: Setup, work: Callable[[Session, int], int]) -> list[int | str]:
    """Run `work(session, n)` in RACERS threads at once, each committing; their results or error codes."""
    barrier = threading.Barrier(RACERS)
    outcomes: list[int | str] = []
    lock = threading.Lock()

    def racer(n: int) -> None:
        with setup.factory() as s:
            barrier.wait()
            result: int | str
            try:
                result = work(s, n)
                s.commit()
            except DomainError as exc:
                s.rollback()
                result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def october(setup: Setup) -> tuple[int, int, int, list[int]]:
    with setup.factory() as s:
        target = s.scalar(
            select(Statement).where(
                Statement.operator_id == setup.operator_id, Statement.period == date(2026, 10, 1)
            )
        )
        assert target is not None
        lines = s.scalars(
            select(StatementLine.subsidy_amount)
            .where(StatementLine.statement_id == target.id)
            .order_by(StatementLine.line_no)
        ).all()
        count = s.scalar(
            select(func.count()).select_from(StatementLine).where(StatementLine.statement_id == target.id)
        )
        assert count == len(lines)
        return target.adjustment_total, target.amount_due, len(lines), list(lines)


def test_adjustments_of_two_statements_at_once_all_land_on_one_new_draft_and_add_up(setup: Setup) -> None:
    periods = sorted(setup.confirmed)

    def work(s: Session, n: int) -> int:
        result = disputes.adjust_statement(
            s,
            statement_id=setup.confirmed[periods[n % 2]],
            municipality_id=setup.municipality_id,
            amount=100 * (n + 1),
            note=f"競合 {n}",
            staff_id=setup.finance_ids[n],
            now=NOW,
            idempotency_key=f"race-{n}",
        )
        return result.target.id

    outcomes = race(setup, work)
    expected = sum(100 * (n + 1) for n in range(RACERS))
    assert len(set(outcomes)) == 1, outcomes  # every one booked, all on the same October draft
    total, due, count, _lines = october(setup)
    assert (total, due, count) == (expected, expected, RACERS)


def test_one_idempotency_key_sent_many_times_at_once_books_one_adjustment(setup: Setup) -> None:
    def work(s: Session, _n: int) -> int:
        result = disputes.adjust_statement(
            s,
            statement_id=setup.confirmed[date(2026, 9, 1)],
            municipality_id=setup.municipality_id,
            amount=500,
            note="一度だけ",
            staff_id=setup.finance_ids[0],
            now=NOW,
            idempotency_key="the-same-key",
        )
        return result.adjustment.id

    outcomes = race(setup, work)
    assert len(set(outcomes)) == 1, outcomes
    with setup.factory() as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(StatementAdjustment)
                .where(StatementAdjustment.idempotency_key == "the-same-key")
            )
            == 1
        )
    assert october(setup)[:3] == (500, 500, 1)
