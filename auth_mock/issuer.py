"""The mock card issuer: root and intermediate CA, card issuance, revocation, CRL and OCSP (DESIGN §5).

An issuer lives in a directory::

    issuer.json               base URL and format version
    root-ca.pem               the trust anchor relying parties are configured with
    root-ca-key.pem           (0600)
    intermediate-ca.pem       the CA that issues card certificates, CRLs and OCSP answers
    intermediate-ca-key.pem   (0600)
    index.json                issued cards and revocations (no personal data beyond the registry id)

Certificate profiles, following the real JPKI certificates:

- user-authentication certificate: subject `C=JP, CN=<opaque random serial>` and nothing that names
  the holder; key usage digitalSignature; extended key usage clientAuth; a CRL distribution point
  `{base_url}/crl/{municipality_code}.crl`; an authority information access with the OCSP URL
  `{base_url}/ocsp` and the CA certificate at `{base_url}/ca/intermediate.der`.
- signature certificate: the same shape with key usage digitalSignature + nonRepudiation, no EKU,
  and the holder's four facts as subjectAltName otherName entries, each value a DER UTF8String:

  ========================  =====================  =========================================
  OID                       fact                   value
  ========================  =====================  =========================================
  1.2.392.200149.8.5.5.1    name                   family name, U+3000, given name
  1.2.392.200149.8.5.5.2    name alternative       the same (the mock needs no 代替文字)
  1.2.392.200149.8.5.5.3    sex                    "1" male, "2" female (ISO/IEC 5218 codes)
  1.2.392.200149.8.5.5.4    birth date             "YYYYMMDD" (Gregorian)
  1.2.392.200149.8.5.5.5    address                as in the resident registry
  1.2.392.200149.8.5.5.6    address alternative    the same
  ========================  =====================  =========================================

Both certificates expire at the end (Japan time) of the holder's 5th birthday after issue.
Revocation reasons: `loss` (keyCompromise), `death` (cessationOfOperation) and, for the signature
certificate only, `fact_change` (affiliationChanged) when any of the four facts changes.
"""

from __future__ import annotations

import fcntl
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from auth_mock import jpki
from auth_mock.card import (
    CardImage,
    KeySlot,
    StoredSecret,
    VirtualCard,
    validate_signature_password,
    validate_user_pin,
    write_private_file_atomically,
)

JAPAN: Final = ZoneInfo("Asia/Tokyo")
ISSUER_FORMAT: Final = "auth_mock.issuer/1"
INDEX_FORMAT: Final = "auth_mock.issuer_index/1"

OID_NAME: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.1")
OID_NAME_ALTERNATIVE: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.2")
OID_SEX: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.3")
OID_BIRTH_DATE: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.4")
OID_ADDRESS: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.5")
OID_ADDRESS_ALTERNATIVE: Final = x509.ObjectIdentifier("1.2.392.200149.8.5.5.6")

_SEX_CODES: Final = {"male": "1", "female": "2"}
_CERTIFICATE_DAYS_BACK_FOR_EXPIRED: Final = 5 * 365
_CRL_VALIDITY: Final = timedelta(days=1)
_OCSP_VALIDITY: Final = timedelta(hours=1)
_KEY_SIZE: Final = 2048

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The current time (UTC); the default clock of an issuer used from the command line."""
    return datetime.now(UTC)


class IssuerError(Exception):
    """Base of the issuer's errors."""


class IssuerNotInitialised(IssuerError, FileNotFoundError):
    """The directory holds no issuer (run `mock-card init` or Issuer.create)."""


class UnknownCard(IssuerError, LookupError):
    """No card with that id (or certificate with that serial) was issued here."""


class CardKind(StrEnum):
    STANDARD = "standard"
    FACE_RECOGNITION = "face_recognition"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LOCKED = "locked"

    @classmethod
    def parse(cls, value: str) -> CardKind:
        """Accept `face-recognition` as well as `face_recognition`; ValueError for unknown kinds."""
        try:
            return cls(value.strip().lower().replace("-", "_"))
        except ValueError:
            kinds = ", ".join(kind.value for kind in cls)
            raise ValueError(f"カードの種類が不明です: {value}（{kinds}）") from None

    @property
    def has_pin(self) -> bool:
        return self is not CardKind.FACE_RECOGNITION


class RevocationReason(StrEnum):
    LOSS = "loss"
    DEATH = "death"
    FACT_CHANGE = "fact_change"

    @property
    def crl_reason(self) -> x509.ReasonFlags:
        return {
            RevocationReason.LOSS: x509.ReasonFlags.key_compromise,
            RevocationReason.DEATH: x509.ReasonFlags.cessation_of_operation,
            RevocationReason.FACT_CHANGE: x509.ReasonFlags.affiliation_changed,
        }[self]


