"""Terminals that lose the network: the signed snapshot they work from, and the sync of what they recorded.

Nothing recorded offline is ever lost or applied twice (DESIGN §7). Every synced record is kept verbatim
with the server's answer; records are applied in sequence order; an idempotency key seen before returns
the first answer. A boarding that would have been refused online (the balance used up on another car, a
limit passed) is still recorded — the ride happened — and flagged for finance review; the program's
`offline_loss_borne_by` decides who bears it on the statement.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import and_, func, insert, select, union_all, update
from sqlalchemy.orm import Session

from voucher_api.clock import japan_date, japan_midnight
from voucher_api.models import (
    BindingStatus,
    CardBinding,
    Driver,
    Entitlement,
    EntitlementStatus,
    Municipality,
    Program,
    RecordStatus,
    Resident,
    ResidentStatus,
    Ride,
    RideStatus,
    Terminal,
    TerminalRecord,
)
from voucher_api.services import audit, rides
from voucher_api.services.errors import DomainError, message_for
from voucher_api.services.identity import CardVerifier
from voucher_api.services.revocation import RevocationUnknown
from voucher_api.services.tokens import Principal

log = logging.getLogger(__name__)
SNAPSHOT_VERSION = 1
MAX_GAPS_REPORTED = 100


# --- signing -------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """The server's snapshot key (PEM, 0600). Production provides it; the embedded default makes one."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return load_or_create_signing_key(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return b64url(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


# --- snapshot ------------------------------------------------------------------------------------


def build_snapshot(
    session: Session, verifier: CardVerifier, terminal: Principal, *, now: datetime, valid_for: timedelta
) -> dict[str, Any]:
    """What a terminal needs to accept rides offline: trust anchors, revocations, bound cards, programs."""
    today = japan_date(now)
    code = session.scalar(select(Municipality.code).where(Municipality.id == terminal.municipality_id))
    programs = session.scalars(
        select(Program).where(
            Program.municipality_id == terminal.municipality_id,
            Program.valid_from <= today,
            Program.valid_to >= today,
        )
    ).all()
    rows = session.execute(
        select(
            CardBinding.cert_fingerprint,
            Program.code,
            Program.options,
            Entitlement.unit,
            Entitlement.balance,
            Resident.given_name,
            Resident.birth_date,
        )
        .join(Resident, Resident.id == CardBinding.resident_id)
        .join(Entitlement, Entitlement.resident_id == Resident.id)
        .join(Program, Program.id == Entitlement.program_id)
        .where(
            CardBinding.municipality_id == terminal.municipality_id,
            CardBinding.status == BindingStatus.ACTIVE,
            Entitlement.status == EntitlementStatus.ACTIVE,
            Entitlement.valid_from <= today,
            Entitlement.valid_to >= today,
            Resident.status != ResidentStatus.DECEASED,
        )
        .order_by(CardBinding.cert_fingerprint)
    ).all()
    return {
        "version": SNAPSHOT_VERSION,
        "terminal_id": terminal.id,
        "municipality_code": code,
        "issued_at": now.isoformat(),
        "valid_until": (now + valid_for).isoformat(),
        "trust_anchors": [_pem(c) for c in verifier.trust_anchors],
        "intermediates": [_pem(c) for c in verifier.known_intermediates],
        "revoked_serials": sorted(verifier.known_revoked_serials()),
        "bindings": [
            {
                "fingerprint": row.cert_fingerprint,
                "program_code": row.code,
                "unit": row.unit.value,
                "balance": row.balance,
                "given_name": row.given_name,
                "age_band": rides.age_band(row.birth_date, today),
                "tap_allowed": bool(row.options.get("tap_allowed", False)),
                "offline_max_rides_per_day": int(row.options.get("offline_max_rides_per_day", 2)),
                "void_window_minutes": int(row.options.get("void_window_minutes", 10)),
            }
            for row in rows
        ],
        "programs": [
            {
                "code": p.code,
                "name": p.name,
                "name_en": p.name_en,
                "subsidy": p.subsidy,
                "grant_unit": p.grant["unit"],
                "options": p.options,
            }
            for p in programs
        ],
    }


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- sync ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordResult:
    sequence: int
    status: str  # accepted | duplicate | conflict | rejected
    ride_id: int | None
    code: str | None

    def as_dict(self, lang: str) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "status": self.status,
            "ride_id": self.ride_id,
            "code": self.code,
            "title": message_for(self.code, lang) if self.code else None,
        }


