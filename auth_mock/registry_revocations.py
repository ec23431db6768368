"""The issuer follows the resident registry: what a registry change does to a resident's certificates.

A city reports every change of its resident registry to the card issuer (J-LIS), which revokes
(DESIGN §5):

- on a death, both certificates of every card of the resident (reason cessationOfOperation);
- when the name, address, birth date or sex changes, or the resident moves out of the municipality,
  the signature certificate only (reason affiliationChanged): it certifies facts that are no longer
  true. The user-authentication certificate names nobody and stays valid.

Neither side imports the other: the registry only records its change feed, the issuer only revokes, and
:class:`RegistryFollower` reads the feed from a cursor kept in the issuer's directory and applies it.
It is run by the mock server before each CRL/OCSP answer (so a change recorded by any process shows at
once), by `mock-card serve`, and by `mock-card follow-registry`. Applying a change twice is harmless:
a revoked certificate keeps its first revocation.
"""

from __future__ import annotations

import fcntl
import json
import threading
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

from cryptography import x509

from auth_mock.card import CardFileError, VirtualCard, write_private_file_atomically
from auth_mock.issuer import (
    CardHolder,
    Clock,
    IssuedCard,
    Issuer,
    Revocation,
    RevocationReason,
    certified_facts,
)
from auth_mock.registry import RegistryChange, RegistryPerson

CURSOR_FORMAT: Final = "auth_mock.registry_cursor/1"
# Kinds that may change one of the four facts (or the municipality): their signature certificates are
# checked against the registry. A licence return changes none of them.
FACT_CHANGING_KINDS: Final = frozenset({"moved_within", "moved_out", "moved_in", "name_changed"})


class ChangeFeed(Protocol):
    """The part of auth_mock.registry.Registry the follower reads."""

    @property
    def path(self) -> Path: ...

    def get(self, registry_id: str) -> RegistryPerson | None: ...

    def changes_since(self, seq: int, limit: int = 500) -> list[RegistryChange]: ...


def _certified_facts_differ(card: IssuedCard, person: RegistryPerson) -> bool:
    """True when the card's signature certificate no longer states the registry's four facts.

    A card file that cannot be read is taken as differing: the issuer cannot show the certificate is
    still true, and a wrongly revoked signature certificate costs a reissue, a wrongly kept one a forgery.
    """
    try:
        der = VirtualCard.load(card.path).signature_certificate_der
    except (CardFileError, OSError):
        return True
    if der is None:
        return False
    facts = certified_facts(x509.load_der_x509_certificate(der))
    holder = CardHolder.from_person(person)
    return (
        facts.name != holder.certified_name
        or facts.sex != holder.sex
        or facts.birth_date != holder.birth_date
        or facts.address != holder.address
    )


def revocations_for_change(
    issuer: Issuer, change: RegistryChange, current: RegistryPerson | None, *, now: datetime
) -> list[Revocation]:
    """Revoke what one registry change makes untrue; returns the new revocations.

    `current` is the person as the registry holds them now (the change's own record when None): an old
    change replayed after a card was reissued is judged against today's facts, so the new card stays
    valid. A death revokes every certificate of the resident; a fact-changing kind revokes each signature
    certificate whose four facts differ from the registry's, or every one when the resident has moved out.
    """
    person = current or change.person
    if change.kind == "died" or person.status == "deceased":
        return issuer.revoke_for_death(change.registry_id, now=now)
    if change.kind not in FACT_CHANGING_KINDS:
        return []
    revoked: list[Revocation] = []
    for card in issuer.cards_of(change.registry_id):
        if card.sign_cert_serial is None or card.signature_certificate_revoked:
            continue
        if person.status == "moved_out" or _certified_facts_differ(card, person):
            revoked.extend(issuer.revoke(card.card_id, RevocationReason.FACT_CHANGE.value, now))
    return revoked


class RegistryFollower:
    """Applies a registry's change feed to an issuer, from a cursor kept in the issuer directory.

    The cursor is per registry file (its resolved path), read and written under a file lock, so the mock
    server, `mock-card serve` and the CLI may follow the same registry into the same issuer at once.
    Thread-safe.
    """

    CURSOR: Final = "registry-cursors.json"
    LOCK: Final = ".registry-cursors.lock"
    PAGE: Final = 500

    def __init__(self, issuer: Issuer, registry: ChangeFeed, *, clock: Clock | None = None) -> None:
        self.issuer = issuer
        self.registry = registry
        self.clock = clock or issuer.clock
        self._key = str(Path(registry.path).resolve())
        self._lock = threading.Lock()

    @property
    def _cursor_path(self) -> Path:
        return self.issuer.directory / self.CURSOR

    def _read_cursors(self) -> dict[str, int]:
        try:
            data = json.loads(self._cursor_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if data.get("format") != CURSOR_FORMAT:
            raise ValueError(f"住民台帳カーソルの形式が違います: {self._cursor_path}")
        return {str(key): int(value) for key, value in data.get("registries", {}).items()}

    def cursor(self) -> int:
        """The last feed entry applied (0 before the first)."""
        return self._read_cursors().get(self._key, 0)

    def follow(self) -> list[Revocation]:
        """Apply every feed entry after the cursor, oldest first; returns the new revocations."""
        now = self.clock()
        revoked: list[Revocation] = []
        with self._lock, (self.issuer.directory / self.LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                cursors = self._read_cursors()
                seq = cursors.get(self._key, 0)
                while True:
                    changes = self.registry.changes_since(seq, limit=self.PAGE)
                    if not changes:
                        break
                    for change in changes:
                        current = self.registry.get(change.registry_id)
                        revoked.extend(revocations_for_change(self.issuer, change, current, now=now))
                        seq = change.seq
                    cursors[self._key] = seq
                    content = {"format": CURSOR_FORMAT, "registries": cursors}
                    write_private_file_atomically(
                        self._cursor_path, json.dumps(content, indent=1, ensure_ascii=False).encode("utf-8")
                    )
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return revoked
