"""The relying party: card challenges, certificate chains, signatures, and card bindings.

Trusts only the configured CA certificate(s), so the mock issuer can be swapped for the real one by
configuration. The card signs SHA-256(nonce ‖ purpose ‖ 0x00 ‖ context) with PKCS#1 v1.5; the API hands
the exact bytes to sign to the client, so clients never rebuild the format.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from voucher_api.models import BindingMethod, BindingStatus, CardBinding, CardChallenge, Resident
from voucher_api.services import audit
from voucher_api.services.errors import Conflict, NotFound, Refused, Unauthorized

PURPOSES = ("enrol", "board", "bind")


# --- challenges --------------------------------------------------------------------------------


def challenge_message(nonce: bytes, purpose: str, context: str) -> bytes:
    """The bytes the card signs (it hashes them with SHA-256 inside the reader driver)."""
    return nonce + purpose.encode() + b"\x00" + context.encode()


@dataclass(frozen=True)
class IssuedChallenge:
    nonce: str
    purpose: str
    context: str
    expires_at: datetime
    message: bytes


# A nonce is 32 bytes: 8 random, the expiry (Unix seconds, 8 bytes), and 16 bytes of HMAC over those, the
# purpose and the context. Issuing one needs no database write; single use is enforced when it is consumed.
_NONCE_RANDOM, _NONCE_EXPIRY, _NONCE_MAC = 8, 8, 16


def _challenge_mac(key: bytes, head: bytes, purpose: str, context: str) -> bytes:
    return hmac.new(key, head + purpose.encode() + b"\x00" + context.encode(), hashlib.sha256).digest()[
        :_NONCE_MAC
    ]


def issue_challenge(
    key: bytes, *, purpose: str, context: str, now: datetime, ttl: timedelta
) -> IssuedChallenge:
    """A fresh single-use nonce for `purpose` in `context`, valid for `ttl`; nothing is written."""
    if purpose not in PURPOSES:
        raise Refused("validation", field="purpose")
    expires = now + ttl
    head = secrets.token_bytes(_NONCE_RANDOM) + int(expires.timestamp()).to_bytes(_NONCE_EXPIRY, "big")
    nonce = head + _challenge_mac(key, head, purpose, context)
    return IssuedChallenge(nonce.hex(), purpose, context, expires, challenge_message(nonce, purpose, context))


@dataclass(frozen=True)
class CheckedChallenge:
    """A nonce issued here for its purpose and context, not expired, and not yet used up."""

    nonce: str
    purpose: str
    context: str
    expires_at: datetime
    message: bytes  # what the card signed

    def row(self, *, now: datetime, municipality_id: int | None) -> dict[str, Any]:
        """The card_challenges row that marks the nonce used (its unique nonce makes use single)."""
        return {
            "nonce": self.nonce,
            "purpose": self.purpose,
            "context": self.context,
            "municipality_id": municipality_id,
            "created_at": now,
            "expires_at": self.expires_at,
            "used_at": now,
        }


def check_challenge(key: bytes, *, nonce: str, purpose: str, context: str, now: datetime) -> CheckedChallenge:
    """Check the nonce was issued here for this purpose and context and is unexpired; writes nothing.

    Raises Unauthorized with challenge.unknown / challenge.expired. Single use is enforced by
    `use_challenge` (or a statement that inserts `CheckedChallenge.row` the same way).
    """
    try:
        raw = bytes.fromhex(nonce)
    except ValueError as exc:
        raise Unauthorized("challenge.unknown") from exc
    head, mac = raw[: _NONCE_RANDOM + _NONCE_EXPIRY], raw[_NONCE_RANDOM + _NONCE_EXPIRY :]
    if len(raw) != 32 or not hmac.compare_digest(mac, _challenge_mac(key, head, purpose, context)):
        raise Unauthorized("challenge.unknown")
    expires = datetime.fromtimestamp(int.from_bytes(head[_NONCE_RANDOM:], "big"), tz=UTC)
    if expires <= now:
        raise Unauthorized("challenge.expired")
    return CheckedChallenge(nonce, purpose, context, expires, challenge_message(raw, purpose, context))


CHALLENGES = cast(Table, CardChallenge.__table__)  # Core, not the ORM: this is on every boarding
_USE_CHALLENGE = {
    dialect: insert_of(CHALLENGES).on_conflict_do_nothing(index_elements=["nonce"]).returning(CHALLENGES.c.id)
    for dialect, insert_of in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def use_challenge(
    session: Session, checked: CheckedChallenge, *, now: datetime, municipality_id: int | None
) -> None:
    """Use the nonce up: one INSERT that does nothing if it was used before (challenge.replayed)."""
    statement = _USE_CHALLENGE["postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"]
    used = session.execute(statement, checked.row(now=now, municipality_id=municipality_id)).first()
    if used is None:
        raise Unauthorized("challenge.replayed")


def consume_challenge(
    session: Session,
    key: bytes,
    *,
    nonce: str,
    purpose: str,
    context: str,
    now: datetime,
    municipality_id: int | None = None,
) -> bytes:
    """Check the nonce was issued here for this purpose and context and is unexpired, then use it up.

    Single use is one INSERT that does nothing if the nonce was used before. Raises Unauthorized with
    challenge.unknown / challenge.expired / challenge.replayed. Returns the message the card signed.
    """
    checked = check_challenge(key, nonce=nonce, purpose=purpose, context=context, now=now)
    use_challenge(session, checked, now=now, municipality_id=municipality_id)
    return checked.message


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedCard:
    """A user-authentication certificate whose chain to a trusted root has been checked."""

    fingerprint: str
    serial: str
    subject_serial: str
    not_before: datetime
    not_after: datetime
    public_key: rsa.RSAPublicKey
    certificate: x509.Certificate
    issuer_certificate: x509.Certificate


class RevocationChecker(Protocol):
    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> None:
        """Raise Refused('card.revoked') when the certificate is revoked."""
        ...


class CardVerifier:
    """Verifies card certificates against configured trust anchors. Build once; it caches chain checks.

    Thread-safe; the cache keeps only certificates that passed, keyed by fingerprint, and dates are
    re-checked on every use.
    """

    def __init__(
        self,
        trust_anchors: Iterable[x509.Certificate],
        revocation: RevocationChecker | None = None,
        *,
        challenge_key: bytes | None = None,
    ):
        # Every API process of a deployment must share the key (the app derives it from its secret).
        self.challenge_key = challenge_key or secrets.token_bytes(32)
        self._roots = {root.subject.public_bytes(): root for root in trust_anchors}
        if not self._roots:
            raise ValueError("at least one trust anchor is required")
        self._revocation = revocation
        self._cache: dict[str, VerifiedCard] = {}
        self._intermediates: dict[bytes, x509.Certificate] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_pem(
        cls, pem: bytes, revocation: RevocationChecker | None = None, *, challenge_key: bytes | None = None
    ) -> CardVerifier:
        return cls(x509.load_pem_x509_certificates(pem), revocation, challenge_key=challenge_key)

    @property
    def trust_anchors(self) -> list[x509.Certificate]:
        return list(self._roots.values())

    @property
    def known_intermediates(self) -> list[x509.Certificate]:
        """CA certificates seen chaining to a trust anchor (terminals may need them offline)."""
        return list(self._intermediates.values())

    def known_revoked_serials(self) -> set[str]:
        """Serials (hex) the revocation checker has seen revoked, for terminals' offline snapshots."""
        known = getattr(self._revocation, "known_revoked_serials", None)
        return set(known()) if callable(known) else set()

    def verify_certificate(self, leaf_der: bytes, chain_der: Iterable[bytes], at: datetime) -> VerifiedCard:
        """Check chain, validity dates and revocation of a card certificate.

        Raises Refused: card.malformed, card.unknown_issuer, card.expired, card.revoked.
        A user-authentication certificate must allow clientAuth when it names its purposes.
        """
        fingerprint = hashlib.sha256(leaf_der).hexdigest()
        card = self._cache.get(fingerprint)
        if card is None:
            card = self._verify_chain(leaf_der, list(chain_der), at, fingerprint)
            with self._lock:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[fingerprint] = card
        if not (card.not_before <= at <= card.not_after):
            raise Refused("card.expired")
        if self._revocation is not None:
            self._revocation.check(card.certificate, card.issuer_certificate, at)
        return card

    def _verify_chain(
        self, leaf_der: bytes, chain_der: list[bytes], at: datetime, fingerprint: str
    ) -> VerifiedCard:
        try:
            leaf = x509.load_der_x509_certificate(leaf_der)
            chain = [x509.load_der_x509_certificate(der) for der in chain_der]
        except ValueError as exc:
            raise Refused("card.malformed") from exc
        issuer = self._find_issuer(leaf, chain, at)
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise Refused("card.malformed")
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
                raise Refused("card.unknown_issuer")
        except x509.ExtensionNotFound:
            pass
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return VerifiedCard(
            fingerprint=fingerprint,
            serial=format(leaf.serial_number, "x"),
            subject_serial=str(cn[0].value) if cn else "",
            not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc,
            public_key=public_key,
            certificate=leaf,
            issuer_certificate=issuer,
        )

    def _find_issuer(
        self, leaf: x509.Certificate, chain: list[x509.Certificate], at: datetime
    ) -> x509.Certificate:
        """Walk leaf → intermediate(s) → a configured root, checking signatures, CA flags and dates.

        Returns the leaf's direct issuer. Intermediates that reached a root are remembered, so a client
        may omit them later (a terminal's snapshot carries them too).
        """
        pool = chain + list(self._intermediates.values())
        current = leaf
        walked: list[x509.Certificate] = []
        for _depth in range(4):
            root = self._roots.get(current.issuer.public_bytes())
            if root is not None and _issued_by(current, root):
                _check_dates(root, at)
                with self._lock:
                    for cert in walked:
                        self._intermediates[cert.subject.public_bytes()] = cert
                return walked[0] if walked else root
            parent = next(
                (c for c in pool if c.subject == current.issuer and _is_ca(c) and _issued_by(current, c)),
                None,
            )
            if parent is None:
                raise Refused("card.unknown_issuer")
            _check_dates(parent, at)
            walked.append(parent)
            current = parent
        raise Refused("card.unknown_issuer")

    def verify_signature(self, card: VerifiedCard, message: bytes, signature: bytes) -> None:
        """PKCS#1 v1.5 over SHA-256(message); raises Unauthorized('signature.invalid')."""
        try:
            card.public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature as exc:
            raise Unauthorized("signature.invalid") from exc


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_dates(cert: x509.Certificate, at: datetime) -> None:
    if not (cert.not_valid_before_utc <= at <= cert.not_valid_after_utc):
        raise Refused("card.expired")


