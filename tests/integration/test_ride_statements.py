"""The boarding and alighting as production runs them: an engine-bound session on PostgreSQL, where each
statement of the hot path commits by itself (no BEGIN, no COMMIT), except the part of a limited
program's boarding that must be one transaction.

The API tests run the same routes inside a savepoint per test, which keeps its transaction; these
tests use real committed connections instead, like tests/integration/test_boarding_race.py.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, event, func, select

from tests import factories as f
from tests.api.conftest import City, board
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import AuditEntry, Entitlement, LedgerEntry, Ride, RideStatus, StaffRole

pytestmark = [pytest.mark.postgres, pytest.mark.integration]


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    eng = make_engine(postgres_url, pre_ping=False)  # as the app builds its own
    yield eng
    eng.dispose()


@pytest.fixture
def production_client(
    engine: Engine, settings: Settings, clock: FixedClock, verifier: Any, task_sender: Any
) -> FlaskClient:
    app = create_app(
        settings,
        session_factory=make_session_factory(engine),
        clock=clock,
        verifier=verifier,
        task_sender=task_sender,
    )
    return app.test_client()


def _city(
    engine: Engine, card_factory: Any, verifier: Any, *, code: str, limits: dict[str, int]
) -> tuple[City, int, Path]:
    """A committed city with one rider of a program with `limits`: the city, the entitlement id, the card."""
    rules = copy.deepcopy(f.ELDERLY_RULES)
    rules["limits"] = limits
    with make_session_factory(engine)() as s:
        mun = f.municipality(s, code=code, name=f"本番市{code}")
        op = f.operator(s, mun)
        vehicle = f.vehicle(s, op)
        counter = f.staff_user(s, mun, StaffRole.COUNTER, username=f"madoguchi{code}")
        city = City(
            mun=mun,
            counter=counter,
            finance=None,
            approver=None,
            operator_admin=None,
            program=f.program(s, mun, code=f"prod-{code}", rules=rules),
            terminal=f.enrolled_terminal(s, mun, vehicle),
            operator_id=op.id,
        )
        person = f.resident(s, mun)
        entitlement = f.entitlement(s, person, city.program)
        card = card_factory(f"prod-{code}")
        f.bind_card(s, verifier, person, card, counter.id)
        s.commit()
        return city, entitlement.id, card


class Statements:
    """What the API sends to the database: each statement's first word and whether it autocommitted."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[str, bool]] = []

    def _record(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        autocommit = bool(conn.connection.dbapi_connection.autocommit)
        self.seen.append((statement.split(None, 1)[0].upper(), autocommit))

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)


def test_a_boarding_and_its_alighting_are_two_statements_each_that_commit_by_themselves(
    engine: Engine, production_client: FlaskClient, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    city, entitlement_id, card = _city(engine, card_factory, verifier, code="999970", limits={})
    token = city.terminal.token(production_client, clock.now())
    with Statements(engine) as boarding:
        boarded = board(production_client, city, card, key="prod-1", token=token)
    assert boarded.status_code == 201, boarded.get_json()
    ride_id = boarded.get_json()["ride_id"]
    with Statements(engine) as alighting:
        fared = production_client.post(
            f"/api/v1/rides/{ride_id}/fare", json={"meter_fare": 1800}, headers=f.bearer(token)
        )
    assert fared.status_code == 200, fared.get_json()

    assert boarding.seen == [("SELECT", True), ("WITH", True)]
    assert alighting.seen == [("SELECT", True), ("WITH", True)]
    with make_session_factory(engine)() as s:
        ride = s.get(Ride, ride_id)
        assert ride is not None
        assert (ride.status, ride.meter_fare) == (RideStatus.COMPLETED, 1800)
        assert s.scalar(select(func.count()).where(LedgerEntry.ride_id == ride_id)) == 1
        of_the_ride = (AuditEntry.entity_type == "ride", AuditEntry.entity_id == str(ride_id))
        actions = s.scalars(select(AuditEntry.action).where(*of_the_ride)).all()
        assert sorted(actions) == ["ride.boarded", "ride.completed"]
        assert s.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) == 23


def test_a_limited_programs_hold_count_and_ride_are_one_transaction(
    engine: Engine, production_client: FlaskClient, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    city, entitlement_id, card = _city(engine, card_factory, verifier, code="999971", limits={"per_day": 1})
    token = city.terminal.token(production_client, clock.now())
    with Statements(engine) as first:
        assert board(production_client, city, card, key="prod-l1", token=token).status_code == 201
    refused = board(production_client, city, card, key="prod-l2", token=token)

    assert (refused.status_code, refused.get_json()["code"]) == (422, "limit.per_day")
    # The read commits by itself; the hold, then the count with the ride, run in one transaction.
    assert first.seen == [("SELECT", True), ("WITH", False), ("WITH", False)]
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).where(Ride.entitlement_id == entitlement_id)) == 1
        # The refused boarding's hold was rolled back with its transaction.
        assert s.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) == 23


def test_a_replayed_challenge_writes_nothing_on_a_session_that_commits_each_statement(
    engine: Engine, production_client: FlaskClient, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    city, entitlement_id, card = _city(engine, card_factory, verifier, code="999972", limits={})
    token = city.terminal.token(production_client, clock.now())
    challenge = production_client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    proof = f.card_proof(card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    answers = [
        production_client.post(
            "/api/v1/rides",
            json={"sequence": city.terminal.next_sequence(), "card": proof},
            headers=f.bearer(token, **{"Idempotency-Key": key}),
        )
        for key in ("prod-r1", "prod-r2")
    ]

    assert [a.status_code for a in answers] == [201, 401]
    assert answers[1].get_json()["code"] == "challenge.replayed"
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).where(Ride.entitlement_id == entitlement_id)) == 1
        assert s.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) == 23


def test_a_connection_the_database_dropped_costs_one_503_and_the_retry_boards(
    engine: Engine, production_client: FlaskClient, clock: FixedClock, card_factory: Any, verifier: Any
) -> None:
    """The app pings no connection before use: a stale one fails its first statement, and the pool
    drops it with every connection as old as it, so the terminal's retry (same key) goes through."""
    backends: list[int] = []
    event.listen(engine, "connect", lambda dbapi_conn, _record: backends.append(dbapi_conn.info.backend_pid))
    city, entitlement_id, card = _city(engine, card_factory, verifier, code="999973", limits={})
    token = city.terminal.token(production_client, clock.now())
    assert board(production_client, city, card, key="prod-s1", token=token).status_code == 201
    admin = make_engine(engine.url.render_as_string(hide_password=False))
    with admin.connect() as conn:
        for pid in backends:  # what a restart of the database does to the pool's connections
            conn.execute(select(func.pg_terminate_backend(pid)))
    admin.dispose()

    sequence = city.terminal.next_sequence()
    failed = board(production_client, city, card, key="prod-s2", token=token, sequence=sequence)
    retried = board(production_client, city, card, key="prod-s2", token=token, sequence=sequence)

    assert (failed.status_code, failed.get_json()["code"]) == (503, "unavailable")
    assert retried.status_code == 201
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).where(Ride.entitlement_id == entitlement_id)) == 2
