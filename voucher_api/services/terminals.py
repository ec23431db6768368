"""In-car terminals: created with a one-time code, enrolled with the device's Ed25519 key."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from voucher_api.models import Operator, Terminal, TerminalStatus, Vehicle
from voucher_api.services import audit
from voucher_api.services.errors import NotFound, Refused, Unauthorized
from voucher_api.services.tokens import Principal, assertion_terminal_id, verify_assertion

# Easy to read aloud and type on a tablet: no 0/O, 1/I.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


@dataclass(frozen=True)
class NewTerminal:
    terminal: Terminal
    enrolment_code: str  # shown once to the operator admin


def create_terminal(
    session: Session, *, vehicle_id: int, municipality_id: int, actor: str, now: datetime, ttl: timedelta
) -> NewTerminal:
    """Register a terminal for a vehicle and hand out a one-time enrolment code (valid for `ttl`)."""
    vehicle = session.get(Vehicle, vehicle_id)
    if vehicle is None:
        raise NotFound("not_found")
    operator = session.get(Operator, vehicle.operator_id)
    if operator is None or operator.municipality_id != municipality_id:
        raise NotFound("not_found")
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    code = "-".join(raw[i : i + 4] for i in range(0, 12, 4))
    terminal = Terminal(
        operator_id=vehicle.operator_id,
        vehicle_id=vehicle.id,
        status=TerminalStatus.PENDING,
        enrolment_code_hash=_hash_code(code),
        enrolment_expires_at=now + ttl,
        created_at=now,
    )
    session.add(terminal)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="terminal.created",
        entity_type="terminal",
        entity_id=terminal.id,
        municipality_id=municipality_id,
        details={"vehicle_id": vehicle.id},
    )
    return NewTerminal(terminal, code)


REVOKE_REASON_MAX = 200


def revoke_terminal(
    session: Session, *, terminal_id: int, municipality_id: int, actor: str, reason: str, now: datetime
) -> Terminal:
    """Stop a lost or stolen terminal: it gets no new token (the one it holds lasts its TTL at most).

    Revoking is for good: the device is enrolled again as a new terminal. Records it never sent are
    lost with it. Revoking a revoked terminal changes nothing. Raises NotFound (not in this city),
    Refused `terminal.revoke_reason` (a reason is required, at most REVOKE_REASON_MAX characters).
    """
    reason = reason.strip()
    if not reason or len(reason) > REVOKE_REASON_MAX:
        raise Refused("terminal.revoke_reason")
    terminal = session.scalar(
        select(Terminal)
        .join(Operator, Operator.id == Terminal.operator_id)
        .where(Terminal.id == terminal_id, Operator.municipality_id == municipality_id)
        .with_for_update()
    )
    if terminal is None:
        raise NotFound("not_found")
    if terminal.status is TerminalStatus.REVOKED:
        return terminal
    before = terminal.status
    terminal.status = TerminalStatus.REVOKED
    terminal.enrolment_code_hash = None  # an unused code can no longer enrol a device either
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="terminal.revoked",
        entity_type="terminal",
        entity_id=terminal.id,
        municipality_id=municipality_id,
        details={"reason": reason, "was": before.value, "vehicle_id": terminal.vehicle_id},
    )
    return terminal


def enrol(session: Session, *, code: str, public_key_b64: str, now: datetime) -> Terminal:
    """Exchange the one-time code for enrolment of the device's Ed25519 public key (raw 32 bytes).

    The code works once: a single conditional UPDATE clears it. Raises Refused('terminal.enrolment_invalid').
    """
    try:
        raw = base64.urlsafe_b64decode(public_key_b64 + "=" * (-len(public_key_b64) % 4))
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise Refused("validation", field="public_key") from exc
    key = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    terminal_id = session.execute(
        update(Terminal)
        .where(
            Terminal.enrolment_code_hash == _hash_code(code),
            Terminal.status == TerminalStatus.PENDING,
            Terminal.enrolment_expires_at > now,
        )
        .values(
            status=TerminalStatus.ACTIVE,
            public_key=key,
            enrolled_at=now,
            enrolment_code_hash=None,
            enrolment_expires_at=None,
        )
        .returning(Terminal.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    if terminal_id is None:
        raise Refused("terminal.enrolment_invalid")
    terminal = session.get(Terminal, terminal_id)
    assert terminal is not None
    municipality_id = session.scalar(
        select(Operator.municipality_id).where(Operator.id == terminal.operator_id)
    )
    audit.record(
        session,
        at=now,
        actor=f"terminal:{terminal.id}",
        action="terminal.enrolled",
        entity_type="terminal",
        entity_id=terminal.id,
        municipality_id=municipality_id,
        details={"public_key": key},
    )
    return terminal


def authenticate_terminal(session: Session, *, assertion: str, now: datetime) -> Principal:
    """Verify a terminal's signed client assertion and describe the terminal as a principal."""
    terminal_id = assertion_terminal_id(assertion)
    row = session.execute(
        select(
            Terminal.public_key,
            Terminal.status,
            Terminal.operator_id,
            Terminal.vehicle_id,
            Operator.municipality_id,
        )
        .join(Operator, Operator.id == Terminal.operator_id)
        .where(Terminal.id == terminal_id)
    ).first()
    if row is None or row.public_key is None:
        raise Unauthorized("terminal.bad_assertion")
    if row.status is not TerminalStatus.ACTIVE:
        raise Unauthorized("terminal.not_active")
    raw = base64.urlsafe_b64decode(row.public_key + "=" * (-len(row.public_key) % 4))
    verify_assertion(assertion, Ed25519PublicKey.from_public_bytes(raw), terminal_id=terminal_id, now=now)
    return Principal(
        kind="terminal",
        id=terminal_id,
        municipality_id=row.municipality_id,
        roles=frozenset({"terminal"}),
        operator_id=row.operator_id,
        vehicle_id=row.vehicle_id,
    )
