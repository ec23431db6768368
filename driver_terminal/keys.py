"""The terminal's own Ed25519 key: where it lives, how it is kept private, and the client assertion.

The key is made once, on the device, and never leaves it: the API only ever sees the public half (at
enrolment) and short-lived assertions signed with the private half (to get an access token).
"""

from __future__ import annotations

import base64
import os
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEFAULT_DATA_DIR: Final = "var/terminal"
DATA_DIR_ENV: Final = "TERMINAL_DATA_DIR"
KEY_FILENAME: Final = "terminal_ed25519.pem"
ASSERTION_AUDIENCE: Final = "voucher-api/terminal-token"
ASSERTION_ALGORITHM: Final = "EdDSA"
ASSERTION_LIFETIME: Final = timedelta(seconds=60)


class TerminalKeyError(Exception):
    """Base of the key problems; `str()` is a Japanese sentence for the person at the terminal."""


class KeyMissing(TerminalKeyError):
    """The data directory has no terminal key (the terminal was never enrolled here)."""


class KeyExists(TerminalKeyError):
    """A key is already there; it is never silently replaced."""


class KeyUnprotected(TerminalKeyError):
    """The key file is readable by other users of the device; it is refused until fixed."""


class KeyUnreadable(TerminalKeyError):
    """The key file is not an Ed25519 private key in PEM."""


def data_dir_from(option: str | Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The terminal's data directory: the option, else $TERMINAL_DATA_DIR, else var/terminal."""
    if option:
        return Path(option)
    environment = os.environ if env is None else env
    return Path(environment.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def ensure_data_dir(data_dir: Path) -> Path:
    """Create the data directory (owner-only) if needed and return it."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return data_dir


@dataclass(frozen=True)
class TerminalKey:
    """The device's private key, with what the API needs from it."""

    private_key: Ed25519PrivateKey

    def public_key_b64(self) -> str:
        """The raw 32-byte public key, base64url without padding (the enrolment format)."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def assertion(self, terminal_id: int, now: datetime, *, jti: str | None = None) -> str:
        """A client assertion JWT (alg EdDSA) valid for 60 s from `now`, for POST /auth/terminal-token.

        Raises ValueError for a naive `now` (the claims would depend on the device's time zone).
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        subject = f"terminal:{terminal_id}"
        issued = int(now.timestamp())
        claims = {
            "iss": subject,
            "sub": subject,
            "aud": ASSERTION_AUDIENCE,
            "iat": issued,
            "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
            "jti": jti or uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm=ASSERTION_ALGORITHM)


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILENAME


def generate_key(data_dir: Path) -> TerminalKey:
    """Make a new key and write it owner-only (0600). Raises KeyExists rather than replace one."""
    ensure_data_dir(data_dir)
    path = key_path(data_dir)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        # O_EXCL: two processes enrolling at once cannot both write a key; 0600 from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise KeyExists(f"端末の鍵はすでにあります: {path}") from error
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return TerminalKey(key)


def load_key(data_dir: Path) -> TerminalKey:
    """Read the key. Raises KeyMissing, KeyUnprotected (group/other may read it), KeyUnreadable."""
    path = key_path(data_dir)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as error:
        raise KeyMissing(f"端末の鍵がありません: {path}（先に端末を登録してください）") from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnprotected(
            f"端末の鍵が他の利用者から読める状態です: {path}"
            "（chmod 600 で本人だけが読めるようにしてください）"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as error:
        raise KeyUnreadable(f"端末の鍵を読み取れません: {path}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyUnreadable(f"端末の鍵が Ed25519 ではありません: {path}")
    return TerminalKey(key)


def load_or_generate_key(data_dir: Path) -> TerminalKey:
    """The existing key, or a new one when there is none yet (errors as load_key)."""
    try:
        return load_key(data_dir)
    except KeyMissing:
        return generate_key(data_dir)
