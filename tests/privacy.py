"""Detecting what must never be kept: the 12-digit individual number (My Number) and card secrets."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Engine, inspect, text

# Twelve digits standing as their own token, written plainly or grouped 4-4-4 (spaces or hyphens), in
# half- or full-width. Digits inside a longer alphanumeric token (a hex fingerprint, a nonce) are not a
# number anyone wrote down, so they are not flagged.
_SEP = "[-‐－ 　]?"
_TWELVE_DIGITS = re.compile(
    rf"(?<![0-9A-Za-z０-９])([0-9０-９]{{4}}){_SEP}([0-9０-９]{{4}}){_SEP}([0-9０-９]{{4}})(?![0-9A-Za-z０-９])"
)


def is_individual_number(digits: str) -> bool:
    """True when 12 digits pass the My Number check digit (個人番号の検査用数字)."""
    digits = digits.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if len(digits) != 12 or not digits.isdigit():
        return False
    body = [int(c) for c in digits[:11]]
    total = 0
    for n in range(1, 12):  # n counts from the right of the 11 digits
        p = body[11 - n]
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    remainder = total % 11
    check = 0 if remainder <= 1 else 11 - remainder
    return check == int(digits[11])


def individual_numbers_in(text_value: str) -> list[str]:
    found = []
    for match in _TWELVE_DIGITS.finditer(text_value):
        if is_individual_number("".join(match.groups())):
            found.append(match.group(0))
    return found


def secrets_in(text_value: str, secrets: Iterable[str]) -> list[str]:
    return [s for s in secrets if s and s in text_value]


def scan_database(engine: Engine, secrets: Iterable[str]) -> list[str]:
    """Every row of every table as text; returns 'table: finding' lines."""
    secrets = list(secrets)
    findings: list[str] = []
    names = inspect(engine).get_table_names()
    with engine.connect() as conn:
        for table in names:
            if table == "alembic_version":
                continue
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump = " ".join("" if v is None else str(v) for v in row)
                for hit in individual_numbers_in(dump):
                    findings.append(f"{table}: a 12-digit number passing the My Number check: {hit}")
                for hit in secrets_in(dump, secrets):
                    findings.append(f"{table}: a card secret: {hit}")
    return findings
