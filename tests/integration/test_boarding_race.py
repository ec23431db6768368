"""Money is never double-spent and limits hold: many real PostgreSQL connections board on one entitlement
at once, in a transaction or committing each statement as the API does."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests import factories as f
from voucher_api.db import commit_each_statement, make_engine, make_session_factory
from voucher_api.models import Entitlement, Ride, StaffRole, Vehicle
from voucher_api.services import identity, rides
from voucher_api.services.entitlements import ledger_sum
from voucher_api.services.errors import DomainError
from voucher_api.services.tokens import Principal

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
RACERS = 24


@pytest.mark.parametrize(
    ("each_statement", "limits", "balance", "refusal", "code"),
    [
        (False, {}, 1, "entitlement.exhausted", "999990"),
        (True, {}, 1, "entitlement.exhausted", "999975"),
        (False, {"per_day": 1}, 10, "limit.per_day", "999976"),
        (True, {"per_day": 1}, 10, "limit.per_day", "999977"),
    ],
    ids=[
        "balance-of-one-in-a-transaction",
        "balance-of-one-committing-each-statement",
        "one-a-day-in-a-transaction",
        "one-a-day-committing-each-statement",
    ],
)
def test_many_connections_boarding_at_once_make_exactly_the_one_ride_allowed(
    postgres_url: str,
    card_factory: Any,
    verifier: Any,
    each_statement: bool,
    limits: dict[str, int],
    balance: int,
    refusal: str,
    code: str,
) -> None:
    engine = make_engine(postgres_url, pool_size=RACERS)
    factory = make_session_factory(engine)
    with factory() as s:
        mun = f.municipality(s, code=code, name=f"競合市{code}")
        counter = f.staff_user(s, mun, StaffRole.COUNTER)
        person = f.resident(s, mun)
        prog = f.program(s, mun, rules={**f.ELDERLY_RULES, "limits": limits})
        ent = f.entitlement(s, person, prog, balance=balance)
        card = card_factory(f"race-{code}")
        f.bind_card(s, verifier, person, card, counter.id)
        op = f.operator(s, mun)
        device = f.enrolled_terminal(s, mun, f.vehicle(s, op))
        terminal = Principal(
            kind="terminal",
            id=device.terminal_id,
            municipality_id=mun.id,
            roles=frozenset({"terminal"}),
            operator_id=op.id,
            vehicle_id=s.scalar(select(Vehicle.id).where(Vehicle.operator_id == op.id)),
        )
        proofs = []
        reader = f.card_reader(card)
        cert, chain = reader.read_user_certificate(), (reader.read_user_ca_certificate(),)
        for _ in range(RACERS):
            issued = identity.issue_challenge(
                verifier.challenge_key,
                purpose="board",
                context=rides.board_context(device.terminal_id),
                now=f.NOW,
                ttl=timedelta(minutes=5),
            )
            proofs.append(
                identity.CardProof(
                    cert, chain, issued.nonce, reader.sign_with_user_key(issued.message, f.CARD_PIN)
                )
            )
        s.commit()
        entitlement_id = ent.id

    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def racer(n: int) -> None:
        with factory() as s:
            if each_statement:  # as the API's boarding route runs it on PostgreSQL
                assert commit_each_statement(s)
            barrier.wait()
            try:
                rides.board(
                    s,
                    verifier,
                    terminal,
                    rides.BoardRequest(idempotency_key=f"race-{n}", sequence=n + 1, proof=proofs[n]),
                    f.NOW,
                )
                s.commit()
                result = "boarded"
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

    assert outcomes.count("boarded") == 1
    assert set(outcomes) == {"boarded", refusal}
    with factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(Ride).where(Ride.entitlement_id == entitlement_id)) == 1
        )
        assert s.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) == balance - 1
        assert ledger_sum(s, entitlement_id) == balance - 1
    engine.dispose()