# --- bindings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardProof:
    """What a client sends to prove possession of a card: the certificate and a signed challenge."""

    certificate: bytes
    chain: tuple[bytes, ...]
    nonce: str | None
    signature: bytes | None


def prove_card(
    session: Session,
    verifier: CardVerifier,
    proof: CardProof,
    *,
    purpose: str,
    context: str,
    now: datetime,
    allow_tap: bool = False,
) -> VerifiedCard:
    """Verify the certificate, consume the challenge and check the card's signature over it.

    With `allow_tap`, a proof without a signature (the certificate read without PIN) is accepted.
    """
    card = verifier.verify_certificate(proof.certificate, proof.chain, now)
    if proof.signature is None or proof.nonce is None:
        if not allow_tap:
            raise Refused("card.tap_not_allowed")
        return card
    message = consume_challenge(
        session, verifier.challenge_key, nonce=proof.nonce, purpose=purpose, context=context, now=now
    )
    verifier.verify_signature(card, message, proof.signature)
    return card


def bind_card(
    session: Session,
    *,
    resident_id: int,
    municipality_id: int,
    card: VerifiedCard,
    method: BindingMethod,
    staff_id: int,
    now: datetime,
    replace_existing: bool = False,
) -> CardBinding:
    """Link a verified user certificate to a resident.

    Refuses a certificate bound to someone else (card.bound_to_other) and a second active card for the
    same resident unless `replace_existing` (a reissued card: the old binding becomes `replaced`).
    Binding the same certificate to the same resident again returns the existing binding.
    """
    resident = session.get(Resident, resident_id)
    if resident is None or resident.municipality_id != municipality_id:
        raise NotFound("resident.not_found")
    current = session.scalars(
        select(CardBinding).where(
            CardBinding.status == BindingStatus.ACTIVE,
            (CardBinding.cert_fingerprint == card.fingerprint) | (CardBinding.resident_id == resident_id),
        )
    ).all()
    for binding in current:
        if binding.cert_fingerprint == card.fingerprint:
            if binding.resident_id != resident_id:
                raise Conflict("card.bound_to_other")
            return binding
    for binding in current:
        if not replace_existing:
            raise Conflict("card.already_bound", binding_id=binding.id)
        binding.status = BindingStatus.REPLACED
        binding.ended_at = now
        binding.end_reason = "reissued card"
    session.flush()
    binding = CardBinding(
        municipality_id=municipality_id,
        resident_id=resident_id,
        cert_fingerprint=card.fingerprint,
        cert_serial=card.serial,
        subject_serial=card.subject_serial,
        not_after=card.not_after,
        method=method,
        status=BindingStatus.ACTIVE,
        bound_by_id=staff_id,
        bound_at=now,
    )
    session.add(binding)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="card.bound",
        entity_type="card_binding",
        entity_id=binding.id,
        municipality_id=municipality_id,
        details={"resident_id": resident_id, "method": method.value, "replaced": [b.id for b in current]},
    )
    return binding