@dataclass(frozen=True)
class SyncResult:
    results: list[RecordResult]
    last_sequence: int
    gaps: list[int]


def offline_board_message(nonce: bytes, terminal_id: int, sequence: int) -> bytes:
    """What the card signs for an offline boarding (the terminal makes the nonce; the sequence binds it)."""
    return nonce + b"board-offline" + b"\x00" + f"terminal:{terminal_id}:seq:{sequence}".encode()


def sync(
    session: Session,
    verifier: CardVerifier,
    terminal: Principal,
    records: list[dict[str, Any]],
    *,
    now: datetime,
) -> SyncResult:
    """Apply a terminal's offline records in sequence order and answer each one."""
    public_key = _terminal_key(session, terminal.id)
    results: list[RecordResult] = []
    for record in sorted(records, key=lambda r: int(r["sequence"])):
        results.append(_apply_one(session, verifier, terminal, public_key, record, now))
    highest = max((int(r["sequence"]) for r in records), default=0)
    session.execute(
        update(Terminal)
        .where(Terminal.id == terminal.id, Terminal.last_sequence < highest)
        .values(last_sequence=highest)
        .execution_options(synchronize_session=False)
    )
    last = int(session.scalar(select(Terminal.last_sequence).where(Terminal.id == terminal.id)) or 0)
    return SyncResult(results, last, missing_sequences(session, terminal.id, last))


def missing_sequences(session: Session, terminal_id: int, up_to: int) -> list[int]:
    """Sequence numbers below `up_to` that neither an online ride nor a synced record used."""
    seen = union_all(
        select(Ride.terminal_sequence.label("n")).where(Ride.terminal_id == terminal_id),
        select(TerminalRecord.sequence.label("n")).where(TerminalRecord.terminal_id == terminal_id),
    ).subquery()
    used = set(session.scalars(select(seen.c.n)))
    return [n for n in range(1, up_to + 1) if n not in used][:MAX_GAPS_REPORTED]


def _terminal_key(session: Session, terminal_id: int) -> Ed25519PublicKey:
    raw = session.scalar(select(Terminal.public_key).where(Terminal.id == terminal_id))
    if raw is None:
        raise DomainError("terminal.not_active", status=403)
    return Ed25519PublicKey.from_public_bytes(b64url_decode(raw))


def _apply_one(
    session: Session,
    verifier: CardVerifier,
    terminal: Principal,
    public_key: Ed25519PublicKey,
    record: dict[str, Any],
    now: datetime,
) -> RecordResult:
    sequence, key = int(record["sequence"]), str(record["idempotency_key"])
    seen = session.execute(
        select(
            TerminalRecord.status, TerminalRecord.ride_id, TerminalRecord.code, TerminalRecord.sequence
        ).where(TerminalRecord.terminal_id == terminal.id, TerminalRecord.idempotency_key == key)
    ).first()
    if seen is not None:
        return RecordResult(sequence, "duplicate", seen.ride_id, seen.code)
    if record["kind"] == "board":
        online = session.scalar(
            select(Ride.id).where(Ride.terminal_id == terminal.id, Ride.idempotency_key == key)
        )
        if online is not None:  # the first attempt reached the server after all
            return RecordResult(sequence, "duplicate", online, None)
    taken = session.scalar(
        select(func.count()).select_from(
            union_all(
                select(Ride.id).where(Ride.terminal_id == terminal.id, Ride.terminal_sequence == sequence),
                select(TerminalRecord.id).where(
                    TerminalRecord.terminal_id == terminal.id, TerminalRecord.sequence == sequence
                ),
            ).subquery()
        )
    )
    if taken:
        return RecordResult(sequence, "rejected", None, "ride.sequence_reused")

    signed = {k: v for k, v in record.items() if k != "record_signature"}
    try:
        public_key.verify(b64url_decode(str(record.get("record_signature", ""))), canonical_json(signed))
    except (InvalidSignature, ValueError):
        return _keep(session, terminal, record, now, RecordStatus.REJECTED, "terminal.bad_assertion", None)

    recorded_at = datetime.fromisoformat(str(record["recorded_at"]))
    with session.begin_nested() as attempt:
        try:
            status, code, ride_id = _apply_kind(session, verifier, terminal, record, recorded_at, now)
        except RevocationUnknown:
            # Neither OCSP nor the CRL answered: a passing outage is no verdict on the ride. The whole
            # sync answers 503 and keeps nothing; the terminal keeps its signed records and sends again.
            raise
        except DomainError as exc:
            attempt.rollback()
            status, code, ride_id = RecordStatus.REJECTED, exc.code, None
    return _keep(session, terminal, record, now, status, code, ride_id)


