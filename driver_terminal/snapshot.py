"""The signed snapshot a terminal works from while offline (DESIGN §7), and the card checks it allows.

The API signs the snapshot with its own Ed25519 key; the terminal learns that key once, at enrolment, and
accepts only snapshots signed by it, made for this terminal, and still within their validity. The snapshot
carries the card CA certificates, the serials known to be revoked, the bound cards (by the SHA-256 of the
user certificate) with their balances, and the programs' rules.

Offline the terminal checks a card as the API would, as far as the snapshot lets it: the chain to a trust
anchor, the dates, the revocation list, the card's signature over the terminal's own nonce, the binding and
the balance. What it cannot know (another car used the balance an hour ago) the API finds at sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID

from driver_terminal.records import b64url_decode, canonical_json

SNAPSHOT_VERSION: Final = 1
MAX_CHAIN_DEPTH: Final = 4


class SnapshotInvalid(Exception):
    """The snapshot was not signed by the API's snapshot key, is not for this terminal, or is malformed."""


class OfflineRefusal(Exception):
    """The terminal cannot accept this boarding offline. `code` is the API's code where one means the same
    (card.revoked, entitlement.exhausted, …) or an `offline.*` code; the kiosk words it for the rider."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def fingerprint(certificate_der: bytes) -> str:
    """The card's identity in a binding: SHA-256 of the user certificate's DER, lowercase hex."""
    return hashlib.sha256(certificate_der).hexdigest()


@dataclass(frozen=True)
class SnapshotBinding:
    """A bound card and what its holder may use, as of the snapshot."""

    fingerprint: str
    program_code: str
    unit: str
    balance: int
    given_name: str
    age_band: str
    tap_allowed: bool
    offline_max_rides_per_day: int
    void_window_minutes: int


@dataclass(frozen=True)
class SnapshotProgram:
    code: str
    name: str
    name_en: str
    subsidy: dict[str, Any]
    grant_unit: str
    options: dict[str, Any]

    def display_name(self, lang: str) -> str:
        return self.name_en if lang == "en" and self.name_en else self.name


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot; build it with `verify_snapshot` (or `Snapshot.parse` for one already verified)."""

    payload: dict[str, Any] = field(repr=False)
    signature: str = field(repr=False)
    public_key: str
    terminal_id: int
    municipality_code: str
    issued_at: datetime
    valid_until: datetime
    trust_anchors: tuple[x509.Certificate, ...] = field(repr=False)
    intermediates: tuple[x509.Certificate, ...] = field(repr=False)
    revoked_serials: frozenset[str] = field(repr=False)
    bindings: dict[str, SnapshotBinding] = field(repr=False)
    programs: dict[str, SnapshotProgram] = field(repr=False)

    @classmethod
    def parse(cls, payload: Mapping[str, Any], signature: str, public_key: str) -> Snapshot:
        """Read a payload's fields. Raises SnapshotInvalid for anything not in the contract's shape."""
        try:
            if payload["version"] != SNAPSHOT_VERSION:
                raise SnapshotInvalid(f"snapshot version {payload['version']!r} is not supported")
            bindings = {
                str(b["fingerprint"]): SnapshotBinding(
                    fingerprint=str(b["fingerprint"]),
                    program_code=str(b["program_code"]),
                    unit=str(b["unit"]),
                    balance=int(b["balance"]),
                    given_name=str(b["given_name"]),
                    age_band=str(b["age_band"]),
                    tap_allowed=bool(b["tap_allowed"]),
                    offline_max_rides_per_day=int(b["offline_max_rides_per_day"]),
                    void_window_minutes=int(b["void_window_minutes"]),
                )
                for b in payload["bindings"]
            }
            programs = {
                str(p["code"]): SnapshotProgram(
                    code=str(p["code"]),
                    name=str(p["name"]),
                    name_en=str(p.get("name_en") or ""),
                    subsidy=dict(p["subsidy"]),
                    grant_unit=str(p["grant_unit"]),
                    options=dict(p.get("options") or {}),
                )
                for p in payload["programs"]
            }
            snapshot = cls(
                payload=dict(payload),
                signature=signature,
                public_key=public_key,
                terminal_id=int(payload["terminal_id"]),
                municipality_code=str(payload["municipality_code"]),
                issued_at=_instant(payload["issued_at"]),
                valid_until=_instant(payload["valid_until"]),
                trust_anchors=tuple(_pem_certificates(payload["trust_anchors"])),
                intermediates=tuple(_pem_certificates(payload.get("intermediates") or [])),
                revoked_serials=frozenset(str(s).lower() for s in payload.get("revoked_serials") or []),
                bindings=bindings,
                programs=programs,
            )
        except SnapshotInvalid:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise SnapshotInvalid(f"the snapshot is malformed: {error!r}") from error
        if not snapshot.trust_anchors:
            raise SnapshotInvalid("the snapshot names no trust anchor")
        return snapshot

    def usable_at(self, now: datetime) -> bool:
        """Within its validity (a snapshot from the future is not trusted either)."""
        return self.issued_at <= now <= self.valid_until

    def binding(self, card_fingerprint: str) -> SnapshotBinding | None:
        return self.bindings.get(card_fingerprint)

    def program(self, code: str) -> SnapshotProgram | None:
        return self.programs.get(code)


