"""The virtual My Number card, emulated at the APDU level (DESIGN §5).

`VirtualCard.load(path)` opens a card file and `.transmit(apdu)` answers the command the way a PC/SC
reader would hand back a real card's answer: the response data followed by SW1 SW2. The card knows
only the JPKI applet; selecting any other AID answers `6A82`.

The card file is JSON: private keys as PKCS#8 PEM, certificates as base64 DER, try counters, and the
kind of card. Every change of the card's memory (a try counter going down or back up) is written to
the file atomically before the response leaves the card, so a killed process never leaves a counter
that the holder could exploit. Session state (the selected file, which secrets were verified) lives
only in memory: a fresh `load`, a `reset`, or a new SELECT of the applet clears it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from auth_mock import jpki

CARD_FILE_FORMAT: Final = "auth_mock.virtual_card/1"
# What a contact reader reports for the card; the bytes only have to look like an ATR.
ATR: Final = bytes.fromhex("3B8F8001804F0CA0000003060300030000000068")

_MAX_SECRET_LENGTH: Final = 16


class CardFileError(Exception):
    """The card file is missing, unreadable or not a card file."""


class CardRemoved(CardFileError):
    """The card file disappeared while the card was in use: the card was taken out of the reader."""


@dataclass
class StoredSecret:
    """A PIN or password as the card keeps it: a salted digest and its try counter."""

    salt: bytes
    digest: bytes
    tries_left: int
    max_tries: int

    @classmethod
    def create(cls, secret: str, *, max_tries: int) -> StoredSecret:
        salt = secrets.token_bytes(16)
        return cls(
            salt=salt,
            digest=_secret_digest(salt, secret.encode("ascii")),
            tries_left=max_tries,
            max_tries=max_tries,
        )

    def matches(self, candidate: bytes) -> bool:
        return hmac.compare_digest(self.digest, _secret_digest(self.salt, candidate))

    def to_json(self) -> dict[str, Any]:
        return {
            "salt": _b64(self.salt),
            "digest": _b64(self.digest),
            "tries_left": self.tries_left,
            "max_tries": self.max_tries,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredSecret:
        return cls(
            salt=_unb64(data["salt"]),
            digest=_unb64(data["digest"]),
            tries_left=int(data["tries_left"]),
            max_tries=int(data["max_tries"]),
        )


def _secret_digest(salt: bytes, secret: bytes) -> bytes:
    # The card file is as secret as the card itself (it holds the private keys); the digest only
    # keeps the PIN out of plain sight in the file.
    return hmac.new(salt, secret, hashlib.sha256).digest()


@dataclass
class KeySlot:
    """One key pair of the JPKI applet with its certificate, its CA certificate and its secret."""

    private_key_pem: bytes
    certificate_der: bytes
    ca_certificate_der: bytes
    secret: StoredSecret | None

    def to_json(self) -> dict[str, Any]:
        return {
            "private_key_pem": self.private_key_pem.decode("ascii"),
            "certificate": _b64(self.certificate_der),
            "ca_certificate": _b64(self.ca_certificate_der),
            "secret": self.secret.to_json() if self.secret is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeySlot:
        secret = data.get("secret")
        return cls(
            private_key_pem=str(data["private_key_pem"]).encode("ascii"),
            certificate_der=_unb64(data["certificate"]),
            ca_certificate_der=_unb64(data["ca_certificate"]),
            secret=StoredSecret.from_json(secret) if secret is not None else None,
        )


@dataclass
class CardImage:
    """Everything a card file holds.

    `user` is the user-authentication slot; `signature` is absent on face-recognition cards, whose
    user slot also has no PIN (`user.secret is None`).
    """

    card_id: str
    kind: str
    user: KeySlot
    signature: KeySlot | None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": CARD_FILE_FORMAT,
            "card_id": self.card_id,
            "kind": self.kind,
            "user": self.user.to_json(),
            "signature": self.signature.to_json() if self.signature is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CardImage:
        if data.get("format") != CARD_FILE_FORMAT:
            raise CardFileError("カードファイルの形式が違います")
        signature = data.get("signature")
        return cls(
            card_id=str(data["card_id"]),
            kind=str(data["kind"]),
            user=KeySlot.from_json(data["user"]),
            signature=KeySlot.from_json(signature) if signature is not None else None,
        )

    def save(self, path: Path) -> None:
        """Write the card file atomically (temporary file, fsync, rename) with mode 0600."""
        write_private_file_atomically(path, json.dumps(self.to_json(), indent=1).encode("utf-8"))


def write_private_file_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` so that a crash leaves either the old or the new file, mode 0600."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)


def load_card_image(path: Path) -> CardImage:
    """Read a card file; raises CardRemoved if it is gone and CardFileError if it is not a card file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as error:
        raise CardRemoved(f"カードファイルがありません: {path}") from error
    try:
        return CardImage.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as error:
        raise CardFileError(f"カードファイルを読めません: {path}") from error


