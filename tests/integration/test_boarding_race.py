"""Money is never double-spent: many real PostgreSQL connections board on one entitlement at once."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from tests import factories as f
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import Entitlement, Ride, StaffRole
from voucher_api.services import identity, rides
from voucher_api.services.entitlements import ledger_sum
from voucher_api.services.errors import DomainError
from voucher_api.services.tokens import Principal

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
RACERS = 24


def test_many_connections_boarding_on_a_balance_of_one_make_exactly_one_ride(
    postgres_url: str, card_factory: Any, verifier: Any
) -> None:
    engine = make_engine(postgres_url, pool_size=RACERS)
    factory = make_session_factory(engine)
    with factory() as s:
        mun = f.municipality(s, code="999990", name="競合市")
        counter = f.staff_user(s, mun, StaffRole.COUNTER)
        person = f.resident(s, mun)
        prog = f.program(s, mun, rules={**f.ELDERLY_RULES, "limits": {}})
        ent = f.entitlement(s, person, prog, balance=1)
        card = card_factory("race")
        f.bind_card(s, verifier, person, card, counter.id)
        op = f.operator(s, mun)
        device = f.enrolled_terminal(s, mun, f.vehicle(s, op))
        terminal = Principal(
            kind="terminal",
            id=device.terminal_id,
            municipality_id=mun.id,
            roles=frozenset({"terminal"}),
            operator_id=op.id,
            vehicle_id=s.scalar(select(f.Vehicle.id).where(f.Vehicle.operator_id == op.id)),
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
    assert set(outcomes) == {"boarded", "entitlement.exhausted"}
    with factory() as s:
        assert (
            s.scalar(select(func.count()).select_from(Ride).where(Ride.entitlement_id == entitlement_id)) == 1
        )
        assert s.scalar(select(Entitlement.balance).where(Entitlement.id == entitlement_id)) == 0
        assert ledger_sum(s, entitlement_id) == 0
    engine.dispose()