def _instant(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return parsed


def _pem_certificates(items: Iterable[Any]) -> list[x509.Certificate]:
    certificates: list[x509.Certificate] = []
    for item in items:
        certificates.extend(x509.load_pem_x509_certificates(str(item).encode("ascii")))
    return certificates


def verify_snapshot(body: Mapping[str, Any], pinned_key: str, *, terminal_id: int) -> Snapshot:
    """Check the API's answer to GET /terminals/snapshot and read it.

    `pinned_key` is the snapshot key the terminal learnt at enrolment (base64url); a snapshot signed by any
    other key is refused even if it names that key itself. Raises SnapshotInvalid.
    """
    try:
        payload = body["snapshot"]
        signature = str(body["signature"])
        key = Ed25519PublicKey.from_public_bytes(b64url_decode(pinned_key))
    except (KeyError, TypeError, ValueError) as error:
        raise SnapshotInvalid("the snapshot answer is malformed") from error
    if not isinstance(payload, Mapping):
        raise SnapshotInvalid("the snapshot answer is malformed")
    try:
        key.verify(b64url_decode(signature), canonical_json(payload))
    except (InvalidSignature, ValueError) as error:
        raise SnapshotInvalid("the snapshot's signature does not verify with the enrolled key") from error
    snapshot = Snapshot.parse(payload, signature, pinned_key)
    if snapshot.terminal_id != terminal_id:
        raise SnapshotInvalid(f"the snapshot was made for terminal {snapshot.terminal_id}")
    return snapshot


# -- the card, checked against the snapshot --------------------------------------------------------


@dataclass(frozen=True)
class OfflineCard:
    """A card certificate that chains to the snapshot's trust anchors and is neither expired nor revoked."""

    fingerprint: str
    certificate: x509.Certificate
    public_key: rsa.RSAPublicKey


def check_card(
    snapshot: Snapshot, certificate_der: bytes, chain_der: Sequence[bytes], at: datetime
) -> OfflineCard:
    """Check a card certificate as the API would, with what the snapshot knows.

    Raises OfflineRefusal: card.malformed, card.unknown_issuer, card.expired, card.revoked.
    """
    try:
        leaf = x509.load_der_x509_certificate(certificate_der)
        chain = [x509.load_der_x509_certificate(der) for der in chain_der]
    except ValueError as error:
        raise OfflineRefusal("card.malformed") from error
    public_key = leaf.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise OfflineRefusal("card.malformed")
    _walk_to_anchor(snapshot, leaf, chain, at)
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
            raise OfflineRefusal("card.unknown_issuer")
    except x509.ExtensionNotFound:
        pass
    if not (leaf.not_valid_before_utc <= at <= leaf.not_valid_after_utc):
        raise OfflineRefusal("card.expired")
    if format(leaf.serial_number, "x") in snapshot.revoked_serials:
        raise OfflineRefusal("card.revoked")
    return OfflineCard(fingerprint(certificate_der), leaf, public_key)


def _walk_to_anchor(
    snapshot: Snapshot, leaf: x509.Certificate, chain: list[x509.Certificate], at: datetime
) -> None:
    anchors = {anchor.subject.public_bytes(): anchor for anchor in snapshot.trust_anchors}
    pool = chain + list(snapshot.intermediates)
    current = leaf
    for _depth in range(MAX_CHAIN_DEPTH):
        anchor = anchors.get(current.issuer.public_bytes())
        if anchor is not None and _issued_by(current, anchor):
            _check_dates(anchor, at)
            return
        parent = next(
            (c for c in pool if c.subject == current.issuer and _is_ca(c) and _issued_by(current, c)), None
        )
        if parent is None:
            raise OfflineRefusal("card.unknown_issuer")
        _check_dates(parent, at)
        current = parent
    raise OfflineRefusal("card.unknown_issuer")


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _check_dates(certificate: x509.Certificate, at: datetime) -> None:
    if not (certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc):
        raise OfflineRefusal("card.expired")


def card_signature_valid(card: OfflineCard, message: bytes, signature: bytes) -> bool:
    """Whether the card's user key signed `message` (PKCS#1 v1.5 over SHA-256, as the card does)."""
    try:
        card.public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