class _Content(Enum):
    BINARY = "binary"
    KEY = "key"
    SECRET = "secret"  # noqa: S105 -- the kind of a file (a PIN EF), not a password


class _Slot(Enum):
    USER = "user"
    SIGNATURE = "signature"


@dataclass(frozen=True)
class _ElementaryFile:
    content: _Content
    slot: _Slot | None = None
    data: bytes = b""
    needs_signature_password: bool = False


@dataclass
class _Session:
    applet_selected: bool = False
    current_ef: int | None = None
    verified: set[_Slot] = field(default_factory=set)


@dataclass(frozen=True)
class _Command:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    le: int | None  # None when the command carries no Le; 256 when Le is 00


class _Malformed(Exception):
    pass


def _parse_short_apdu(apdu: bytes) -> _Command:
    """Split a short APDU (ISO 7816-3 cases 1-4); extended lengths are not supported."""
    if len(apdu) < 4:
        raise _Malformed
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    body = apdu[4:]
    if not body:
        return _Command(cla, ins, p1, p2, b"", None)
    if len(body) == 1:
        return _Command(cla, ins, p1, p2, b"", body[0] or 256)
    lc = body[0]
    if lc == 0:
        raise _Malformed
    if len(body) == 1 + lc:
        return _Command(cla, ins, p1, p2, bytes(body[1:]), None)
    if len(body) == 2 + lc:
        return _Command(cla, ins, p1, p2, bytes(body[1 : 1 + lc]), body[-1] or 256)
    raise _Malformed


def _sw(status: int) -> bytes:
    return status.to_bytes(2, "big")


