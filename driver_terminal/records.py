"""Records a terminal makes while it cannot reach the API, in the exact form the API's sync expects.

Each record is signed by the terminal's own Ed25519 key over the canonical JSON of the record without its
signature (sorted keys, no spaces, UTF-8), so the server can tell that this device made it and that nothing
changed on the way. An offline boarding with the PIN carries the card's own signature over a nonce the
terminal drew, bound to the terminal and the record's sequence number.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from driver_terminal.keys import TerminalKey

OFFLINE_PURPOSE: Final = b"board-offline"
NONCE_BYTES: Final = 32


def canonical_json(value: Any) -> bytes:
    """The bytes that are signed: sorted keys, no spaces, UTF-8 (the API's own definition)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding. Raises ValueError for anything else."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error


def new_nonce() -> bytes:
    """32 random bytes drawn by the terminal for an offline card signature."""
    return secrets.token_bytes(NONCE_BYTES)


def offline_board_message(nonce: bytes, terminal_id: int, sequence: int) -> bytes:
    """What the card signs for an offline boarding: the nonce, the purpose, and this terminal's record."""
    return nonce + OFFLINE_PURPOSE + b"\x00" + f"terminal:{terminal_id}:seq:{sequence}".encode("ascii")


def _stamp(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return instant.astimezone(UTC).isoformat()


def sign_record(key: TerminalKey, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with its `record_signature` (Ed25519 over the canonical JSON of everything else)."""
    unsigned = {name: value for name, value in record.items() if name != "record_signature"}
    signature = key.private_key.sign(canonical_json(unsigned))
    return {**unsigned, "record_signature": b64url(signature)}


def board_record(
    key: TerminalKey,
    *,
    sequence: int,
    idempotency_key: str,
    recorded_at: datetime,
    card: Mapping[str, Any],
    driver_code: str | None,
    trip_ref: str | None,
) -> dict[str, Any]:
    """A signed offline boarding. `card` is the API's card object (certificate, chain, nonce, signature);
    a null signature is a PIN-less tap."""
    return sign_record(
        key,
        {
            "kind": "board",
            "sequence": sequence,
            "idempotency_key": idempotency_key,
            "recorded_at": _stamp(recorded_at),
            "card": {
                "certificate": card["certificate"],
                "chain": list(card.get("chain") or []),
                "nonce": card.get("nonce"),
                "signature": card.get("signature"),
            },
            "driver_code": driver_code or None,
            "trip_ref": trip_ref or None,
        },
    )


def fare_record(
    key: TerminalKey,
    *,
    sequence: int,
    idempotency_key: str,
    recorded_at: datetime,
    board_sequence: int,
    meter_fare: int,
) -> dict[str, Any]:
    """A signed meter fare for the boarding numbered `board_sequence` (online or offline)."""
    return sign_record(
        key,
        {
            "kind": "fare",
            "sequence": sequence,
            "idempotency_key": idempotency_key,
            "recorded_at": _stamp(recorded_at),
            "board_sequence": board_sequence,
            "meter_fare": meter_fare,
        },
    )


def void_record(
    key: TerminalKey,
    *,
    sequence: int,
    idempotency_key: str,
    recorded_at: datetime,
    board_sequence: int,
    reason: str,
) -> dict[str, Any]:
    """A signed cancellation of the boarding numbered `board_sequence`."""
    return sign_record(
        key,
        {
            "kind": "void",
            "sequence": sequence,
            "idempotency_key": idempotency_key,
            "recorded_at": _stamp(recorded_at),
            "board_sequence": board_sequence,
            "reason": reason,
        },
    )
