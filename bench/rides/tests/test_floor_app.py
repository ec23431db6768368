from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from bench.rides.floor_app import create_floor_app
from bench.rides.tests.conftest import BenchCity
from voucher_api.db import make_session_factory
from voucher_api.models import Entitlement, LedgerEntry, LedgerKind
from voucher_api.services import entitlements

NOW = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)


@pytest.fixture
def floor(bench_city: BenchCity) -> FlaskClient:
    return create_floor_app(bench_city.url, now=lambda: NOW).test_client()


def balance_and_ledger(bench_city: BenchCity, entitlement_id: int) -> tuple[int | None, int]:
    with make_session_factory(bench_city.engine)() as session:
        balance = session.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id))
        entries = session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.entitlement_id == entitlement_id)
        )
        return balance, int(entries or 0)


def test_floor_ride_takes_one_unit_and_writes_its_ledger_entry(
    bench_city: BenchCity, floor: FlaskClient
) -> None:
    entitlement_id = bench_city.city.entitlement_ids[0]
    balance, entries = balance_and_ledger(bench_city, entitlement_id)

    response = floor.post("/floor/rides", json={"entitlement_id": entitlement_id})

    assert response.status_code == 201
    assert balance is not None
    assert balance_and_ledger(bench_city, entitlement_id) == (balance - 1, entries + 1)
    with make_session_factory(bench_city.engine)() as session:
        assert entitlements.ledger_sum(session, entitlement_id) == balance - 1


def test_floor_refuses_an_exhausted_entitlement_and_writes_nothing(
    bench_city: BenchCity, floor: FlaskClient
) -> None:
    entitlement_id = bench_city.city.entitlement_ids[0]
    with make_session_factory(bench_city.engine)() as session:
        current = session.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) or 0
        entitlements.change_balance(
            session,
            entitlement_id=entitlement_id,
            amount=-current,
            kind=LedgerKind.ADJUSTMENT,
            actor="test",
            now=NOW,
        )
        session.commit()
    before = balance_and_ledger(bench_city, entitlement_id)

    response = floor.post("/floor/rides", json={"entitlement_id": entitlement_id})

    assert response.status_code == 409
    assert balance_and_ledger(bench_city, entitlement_id) == before == (0, before[1])
    with make_session_factory(bench_city.engine)() as session:  # give the units back for other tests
        entitlements.change_balance(
            session,
            entitlement_id=entitlement_id,
            amount=current,
            kind=LedgerKind.ADJUSTMENT,
            actor="test",
            now=NOW,
        )
        session.commit()


@pytest.mark.parametrize("body", [{}, {"entitlement_id": "1"}, {"entitlement_id": True}, [1]])
def test_floor_asks_for_an_entitlement_id(floor: FlaskClient, body: object) -> None:
    assert floor.post("/floor/rides", json=body).status_code == 400


def test_floor_needs_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(RuntimeError, match="DATABASE_URL"):
        create_floor_app()


def test_floor_health_answers_ok(floor: FlaskClient) -> None:
    assert floor.get("/health").get_json() == {"status": "ok"}