def _keep(
    session: Session,
    terminal: Principal,
    record: dict[str, Any],
    now: datetime,
    status: RecordStatus,
    code: str | None,
    ride_id: int | None,
) -> RecordResult:
    recorded = record.get("recorded_at")
    session.execute(
        insert(TerminalRecord).values(
            terminal_id=terminal.id,
            sequence=int(record["sequence"]),
            idempotency_key=str(record["idempotency_key"]),
            kind=str(record["kind"]),
            recorded_at=datetime.fromisoformat(recorded) if isinstance(recorded, str) else None,
            received_at=now,
            payload=record,
            status=status,
            code=code,
            ride_id=ride_id,
        )
    )
    if status is not RecordStatus.ACCEPTED:
        audit.record(
            session,
            at=now,
            actor=terminal.actor,
            action=f"offline.{status.value}",
            entity_type="terminal_record",
            entity_id=f"{terminal.id}:{record['sequence']}",
            municipality_id=terminal.municipality_id,
            details={"kind": record["kind"], "code": code, "ride_id": ride_id},
        )
    return RecordResult(int(record["sequence"]), status.value, ride_id, code)


def _apply_kind(
    session: Session,
    verifier: CardVerifier,
    terminal: Principal,
    record: dict[str, Any],
    recorded_at: datetime,
    now: datetime,
) -> tuple[RecordStatus, str | None, int | None]:
    kind = record["kind"]
    if kind == "board":
        return _board(session, verifier, terminal, record, recorded_at, now)
    ride_id = session.scalar(
        select(Ride.id).where(
            Ride.terminal_id == terminal.id, Ride.terminal_sequence == int(record["board_sequence"])
        )
    )
    if ride_id is None:
        return RecordStatus.REJECTED, "ride.not_found", None
    try:
        if kind == "fare":
            rides.complete(
                session, terminal, ride_id=ride_id, meter_fare=int(record["meter_fare"]), now=recorded_at
            )
        else:
            rides.void(session, terminal, ride_id=ride_id, reason=str(record["reason"]), now=recorded_at)
    except DomainError as exc:
        return RecordStatus.CONFLICT, exc.code, ride_id
    return RecordStatus.ACCEPTED, None, ride_id


