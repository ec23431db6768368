"""Command APDUs of DESIGN §5, built by hand so the card tests do not lean on the driver."""

from __future__ import annotations

import hashlib

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SHA256_DIGEST_INFO_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")


def select_ef(fid: int) -> bytes:
    return bytes([0x00, 0xA4, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big")


def read_binary(offset: int, le: int) -> bytes:
    return bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, le % 256])


def verify(secret: str | None) -> bytes:
    if secret is None:
        return bytes([0x00, 0x20, 0x00, 0x80])
    data = secret.encode("ascii")
    return bytes([0x00, 0x20, 0x00, 0x80, len(data)]) + data


def compute_signature(data: bytes) -> bytes:
    return bytes([0x80, 0x2A, 0x00, 0x80, len(data)]) + data + b"\x00"


def digest_info(message: bytes) -> bytes:
    return SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


def sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")
