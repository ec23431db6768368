from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests import factories as f
from voucher_api.models import Entitlement, Municipality, Program, Resident, StaffRole


@dataclass
class City:
    """A small city ready for the journeys: staff, a program, an operator with an enrolled terminal."""

    mun: Municipality
    counter: Any
    finance: Any
    approver: Any
    operator_admin: Any
    program: Program
    terminal: f.TerminalDevice
    operator_id: int


@pytest.fixture
def city(session: Session) -> City:
    mun = f.municipality(session)
    op = f.operator(session, mun)
    vehicle = f.vehicle(session, op)
    city = City(
        mun=mun,
        counter=f.staff_user(session, mun, StaffRole.COUNTER, username="madoguchi"),
        finance=f.staff_user(session, mun, StaffRole.FINANCE, username="keiri"),
        approver=f.staff_user(session, mun, StaffRole.FINANCE_APPROVER, username="shonin"),
        operator_admin=f.staff_user(
            session, mun, StaffRole.OPERATOR_ADMIN, username="jigyosha", operator_id=op.id
        ),
        program=f.program(session, mun, code="elderly"),
        terminal=f.enrolled_terminal(session, mun, vehicle),
        operator_id=op.id,
    )
    session.commit()
    return city


@dataclass
class Rider:
    resident: Resident
    entitlement: Entitlement
    card: Path


@pytest.fixture
def rider(session: Session, city: City, card_factory: Any, verifier: Any) -> Rider:
    """A resident with an entitlement and a bound card."""
    person = f.resident(session, city.mun)
    ent = f.entitlement(session, person, city.program)
    card = card_factory("rider")
    f.bind_card(session, verifier, person, card, city.counter.id)
    session.commit()
    return Rider(person, ent, card)


def board(
    client: FlaskClient, city: City, card: Path, *, key: str, token: str | None = None, **extra: Any
) -> Any:
    """The terminal's boarding: a challenge, the card's signature, the ride."""
    now = client.application.extensions["voucher"]["clock"].now()
    token = token or city.terminal.token(client, now)
    challenge = client.post(
        "/api/v1/card-challenges", json={"purpose": "board"}, headers=f.bearer(token)
    ).get_json()
    import base64

    proof = f.card_proof(card, message=base64.b64decode(challenge["message"]), nonce=challenge["nonce"])
    body = {"sequence": extra.pop("sequence", city.terminal.next_sequence()), "card": proof, **extra}
    return client.post("/api/v1/rides", json=body, headers=f.bearer(token, **{"Idempotency-Key": key}))