def _board(
    session: Session,
    verifier: CardVerifier,
    terminal: Principal,
    record: dict[str, Any],
    recorded_at: datetime,
    now: datetime,
) -> tuple[RecordStatus, str | None, int | None]:
    card = record["card"]
    certificate = base64.b64decode(card["certificate"])
    chain = tuple(base64.b64decode(c) for c in card.get("chain") or [])
    fingerprint = hashlib.sha256(certificate).hexdigest()
    review: str | None = None
    try:
        verified = verifier.verify_certificate(certificate, chain, recorded_at)
        public_key = verified.public_key
    except DomainError as exc:
        if exc.code != "card.revoked":
            raise
        review = "card.revoked"  # revoked now; perhaps not yet at the ride: finance decides
        loaded = x509.load_der_x509_certificate(certificate).public_key()
        assert isinstance(loaded, rsa.RSAPublicKey)
        public_key = loaded
    if card.get("signature"):
        message = offline_board_message(bytes.fromhex(card["nonce"]), terminal.id, int(record["sequence"]))
        try:
            public_key.verify(
                base64.b64decode(card["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return RecordStatus.REJECTED, "signature.invalid", None
    day = japan_date(recorded_at)
    row = session.execute(
        select(
            CardBinding.id.label("binding_id"),
            Entitlement.id.label("entitlement_id"),
            Entitlement.resident_id,
            Entitlement.program_id,
            Entitlement.unit,
            Entitlement.balance,
            Program.subsidy,
            Program.limits,
            Program.options,
        )
        .join(Entitlement, and_(Entitlement.resident_id == CardBinding.resident_id))
        .join(Program, Program.id == Entitlement.program_id)
        .where(
            CardBinding.cert_fingerprint == fingerprint,
            CardBinding.municipality_id == terminal.municipality_id,
            CardBinding.status != BindingStatus.ENDED,
            Entitlement.valid_from <= day,
            Entitlement.valid_to >= day,
            Entitlement.status.in_([EntitlementStatus.ACTIVE, EntitlementStatus.SUSPENDED]),
        )
        .order_by(CardBinding.status, Entitlement.status)
        .limit(1)
    ).first()
    if row is None:
        return RecordStatus.REJECTED, "card.not_bound", None
    method = "pin" if card.get("signature") else "tap"
    if method == "tap" and not row.options.get("tap_allowed", False):
        review = review or "card.tap_not_allowed"
    driver_id = None
    if record.get("driver_code"):
        driver_id = session.scalar(
            select(Driver.id).where(
                Driver.operator_id == terminal.operator_id, Driver.code == record["driver_code"]
            )
        )
    if review is None:
        review = _offline_limit_passed(session, row.entitlement_id, row.options, recorded_at)
    target = rides.RedeemTarget(
        entitlement_id=row.entitlement_id,
        resident_id=row.resident_id,
        program_id=row.program_id,
        unit=row.unit.value,
        balance_seen=int(row.balance),
        subsidy=row.subsidy,
        limits=row.limits,
        binding_id=row.binding_id,
    )
    common: dict[str, Any] = {
        "sequence": int(record["sequence"]),
        "idempotency_key": str(record["idempotency_key"]),
        "method": method,
        "driver_id": driver_id,
        "trip_ref": record.get("trip_ref"),
    }
    if review is None:
        with session.begin_nested() as attempt:
            try:
                ride_id, _held, _balance = rides.redeem(
                    session,
                    terminal,
                    target,
                    now=recorded_at,
                    received_at=now,
                    audit_details={"offline": True},
                    **common,
                )
                return RecordStatus.ACCEPTED, None, ride_id
            except DomainError as exc:
                attempt.rollback()
                review = exc.code
    ride_id = _record_under_review(
        session, terminal, target, review, recorded_at=recorded_at, now=now, **common
    )
    return RecordStatus.CONFLICT, review, ride_id


def _offline_limit_passed(
    session: Session, entitlement_id: int, options: dict[str, Any], at: datetime
) -> str | None:
    limit = int(options.get("offline_max_rides_per_day", 2))
    start = japan_midnight(japan_date(at))
    count = session.scalar(
        select(func.count()).where(
            Ride.entitlement_id == entitlement_id,
            Ride.offline.is_(True),
            Ride.boarded_at >= start,
            Ride.boarded_at < start + timedelta(days=1),
            Ride.status != RideStatus.VOIDED,
        )
    )
    return "limit.offline_per_day" if (count or 0) >= limit else None


def _record_under_review(
    session: Session,
    terminal: Principal,
    target: rides.RedeemTarget,
    code: str,
    *,
    recorded_at: datetime,
    now: datetime,
    sequence: int,
    idempotency_key: str,
    method: str,
    driver_id: int | None,
    trip_ref: str | None,
) -> int:
    """Keep a ride that happened offline but that the rules would have refused; it consumes nothing."""
    ride_id = session.execute(
        insert(Ride)
        .values(
            municipality_id=terminal.municipality_id,
            entitlement_id=target.entitlement_id,
            program_id=target.program_id,
            resident_id=target.resident_id,
            operator_id=terminal.operator_id,
            vehicle_id=terminal.vehicle_id,
            terminal_id=terminal.id,
            driver_id=driver_id,
            binding_id=target.binding_id,
            terminal_sequence=sequence,
            idempotency_key=idempotency_key,
            trip_ref=trip_ref,
            auth_method=method,
            offline=True,
            status=RideStatus.BOARDED,
            boarded_at=recorded_at,
            recorded_at=now,
            units_held=0,
            review_code=code,
        )
        .returning(Ride.id)
    ).scalar_one()
    audit.record(
        session,
        at=now,
        actor=terminal.actor,
        action="ride.offline_conflict",
        entity_type="ride",
        entity_id=ride_id,
        municipality_id=terminal.municipality_id,
        details={"code": code, "sequence": sequence},
    )
    return int(ride_id)