class VirtualCard:
    """A My Number card in a reader: answers JPKI APDUs and keeps its memory in a card file."""

    def __init__(self, image: CardImage, path: Path) -> None:
        self._image = image
        self._path = path
        self._session = _Session()
        self._lock = threading.RLock()
        self._file_stamp = self._stamp()
        self._files = self._build_files()

    @classmethod
    def load(cls, path: Path) -> VirtualCard:
        """Insert the card stored at `path`; raises CardRemoved / CardFileError when there is none."""
        path = Path(path)
        return cls(load_card_image(path), path)

    # -- what the holder and relying parties see -------------------------------------------------

    @property
    def card_id(self) -> str:
        return self._image.card_id

    @property
    def kind(self) -> str:
        return self._image.kind

    @property
    def path(self) -> Path:
        return self._path

    @property
    def user_certificate_der(self) -> bytes:
        with self._lock:
            self._follow_file()
            return self._image.user.certificate_der

    @property
    def signature_certificate_der(self) -> bytes | None:
        """The signature certificate as the chip holds it (the issuer's view, not an APDU read)."""
        with self._lock:
            self._follow_file()
            slot = self._image.signature
            return slot.certificate_der if slot is not None else None

    @property
    def user_pin_tries_left(self) -> int | None:
        """The user PIN's try counter, None on a card without a PIN."""
        with self._lock:
            self._follow_file()
            secret = self._image.user.secret
            return secret.tries_left if secret is not None else None

    @property
    def signature_password_tries_left(self) -> int | None:
        with self._lock:
            self._follow_file()
            slot = self._image.signature
            return slot.secret.tries_left if slot is not None and slot.secret is not None else None

    def reset(self) -> bytes:
        """Cold-reset the card: the session (selection, verified secrets) is cleared; returns the ATR."""
        with self._lock:
            self._session = _Session()
            return ATR

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU with response data followed by SW1 SW2.

        Raises CardRemoved when the card file disappeared (the card left the reader).
        """
        with self._lock:
            self._follow_file()
            try:
                command = _parse_short_apdu(bytes(apdu))
            except _Malformed:
                return _sw(jpki.SW_WRONG_LENGTH)
            return self._dispatch(command)

    # -- what the city's counter can do (not APDUs: a counter terminal's privileged operations) ---

    def reset_user_pin(self, new_pin: str | None = None) -> None:
        """Unlock the user PIN as the counter does: the try counter goes back to 3, optionally a new PIN.

        Raises ValueError on a card without a PIN or a PIN that is not 4 digits.
        """
        with self._lock:
            self._follow_file()
            secret = self._image.user.secret
            if secret is None:
                raise ValueError("このカードには利用者証明用暗証番号がありません（顔認証マイナンバーカード）")
            if new_pin is not None:
                validate_user_pin(new_pin)
                secret = StoredSecret.create(new_pin, max_tries=secret.max_tries)
                self._image.user.secret = secret
            secret.tries_left = secret.max_tries
            self._persist()

    def reset_signature_password(self, new_password: str | None = None) -> None:
        """Unlock the signature password (try counter back to 5), optionally setting a new password.

        Raises ValueError on a card without a signature certificate or a malformed password.
        """
        with self._lock:
            self._follow_file()
            slot = self._image.signature
            if slot is None or slot.secret is None:
                raise ValueError("このカードには署名用電子証明書がありません")
            if new_password is not None:
                validate_signature_password(new_password)
                slot.secret = StoredSecret.create(new_password, max_tries=slot.secret.max_tries)
            slot.secret.tries_left = slot.secret.max_tries
            self._persist()

    def lock_user_pin(self) -> None:
        """Bring the user PIN's try counter to 0, as three wrong entries would; ValueError without a PIN."""
        with self._lock:
            self._follow_file()
            secret = self._image.user.secret
            if secret is None:
                raise ValueError("このカードには利用者証明用暗証番号がありません（顔認証マイナンバーカード）")
            secret.tries_left = 0
            self._persist()

    def replace_certificates(
        self, *, user_certificate_der: bytes, signature_certificate_der: bytes | None
    ) -> None:
        """Write re-issued certificates for the card's existing keys (used by the issuer's `expire`)."""
        with self._lock:
            self._follow_file()
            self._image.user.certificate_der = user_certificate_der
            if self._image.signature is not None and signature_certificate_der is not None:
                self._image.signature.certificate_der = signature_certificate_der
            self._persist()
            self._files = self._build_files()

    # -- internals -------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            status = self._path.stat()
        except FileNotFoundError:
            return None
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _follow_file(self) -> None:
        """Pick up changes made to the card file by another process (the counter unlocking the PIN)."""
        stamp = self._stamp()
        if stamp is None:
            raise CardRemoved(f"カードが取り出されました: {self._path}")
        if stamp == self._file_stamp:
            return
        image = load_card_image(self._path)
        if image.card_id != self._image.card_id:
            self._session = _Session()  # another card was put in the reader
        self._image = image
        self._file_stamp = stamp
        self._files = self._build_files()

    def _persist(self) -> None:
        self._image.save(self._path)
        self._file_stamp = self._stamp()

    def _build_files(self) -> dict[int, _ElementaryFile]:
        image = self._image
        files: dict[int, _ElementaryFile] = {
            jpki.EF_TOKEN_INFO: _ElementaryFile(_Content.BINARY, data=jpki.TOKEN_INFO),
            jpki.EF_USER_CERTIFICATE: _ElementaryFile(_Content.BINARY, data=image.user.certificate_der),
            jpki.EF_USER_CA_CERTIFICATE: _ElementaryFile(_Content.BINARY, data=image.user.ca_certificate_der),
            jpki.EF_USER_KEY: _ElementaryFile(_Content.KEY, slot=_Slot.USER),
        }
        if image.user.secret is not None:
            files[jpki.EF_USER_PIN] = _ElementaryFile(_Content.SECRET, slot=_Slot.USER)
        if image.signature is not None:
            files[jpki.EF_SIGNATURE_CERTIFICATE] = _ElementaryFile(
                _Content.BINARY, data=image.signature.certificate_der, needs_signature_password=True
            )
            files[jpki.EF_SIGNATURE_CA_CERTIFICATE] = _ElementaryFile(
                _Content.BINARY, data=image.signature.ca_certificate_der
            )
            files[jpki.EF_SIGNATURE_KEY] = _ElementaryFile(_Content.KEY, slot=_Slot.SIGNATURE)
            files[jpki.EF_SIGNATURE_PASSWORD] = _ElementaryFile(_Content.SECRET, slot=_Slot.SIGNATURE)
        return files

    def _key_slot(self, slot: _Slot) -> KeySlot | None:
        return self._image.user if slot is _Slot.USER else self._image.signature

    def _dispatch(self, command: _Command) -> bytes:
        handlers = {
            (jpki.CLA_ISO, jpki.INS_SELECT): self._select,
            (jpki.CLA_ISO, jpki.INS_READ_BINARY): self._read_binary,
            (jpki.CLA_ISO, jpki.INS_VERIFY): self._verify,
            (jpki.CLA_PROPRIETARY, jpki.INS_COMPUTE_SIGNATURE): self._compute_signature,
        }
        handler = handlers.get((command.cla, command.ins))
        if handler is not None:
            return handler(command)
        if command.cla not in (jpki.CLA_ISO, jpki.CLA_PROPRIETARY):
            return _sw(jpki.SW_CLA_NOT_SUPPORTED)
        if any(ins == command.ins for _, ins in handlers):
            return _sw(jpki.SW_CLA_NOT_SUPPORTED)
        return _sw(jpki.SW_INS_NOT_SUPPORTED)

    def _select(self, command: _Command) -> bytes:
        if command.p2 != 0x0C:
            return _sw(jpki.SW_WRONG_P1_P2)
        if command.p1 == 0x04:
            if not command.data:
                return _sw(jpki.SW_WRONG_LENGTH)
            if command.data != jpki.JPKI_AID:
                return _sw(jpki.SW_FILE_NOT_FOUND)
            self._session = _Session(applet_selected=True)
            return _sw(jpki.SW_OK)
        if command.p1 == 0x02:
            if len(command.data) != 2:
                return _sw(jpki.SW_WRONG_LENGTH)
            fid = int.from_bytes(command.data, "big")
            if not self._session.applet_selected or fid not in self._files:
                return _sw(jpki.SW_FILE_NOT_FOUND)
            self._session.current_ef = fid
            return _sw(jpki.SW_OK)
        return _sw(jpki.SW_WRONG_P1_P2)

    def _current_file(self) -> _ElementaryFile | None:
        fid = self._session.current_ef
        return self._files.get(fid) if fid is not None else None

    def _read_binary(self, command: _Command) -> bytes:
        if command.data or command.le is None:
            return _sw(jpki.SW_WRONG_LENGTH)
        if command.p1 & 0x80:  # short EF identifier addressing is not offered by this applet
            return _sw(jpki.SW_WRONG_P1_P2)
        ef = self._current_file()
        if ef is None:
            return _sw(jpki.SW_NO_CURRENT_EF)
        if ef.content is not _Content.BINARY:
            return _sw(jpki.SW_FILE_STRUCTURE_MISMATCH)
        if ef.needs_signature_password and _Slot.SIGNATURE not in self._session.verified:
            return _sw(jpki.SW_SECURITY_STATUS_NOT_SATISFIED)
        offset = (command.p1 << 8) | command.p2
        if offset >= len(ef.data):
            return _sw(jpki.SW_OFFSET_OUT_OF_FILE)
        return ef.data[offset : offset + command.le] + _sw(jpki.SW_OK)

    def _verify(self, command: _Command) -> bytes:
        if command.p1 != 0x00 or command.p2 != 0x80:
            return _sw(jpki.SW_WRONG_P1_P2)
        if command.le is not None or len(command.data) > _MAX_SECRET_LENGTH:
            return _sw(jpki.SW_WRONG_LENGTH)
        ef = self._current_file()
        if ef is None or ef.content is not _Content.SECRET or ef.slot is None:
            return _sw(jpki.SW_NO_CURRENT_EF)
        slot = self._key_slot(ef.slot)
        if slot is None or slot.secret is None:
            return _sw(jpki.SW_FILE_NOT_FOUND)
        secret = slot.secret
        if not command.data:  # the try-counter query costs no try
            return _sw(jpki.SW_TRIES_LEFT_BASE | secret.tries_left)
        if secret.tries_left == 0:
            return _sw(jpki.SW_AUTHENTICATION_BLOCKED)
        if secret.matches(command.data):
            if secret.tries_left != secret.max_tries:
                secret.tries_left = secret.max_tries
                self._persist()
            self._session.verified.add(ef.slot)
            return _sw(jpki.SW_OK)
        secret.tries_left -= 1
        self._session.verified.discard(ef.slot)
        self._persist()
        return _sw(jpki.SW_TRIES_LEFT_BASE | secret.tries_left)

    def _compute_signature(self, command: _Command) -> bytes:
        if command.p1 != 0x00 or command.p2 != 0x80:
            return _sw(jpki.SW_WRONG_P1_P2)
        if not command.data or command.le not in (None, 256):
            return _sw(jpki.SW_WRONG_LENGTH)
        if len(command.data) > jpki.RSA_MODULUS_BYTES - 11:
            return _sw(jpki.SW_WRONG_LENGTH)
        ef = self._current_file()
        if ef is None or ef.content is not _Content.KEY or ef.slot is None:
            return _sw(jpki.SW_NO_CURRENT_EF)
        slot = self._key_slot(ef.slot)
        if slot is None or slot.secret is None or ef.slot not in self._session.verified:
            # A card without a PIN (face recognition) never lets its key sign.
            return _sw(jpki.SW_SECURITY_STATUS_NOT_SATISFIED)
        return _pkcs1_v15_sign(slot.private_key_pem, command.data) + _sw(jpki.SW_OK)