class CertificateRole(StrEnum):
    USER = "user"
    SIGNATURE = "signature"


class HolderFacts(Protocol):
    """What the registry knows about a person that a card needs (RegistryPerson has these)."""

    @property
    def registry_id(self) -> str: ...
    @property
    def family_name(self) -> str: ...
    @property
    def given_name(self) -> str: ...
    @property
    def family_name_kana(self) -> str: ...
    @property
    def given_name_kana(self) -> str: ...
    @property
    def sex(self) -> str: ...
    @property
    def birth_date(self) -> date: ...
    @property
    def address(self) -> str: ...
    @property
    def municipality_code(self) -> str: ...


@dataclass(frozen=True)
class CardHolder:
    """The resident a card is issued to, as the resident registry records them."""

    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    sex: str  # "male" / "female"
    birth_date: date
    address: str
    municipality_code: str
    registry_id: str

    @classmethod
    def from_person(cls, person: HolderFacts) -> CardHolder:
        """Take the card-relevant facts of a registry person (auth_mock.registry.RegistryPerson)."""
        return cls(
            family_name=person.family_name,
            given_name=person.given_name,
            family_name_kana=person.family_name_kana,
            given_name_kana=person.given_name_kana,
            sex=str(person.sex),
            birth_date=person.birth_date,
            address=person.address,
            municipality_code=person.municipality_code,
            registry_id=person.registry_id,
        )

    @property
    def certified_name(self) -> str:
        return f"{self.family_name}\u3000{self.given_name}"

    def validate(self, *, on: date) -> None:
        """Raises ValueError when a fact could not appear on a card issued on `on`."""
        if not self.family_name or not self.given_name:
            raise ValueError("氏名がありません")
        if self.sex not in _SEX_CODES:
            raise ValueError(f"性別は male / female のいずれかです: {self.sex}")
        if self.birth_date >= on:
            raise ValueError("生年月日が発行日以降です")
        if not self.address:
            raise ValueError("住所がありません")
        if len(self.municipality_code) != 6 or not self.municipality_code.isdigit():
            raise ValueError(f"地方公共団体コードは数字6桁です: {self.municipality_code}")
        if not self.registry_id:
            raise ValueError("住民の識別子がありません")


@dataclass(frozen=True)
class CertifiedFacts:
    """The four facts as the signature certificate carries them (decoded)."""

    name: str
    name_alternative: str
    sex: str  # "male" / "female"
    birth_date: date
    address: str
    address_alternative: str


@dataclass(frozen=True)
class Revocation:
    serial: int
    card_id: str
    certificate: CertificateRole
    reason: RevocationReason
    revoked_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": str(self.serial),
            "card_id": self.card_id,
            "certificate": self.certificate.value,
            "reason": self.reason.value,
            "revoked_at": self.revoked_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Revocation:
        return cls(
            serial=int(data["serial"]),
            card_id=str(data["card_id"]),
            certificate=CertificateRole(data["certificate"]),
            reason=RevocationReason(data["reason"]),
            revoked_at=datetime.fromisoformat(data["revoked_at"]),
        )


@dataclass(frozen=True)
class IssuedCard:
    """A card the issuer made, with the revocations of its certificates."""

    card_id: str
    registry_id: str
    kind: CardKind
    municipality_code: str
    path: Path
    issued_at: datetime
    not_after: datetime
    user_cert_serial: int
    sign_cert_serial: int | None
    revocations: tuple[Revocation, ...] = field(default=())

    @property
    def user_certificate_revoked(self) -> bool:
        return any(r.certificate is CertificateRole.USER for r in self.revocations)

    @property
    def signature_certificate_revoked(self) -> bool:
        return any(r.certificate is CertificateRole.SIGNATURE for r in self.revocations)

    def status(self, now: datetime) -> str:
        """`revoked` (user certificate revoked), `expired` (past not_after) or `valid`."""
        if self.user_certificate_revoked:
            return "revoked"
        if now > self.not_after:
            return "expired"
        return "valid"

    def to_json(self) -> dict[str, Any]:
        return {
            "card_id": self.card_id,
            "registry_id": self.registry_id,
            "kind": self.kind.value,
            "municipality_code": self.municipality_code,
            "path": str(self.path),
            "issued_at": self.issued_at.isoformat(),
            "not_after": self.not_after.isoformat(),
            "user_cert_serial": str(self.user_cert_serial),
            "sign_cert_serial": str(self.sign_cert_serial) if self.sign_cert_serial is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], revocations: Iterable[Revocation] = ()) -> IssuedCard:
        sign_serial = data.get("sign_cert_serial")
        return cls(
            card_id=str(data["card_id"]),
            registry_id=str(data["registry_id"]),
            kind=CardKind(data["kind"]),
            municipality_code=str(data["municipality_code"]),
            path=Path(data["path"]),
            issued_at=datetime.fromisoformat(data["issued_at"]),
            not_after=datetime.fromisoformat(data["not_after"]),
            user_cert_serial=int(data["user_cert_serial"]),
            sign_cert_serial=int(sign_serial) if sign_serial is not None else None,
            revocations=tuple(revocations),
        )


# -- dates ----------------------------------------------------------------------------------------


def _birthday_in(year: int, month: int, day: int) -> date:
    if (month, day) == (2, 29):
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)  # common year: the day before 1 March, as Japanese law counts age
    return date(year, month, day)


def fifth_birthday_after(birth_date: date, issued_on: date) -> date:
    """The holder's 5th birthday strictly after the issue date (a birthday on the issue day does not
    count): the last day a JPKI certificate is valid."""
    this_year = _birthday_in(issued_on.year, birth_date.month, birth_date.day)
    first_year = issued_on.year if this_year > issued_on else issued_on.year + 1
    return _birthday_in(first_year + 4, birth_date.month, birth_date.day)


def certificate_not_after(birth_date: date, issued_at: datetime) -> datetime:
    """End of the 5th birthday after issue, Japan time, as an aware UTC datetime."""
    last_day = fifth_birthday_after(birth_date, issued_at.astimezone(JAPAN).date())
    return datetime.combine(last_day, time(23, 59, 59), tzinfo=JAPAN).astimezone(UTC)


def _latest_birthday_end_before(month: int, day: int, now: datetime) -> datetime:
    year = now.astimezone(JAPAN).year
    while True:
        end = datetime.combine(_birthday_in(year, month, day), time(23, 59, 59), tzinfo=JAPAN)
        if end < now:
            return end.astimezone(UTC)
        year -= 1


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("日時にはタイムゾーンが必要です")
    return now.astimezone(UTC)


# -- DER helpers for otherName values ---------------------------------------------------------------


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _der_utf8_string(text: str) -> bytes:
    encoded = text.encode("utf-8")
    return b"\x0c" + _der_length(len(encoded)) + encoded


def _read_der_utf8_string(value: bytes) -> str:
    if len(value) < 2 or value[0] != 0x0C:
        raise ValueError("otherName の値が UTF8String ではありません")
    first = value[1]
    if first < 0x80:
        start, length = 2, first
    else:
        count = first & 0x7F
        start, length = 2 + count, int.from_bytes(value[2 : 2 + count], "big")
    if start + length != len(value):
        raise ValueError("otherName の値の長さが合いません")
    return value[start:].decode("utf-8")


def certified_facts(certificate: x509.Certificate) -> CertifiedFacts:
    """Decode the four facts from a signature certificate made by this issuer.

    Raises ValueError if the certificate lacks them (e.g. it is a user-authentication certificate).
    """
    try:
        alternative_names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as error:
        raise ValueError("署名用電子証明書ではありません（subjectAltName がありません）") from error
    values = {
        other.type_id: _read_der_utf8_string(other.value)
        for other in alternative_names.get_values_for_type(x509.OtherName)
    }
    try:
        sex = {code: name for name, code in _SEX_CODES.items()}[values[OID_SEX]]
        birth = values[OID_BIRTH_DATE]
        return CertifiedFacts(
            name=values[OID_NAME],
            name_alternative=values[OID_NAME_ALTERNATIVE],
            sex=sex,
            birth_date=date(int(birth[0:4]), int(birth[4:6]), int(birth[6:8])),
            address=values[OID_ADDRESS],
            address_alternative=values[OID_ADDRESS_ALTERNATIVE],
        )
    except KeyError as error:
        raise ValueError("署名用電子証明書の基本4情報が揃っていません") from error


def _facts_alternative_name(holder: CardHolder) -> x509.SubjectAlternativeName:
    entries = [
        (OID_NAME, holder.certified_name),
        (OID_NAME_ALTERNATIVE, holder.certified_name),
        (OID_SEX, _SEX_CODES[holder.sex]),
        (OID_BIRTH_DATE, holder.birth_date.strftime("%Y%m%d")),
        (OID_ADDRESS, holder.address),
        (OID_ADDRESS_ALTERNATIVE, holder.address),
    ]
    return x509.SubjectAlternativeName(
        [x509.OtherName(oid, _der_utf8_string(value)) for oid, value in entries]
    )


# -- keys and files -------------------------------------------------------------------------------


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise IssuerError(f"CA の鍵が RSA ではありません: {path}")
    return key