def _pkcs1_v15_sign(private_key_pem: bytes, digest_info: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 over a DigestInfo the host built: block type 01 padding, then the private-key
    operation, as the card's chip does it (RFC 8017 §8.2.1, EMSA-PKCS1-v1_5 from step 3)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CardFileError("カードの鍵が RSA ではありません")
    size = key.key_size // 8
    padded = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    numbers = key.private_numbers()
    message = int.from_bytes(padded, "big")
    # Chinese remainder theorem form of m^d mod n.
    m1 = pow(message, numbers.dmp1, numbers.p)
    m2 = pow(message, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (m1 - m2)) % numbers.p
    signature = m2 + h * numbers.q
    return signature.to_bytes(size, "big")


def validate_user_pin(pin: str) -> None:
    """The user-authentication PIN is exactly 4 digits; raises ValueError otherwise."""
    if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
        raise ValueError("利用者証明用暗証番号は数字4桁です")


def validate_signature_password(password: str) -> None:
    """The signature password is 6-16 characters of A-Z and 0-9; raises ValueError otherwise."""
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    if not 6 <= len(password) <= _MAX_SECRET_LENGTH or not set(password) <= allowed:
        raise ValueError("署名用電子証明書の暗証番号は英大文字と数字の6〜16文字です")


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(value: Any) -> bytes:
    return base64.b64decode(str(value), validate=True)