def _write_public_file(path: Path, content: bytes) -> None:
    write_private_file_atomically(path, content)
    path.chmod(0o644)


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "auth_mock"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _opaque_subject() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
            x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(12).upper()),
        ]
    )


@dataclass
class _Index:
    cards: dict[str, IssuedCard]
    revocations: dict[int, Revocation]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "cards": [
                card.to_json() for card in sorted(self.cards.values(), key=lambda c: (c.issued_at, c.card_id))
            ],
            "revocations": [
                r.to_json() for r in sorted(self.revocations.values(), key=lambda r: r.revoked_at)
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _Index:
        if data.get("format") != INDEX_FORMAT:
            raise IssuerError("発行台帳の形式が違います")
        revocations = {r.serial: r for r in map(Revocation.from_json, data.get("revocations", []))}
        by_card: dict[str, list[Revocation]] = {}
        for revocation in revocations.values():
            by_card.setdefault(revocation.card_id, []).append(revocation)
        cards = {}
        for record in data.get("cards", []):
            card = IssuedCard.from_json(record, by_card.get(str(record["card_id"]), []))
            cards[card.card_id] = card
        return cls(cards=cards, revocations=revocations)

    def with_revocations(self, card: IssuedCard) -> IssuedCard:
        own = tuple(r for r in self.revocations.values() if r.card_id == card.card_id)
        return replace(card, revocations=own)


# -- the issuer -----------------------------------------------------------------------------------


class Issuer:
    """A mock JPKI certification authority persisted in a directory."""

    ROOT_CERTIFICATE: Final = "root-ca.pem"
    ROOT_KEY: Final = "root-ca-key.pem"
    INTERMEDIATE_CERTIFICATE: Final = "intermediate-ca.pem"
    INTERMEDIATE_KEY: Final = "intermediate-ca-key.pem"
    SETTINGS: Final = "issuer.json"
    INDEX: Final = "index.json"
    LOCK: Final = ".index.lock"

    def __init__(
        self,
        directory: Path,
        *,
        base_url: str,
        root_certificate: x509.Certificate,
        intermediate_certificate: x509.Certificate,
        intermediate_key: rsa.RSAPrivateKey,
        clock: Clock = system_clock,
    ) -> None:
        self.directory = directory
        self.base_url = base_url.rstrip("/")
        self.root_certificate = root_certificate
        self.intermediate_certificate = intermediate_certificate
        self._intermediate_key = intermediate_key
        self.clock = clock
        self._index_cache: tuple[tuple[int, int, int], _Index] | None = None

    # -- creation and loading --

    @classmethod
    def create(cls, directory: Path, *, base_url: str, now: datetime, clock: Clock = system_clock) -> Issuer:
        """Make a new root and intermediate CA in `directory` (key files 0600).

        The CAs are valid from 10 years before `now`, so that cards can be back-dated for tests.
        Raises FileExistsError if the directory already holds an issuer.
        """
        now = _require_aware(now)
        directory = Path(directory)
        if (directory / cls.SETTINGS).exists():
            raise FileExistsError(f"発行者は既に作成されています: {directory}")
        directory.mkdir(parents=True, exist_ok=True)
        not_before = now - timedelta(days=3653)

        root_key = _new_key()
        root_name = _ca_name("JPKI Mock Root CA")
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(now + timedelta(days=20 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256())
        )
        intermediate_key = _new_key()
        intermediate = (
            x509.CertificateBuilder()
            .subject_name(_ca_name("JPKI Mock Intermediate CA"))
            .issuer_name(root_name)
            .public_key(intermediate_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(now + timedelta(days=15 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(intermediate_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        write_private_file_atomically(directory / cls.ROOT_KEY, _key_pem(root_key))
        write_private_file_atomically(directory / cls.INTERMEDIATE_KEY, _key_pem(intermediate_key))
        _write_public_file(directory / cls.ROOT_CERTIFICATE, root.public_bytes(serialization.Encoding.PEM))
        _write_public_file(
            directory / cls.INTERMEDIATE_CERTIFICATE, intermediate.public_bytes(serialization.Encoding.PEM)
        )
        _write_public_file(
            directory / cls.INDEX, json.dumps(_Index({}, {}).to_json(), indent=1).encode("utf-8")
        )
        settings = {"format": ISSUER_FORMAT, "base_url": base_url.rstrip("/"), "created_at": now.isoformat()}
        _write_public_file(
            directory / cls.SETTINGS, json.dumps(settings, indent=1, ensure_ascii=False).encode("utf-8")
        )
        return cls(
            directory,
            base_url=base_url,
            root_certificate=root,
            intermediate_certificate=intermediate,
            intermediate_key=intermediate_key,
            clock=clock,
        )

    @classmethod
    def load(cls, directory: Path, *, clock: Clock = system_clock) -> Issuer:
        """Open the issuer kept in `directory`; raises IssuerNotInitialised if there is none."""
        directory = Path(directory)
        settings_path = directory / cls.SETTINGS
        if not settings_path.exists():
            raise IssuerNotInitialised(
                f"発行者がありません（mock-card init で作成してください）: {directory}"
            )
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        if settings.get("format") != ISSUER_FORMAT:
            raise IssuerError(f"発行者の形式が違います: {settings_path}")
        return cls(
            directory,
            base_url=str(settings["base_url"]),
            root_certificate=x509.load_pem_x509_certificate((directory / cls.ROOT_CERTIFICATE).read_bytes()),
            intermediate_certificate=x509.load_pem_x509_certificate(
                (directory / cls.INTERMEDIATE_CERTIFICATE).read_bytes()
            ),
            intermediate_key=_load_key(directory / cls.INTERMEDIATE_KEY),
            clock=clock,
        )

    @classmethod
    def open_or_create(
        cls, directory: Path, *, base_url: str, now: datetime, clock: Clock = system_clock
    ) -> Issuer:
        """Load the issuer in `directory`, creating it first if the directory holds none."""
        try:
            return cls.load(directory, clock=clock)
        except IssuerNotInitialised:
            return cls.create(directory, base_url=base_url, now=now, clock=clock)

    # -- published locations --

    @property
    def root_certificate_pem_path(self) -> Path:
        """The trust anchor relying parties (the voucher API) are configured with."""
        return self.directory / self.ROOT_CERTIFICATE

    @property
    def intermediate_certificate_pem_path(self) -> Path:
        return self.directory / self.INTERMEDIATE_CERTIFICATE

    def crl_url(self, municipality_code: str) -> str:
        return f"{self.base_url}/crl/{municipality_code}.crl"

    @property
    def ocsp_url(self) -> str:
        return f"{self.base_url}/ocsp"

    @property
    def ca_issuers_url(self) -> str:
        return f"{self.base_url}/ca/intermediate.der"

    # -- the index --

    def _index_stamp(self) -> tuple[int, int, int]:
        status = (self.directory / self.INDEX).stat()
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _read_index(self) -> _Index:
        stamp = self._index_stamp()
        if self._index_cache is not None and self._index_cache[0] == stamp:
            return self._index_cache[1]
        index = _Index.from_json(json.loads((self.directory / self.INDEX).read_text(encoding="utf-8")))
        self._index_cache = (stamp, index)
        return index

    @contextmanager
    def _changing_index(self) -> Iterator[_Index]:
        """Read-modify-write of the index under an exclusive lock (the CLI and the HTTP server may
        run in different processes)."""
        with (self.directory / self.LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._index_cache = None
                index = self._read_index()
                changed = _Index(dict(index.cards), dict(index.revocations))
                yield changed
                content = json.dumps(changed.to_json(), indent=1, ensure_ascii=False).encode("utf-8")
                _write_public_file(self.directory / self.INDEX, content)
                self._index_cache = None
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def list_cards(self) -> list[IssuedCard]:
        """Every card issued here, oldest first."""
        index = self._read_index()
        return sorted(index.cards.values(), key=lambda card: (card.issued_at, card.card_id))

    def get_card(self, card_id: str) -> IssuedCard | None:
        """The card with that id, or None."""
        return self._read_index().cards.get(card_id)

    def cards_of(self, registry_id: str) -> list[IssuedCard]:
        """The cards issued to one resident, oldest first."""
        return [card for card in self.list_cards() if card.registry_id == registry_id]

    def find_card_by_serial(self, serial: int) -> IssuedCard | None:
        """The card holding the certificate with that serial, or None."""
        for card in self._read_index().cards.values():
            if serial in (card.user_cert_serial, card.sign_cert_serial):
                return card
        return None

    # -- issuance --

    def issue_card(
        self,
        holder: CardHolder,
        *,
        pin: str | None,
        password: str | None,
        kind: str = "standard",
        out: Path,
        now: datetime,
        issued_at: datetime | None = None,
    ) -> IssuedCard:
        """Issue a card of `kind` to `holder` and write its card file to `out` (mode 0600).

        Kinds: `standard`; `face_recognition` (no PIN, no signature certificate: pin and password are
        ignored); `expired` (certificates whose validity already ended: issued about 5 years ago);
        `revoked` (issued 30 days ago, reported lost yesterday); `locked` (PIN try counter at 0).
        `issued_at` back-dates any card. Raises ValueError for a bad holder, kind, PIN (4 digits) or
        password (6-16 of A-Z 0-9), FileExistsError if `out` exists.
        """
        now = _require_aware(now)
        card_kind = CardKind.parse(kind)
        out = Path(out).absolute()
        if out.exists():
            raise FileExistsError(f"カードファイルが既にあります: {out}")
        credentials: tuple[str, str] | None = None
        if card_kind.has_pin:
            if pin is None or password is None:
                raise ValueError("暗証番号と署名用パスワードが必要です")
            validate_user_pin(pin)
            validate_signature_password(password)
            credentials = (pin, password)
        if issued_at is not None:
            start = _require_aware(issued_at)
        elif card_kind is CardKind.EXPIRED:
            last_day = _latest_birthday_end_before(holder.birth_date.month, holder.birth_date.day, now)
            start = last_day - timedelta(days=_CERTIFICATE_DAYS_BACK_FOR_EXPIRED)
        elif card_kind is CardKind.REVOKED:
            start = now - timedelta(days=30)
        else:
            start = now
        holder.validate(on=start.astimezone(JAPAN).date())
        not_after = certificate_not_after(holder.birth_date, start)

        card_id = f"card-{secrets.token_hex(8)}"
        user_key = _new_key()
        user_certificate = self._user_certificate(user_key, holder.municipality_code, start, not_after)
        ca_der = self.intermediate_certificate.public_bytes(serialization.Encoding.DER)
        user_slot = KeySlot(
            private_key_pem=_key_pem(user_key),
            certificate_der=user_certificate.public_bytes(serialization.Encoding.DER),
            ca_certificate_der=ca_der,
            secret=None,
        )
        signature_slot: KeySlot | None = None
        signature_serial: int | None = None
        if credentials is not None:
            pin, password = credentials
            user_slot.secret = StoredSecret.create(pin, max_tries=jpki.USER_PIN_MAX_TRIES)
            if card_kind is CardKind.LOCKED:
                user_slot.secret.tries_left = 0
            signature_key = _new_key()
            signature_certificate = self._signature_certificate(signature_key, holder, start, not_after)
            signature_serial = signature_certificate.serial_number
            signature_slot = KeySlot(
                private_key_pem=_key_pem(signature_key),
                certificate_der=signature_certificate.public_bytes(serialization.Encoding.DER),
                ca_certificate_der=ca_der,
                secret=StoredSecret.create(password, max_tries=jpki.SIGNATURE_PASSWORD_MAX_TRIES),
            )
        CardImage(card_id=card_id, kind=card_kind.value, user=user_slot, signature=signature_slot).save(out)

        card = IssuedCard(
            card_id=card_id,
            registry_id=holder.registry_id,
            kind=card_kind,
            municipality_code=holder.municipality_code,
            path=out,
            issued_at=start,
            not_after=not_after,
            user_cert_serial=user_certificate.serial_number,
            sign_cert_serial=signature_serial,
        )
        with self._changing_index() as index:
            index.cards[card_id] = card
            if card_kind is CardKind.REVOKED:
                reported = max(start, now - timedelta(days=1))
                for revocation in self._revocations_for(card, RevocationReason.LOSS, reported):
                    index.revocations[revocation.serial] = revocation
            card = index.with_revocations(card)
        return card

    def _leaf_builder(
        self, key: rsa.RSAPrivateKey, municipality_code: str, not_before: datetime, not_after: datetime
    ) -> x509.CertificateBuilder:
        issuer_key = self.intermediate_certificate.public_key()
        if not isinstance(issuer_key, rsa.RSAPublicKey):
            raise IssuerError("中間 CA の鍵が RSA ではありません")
        return (
            x509.CertificateBuilder()
            .subject_name(_opaque_subject())
            .issuer_name(self.intermediate_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(self.crl_url(municipality_code))],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(self.ocsp_url),
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier(self.ca_issuers_url),
                        ),
                    ]
                ),
                critical=False,
            )
        )

    def _user_certificate(
        self, key: rsa.RSAPrivateKey, municipality_code: str, not_before: datetime, not_after: datetime
    ) -> x509.Certificate:
        return (
            self._leaf_builder(key, municipality_code, not_before, not_after)
            .add_extension(_leaf_key_usage(content_commitment=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._intermediate_key, hashes.SHA256())
        )

    def _signature_certificate(
        self, key: rsa.RSAPrivateKey, holder: CardHolder, not_before: datetime, not_after: datetime
    ) -> x509.Certificate:
        return (
            self._leaf_builder(key, holder.municipality_code, not_before, not_after)
            .add_extension(_leaf_key_usage(content_commitment=True), critical=True)
            .add_extension(_facts_alternative_name(holder), critical=False)
            .sign(self._intermediate_key, hashes.SHA256())
        )

    def expire_card(self, card_id: str, *, now: datetime) -> IssuedCard:
        """Make a card's certificates expired: re-sign them (same keys, serials and contents) with a
        validity that ended on the holder's last birthday, as if the card were issued 5 years earlier.

        A real CA never re-signs a serial; the mock does so that bindings made to the card still
        point at it and the relying party sees expiry rather than an unknown certificate.
        Raises UnknownCard, CardRemoved / CardFileError if the card file is gone.
        """
        now = _require_aware(now)
        card = self.get_card(card_id)
        if card is None:
            raise UnknownCard(f"カードがありません: {card_id}")
        virtual_card = VirtualCard.load(card.path)
        old_user = x509.load_der_x509_certificate(virtual_card.user_certificate_der)
        birthday = old_user.not_valid_after_utc.astimezone(JAPAN).date()
        not_after = _latest_birthday_end_before(birthday.month, birthday.day, now)
        not_before = not_after - timedelta(days=_CERTIFICATE_DAYS_BACK_FOR_EXPIRED)
        new_user = self._resign(old_user, not_before, not_after)
        new_signature: bytes | None = None
        if virtual_card.signature_certificate_der is not None:
            old_signature = x509.load_der_x509_certificate(virtual_card.signature_certificate_der)
            new_signature = self._resign(old_signature, not_before, not_after)
        virtual_card.replace_certificates(
            user_certificate_der=new_user, signature_certificate_der=new_signature
        )
        with self._changing_index() as index:
            updated = replace(index.cards[card_id], issued_at=not_before, not_after=not_after)
            index.cards[card_id] = updated
            return index.with_revocations(updated)

    def _resign(self, certificate: x509.Certificate, not_before: datetime, not_after: datetime) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(certificate.subject)
            .issuer_name(certificate.issuer)
            .public_key(certificate.public_key())
            .serial_number(certificate.serial_number)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
        )
        for extension in certificate.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        return builder.sign(self._intermediate_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # -- revocation --

    def _now(self, now: datetime | None) -> datetime:
        return _require_aware(now if now is not None else self.clock())

    @staticmethod
    def _revocations_for(card: IssuedCard, reason: RevocationReason, at: datetime) -> list[Revocation]:
        roles: list[tuple[CertificateRole, int]] = []
        if reason is not RevocationReason.FACT_CHANGE:
            roles.append((CertificateRole.USER, card.user_cert_serial))
        if card.sign_cert_serial is not None:
            roles.append((CertificateRole.SIGNATURE, card.sign_cert_serial))
        return [Revocation(serial, card.card_id, role, reason, at) for role, serial in roles]

    def _record_revocations(self, candidates: Iterable[Revocation]) -> list[Revocation]:
        recorded: list[Revocation] = []
        with self._changing_index() as index:
            for revocation in candidates:
                if revocation.serial not in index.revocations:  # revoking twice keeps the first record
                    index.revocations[revocation.serial] = revocation
                    recorded.append(revocation)
        return recorded

    def revoke(
        self, card_id_or_serial: str | int, reason: str, now: datetime | None = None
    ) -> list[Revocation]:
        """Revoke a card (by card id) or one certificate (by serial number); returns new revocations.

        `loss` and `death` revoke both certificates of a card; `fact_change` revokes only the
        signature certificate and is refused (ValueError) for a user-authentication serial or a card
        without a signature certificate. Certificates already revoked stay as first recorded.
        Raises UnknownCard, ValueError for an unknown reason.
        """
        at = self._now(now)
        try:
            why = RevocationReason(reason)
        except ValueError:
            reasons = ", ".join(r.value for r in RevocationReason)
            raise ValueError(f"失効理由が不明です: {reason}（{reasons}）") from None
        if isinstance(card_id_or_serial, int):
            card = self.find_card_by_serial(card_id_or_serial)
            if card is None:
                raise UnknownCard(f"この発行者の証明書ではありません: シリアル {card_id_or_serial}")
            role = (
                CertificateRole.USER
                if card_id_or_serial == card.user_cert_serial
                else CertificateRole.SIGNATURE
            )
            if why is RevocationReason.FACT_CHANGE and role is CertificateRole.USER:
                raise ValueError("基本4情報の変更で失効するのは署名用電子証明書だけです")
            return self._record_revocations([Revocation(card_id_or_serial, card.card_id, role, why, at)])
        found = self.get_card(card_id_or_serial)
        if found is None:
            raise UnknownCard(f"カードがありません: {card_id_or_serial}")
        if why is RevocationReason.FACT_CHANGE and found.sign_cert_serial is None:
            raise ValueError("このカードには署名用電子証明書がありません")
        return self._record_revocations(self._revocations_for(found, why, at))

    def revoke_for_death(self, registry_id: str, *, now: datetime | None = None) -> list[Revocation]:
        """Revoke every certificate of every card of a resident who died; returns new revocations."""
        at = self._now(now)
        candidates = [
            revocation
            for card in self.cards_of(registry_id)
            for revocation in self._revocations_for(card, RevocationReason.DEATH, at)
        ]
        return self._record_revocations(candidates)

    def revoke_signature_on_fact_change(
        self, registry_id: str, *, now: datetime | None = None
    ) -> list[Revocation]:
        """Revoke the signature certificates of a resident whose name, address, birth date or sex
        changed; user-authentication certificates stay valid. Returns new revocations."""
        at = self._now(now)
        candidates = [
            revocation
            for card in self.cards_of(registry_id)
            for revocation in self._revocations_for(card, RevocationReason.FACT_CHANGE, at)
        ]
        return self._record_revocations(candidates)

    def revocation_of(self, serial: int, now: datetime) -> Revocation | None:
        """The revocation of a certificate in effect at `now`, or None."""
        revocation = self._read_index().revocations.get(serial)
        if revocation is None or revocation.revoked_at > now:
            return None
        return revocation

    # -- CRL --

    def crl_der(self, municipality_code: str, now: datetime, *, lag: timedelta = timedelta(0)) -> bytes:
        """The CRL of one municipality's distribution point, issued at `now` (DER).

        Lists the certificates of that municipality's cards revoked at or before `now - lag`:
        `lag` models how long a real CRL takes to show a revocation. Signed by the intermediate CA,
        with a CRL number, the issuing distribution point and the reason of each entry.
        """
        now = _require_aware(now)
        cutoff = now - lag
        index = self._read_index()
        issuer_key = self.intermediate_certificate.public_key()
        if not isinstance(issuer_key, rsa.RSAPublicKey):
            raise IssuerError("中間 CA の鍵が RSA ではありません")
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.intermediate_certificate.subject)
            .last_update(now)
            .next_update(now + _CRL_VALIDITY)
            .add_extension(
                x509.CRLNumber((now - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
            .add_extension(
                x509.IssuingDistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(self.crl_url(municipality_code))],
                    relative_name=None,
                    only_contains_user_certs=True,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
        )
        for revocation in index.revocations.values():
            card = index.cards.get(revocation.card_id)
            if card is None or card.municipality_code != municipality_code or revocation.revoked_at > cutoff:
                continue
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(revocation.serial)
                .revocation_date(revocation.revoked_at)
                .add_extension(x509.CRLReason(revocation.reason.crl_reason), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        return builder.sign(self._intermediate_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    # -- OCSP --

    def ocsp_response_der(self, request_der: bytes, now: datetime) -> bytes:
        """Answer an OCSP request (DER) at `now`, immediately reflecting every revocation.

        `good` for certificates issued here and not revoked, `revoked` with time and reason,
        `unknown` for serials this issuer never issued; `unauthorized` when the request names another
        CA; `malformedRequest` when the request cannot be parsed. The request's nonce is echoed.
        """
        now = _require_aware(now)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            algorithm = request.hash_algorithm
            serial = request.serial_number
            name_hash = request.issuer_name_hash
            key_hash = request.issuer_key_hash
        except (ValueError, UnsupportedAlgorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if (name_hash, key_hash) != self._issuer_hashes(algorithm):
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

        revocation = self.revocation_of(serial, now)
        if revocation is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        elif self.find_card_by_serial(serial) is not None:
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.UNKNOWN
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=serial,
            algorithm=algorithm,
            cert_status=status,
            this_update=now,
            next_update=now + _OCSP_VALIDITY,
            revocation_time=revocation.revoked_at if revocation is not None else None,
            revocation_reason=revocation.reason.crl_reason if revocation is not None else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.intermediate_certificate)
        try:
            nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(nonce, critical=False)
        response = builder.sign(self._intermediate_key, hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def _issuer_hashes(self, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
        name_digest = hashes.Hash(algorithm)
        name_digest.update(self.intermediate_certificate.subject.public_bytes())
        key_digest = hashes.Hash(algorithm)
        key_digest.update(
            self.intermediate_certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.PKCS1
            )
        )
        return name_digest.finalize(), key_digest.finalize()


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_key_usage(*, content_commitment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=content_commitment,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def certificate_serial_hex(serial: int) -> str:
    """A serial as people read it in certificate viewers: colon-separated upper-case hex."""
    raw = serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big")
    return ":".join(f"{byte:02X}" for byte in raw)
