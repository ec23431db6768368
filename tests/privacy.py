"""Detecting what must never be kept: the 12-digit individual number (My Number) and card secrets.

Used by the suite's guards (tests/conftest.py): every test's database work is scanned before its
transaction is rolled back (DatabaseWatch), the logs and the committed databases at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Connection, Engine, Enum, LargeBinary, String, Table, event, inspect, text

# Twelve digits standing as their own token, written plainly or grouped 4-4-4 with one separator used
# throughout (spaces or hyphens), in half- or full-width. Digits inside a longer alphanumeric token (a hex
# fingerprint, a nonce) are not a number anyone wrote down, so they are not flagged; nor are the digit
# groups of a UUID (an Idempotency-Key such as 62850876-3076-4128-9042-...), which are masked first.
_TWELVE_DIGITS = re.compile(
    r"(?<![0-9A-Za-z０-９])([0-9０-９]{4})(?P<sep>[-‐－ 　]?)([0-9０-９]{4})(?P=sep)([0-9０-９]{4})"
    r"(?![0-9A-Za-z０-９])"
)
_UUID = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b")


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
    for match in _TWELVE_DIGITS.finditer(_UUID.sub("<uuid>", text_value)):
        if is_individual_number(match.group(1) + match.group(3) + match.group(4)):
            found.append(match.group(0))
    return found


def secrets_in(text_value: str, secrets: Iterable[str]) -> list[str]:
    return [s for s in secrets if s and s in text_value]


@dataclass(frozen=True)
class SecretSet:
    """The PINs and passwords the suite types, and how each is recognised.

    `anywhere`: distinctive secrets, a hit wherever they appear; a secret of digits only (a PIN) must stand
    apart from letters, digits and base64 characters, so that a password hash or a certificate fingerprint
    that happens to contain "4739" is not a hit. `as_value`: common short PINs ("1234", "0000"), a hit only
    where they stand as a whole value: the entire field, quoted ('1234' or "1234", as in a JSON body or a
    repr), or after `=` up to `&`, a quote or the end (a form or query string). An address "1234番地" or
    an amount 1234 is not a PIN.
    """

    anywhere: tuple[str, ...]
    as_value: tuple[str, ...] = ()
    _patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = [
            (pin, re.compile(rf"(?<![0-9A-Za-z+/]){re.escape(pin)}(?![0-9A-Za-z+/])"))
            for pin in self.anywhere
            if pin.isdigit()
        ]
        patterns += [
            (pin, re.compile(rf"""["']{re.escape(pin)}["']|={re.escape(pin)}(?=["'&]|$)"""))
            for pin in self.as_value
        ]
        object.__setattr__(self, "_patterns", tuple(patterns))  # derived (the class is frozen)

    def __iter__(self) -> Iterator[str]:
        return iter(self.anywhere + self.as_value)

    def find(self, value: str) -> list[str]:
        hits = [s for s in self.anywhere if s and not s.isdigit() and s in value]
        hits += [pin for pin, pattern in self._patterns if value == pin or pattern.search(value)]
        return hits


def _suite_secrets() -> SecretSet:
    from tests import factories
    from voucher_api import demo

    distinctive = (
        factories.CARD_PIN,  # "4739": every API test's card, the driver terminal's fakes
        factories.CARD_PASSWORD,
        factories.PASSWORD,  # staff sign-in
        demo.DEMO_CARD_PASSWORD,
        demo.DEMO_STAFF_PASSWORD,
        "OBANA2025",  # tests/unit/auth_mock/conftest.py PASSWORD
        "BENCH2026",  # bench/identity, bench/rides: card passwords
        "WRONG123",  # wrong signature passwords the tests type (tests/api/test_bridge.py, e2e)
        "WRONG1",
    )
    common = (
        demo.DEMO_CARD_PIN,  # "1234", also tests/unit/auth_mock/conftest.py PIN and bench/rides
        "2580",  # bench/identity PIN; the PIN the bridge and e2e tests reset to
        "8642",  # tests/unit/auth_mock/test_cli.py reset PIN
        "4321",  # tests/unit/auth_mock/test_card.py reset PIN
        "0000",  # the wrong PIN tests type
        "1111",  # the wrong PIN when CARD_PIN is 0000
    )
    return SecretSet(
        anywhere=tuple(dict.fromkeys(distinctive)),
        as_value=tuple(p for p in dict.fromkeys(common) if p not in distinctive),
    )


SUITE_SECRETS = _suite_secrets()


def findings_in(value: str, secrets: SecretSet | Iterable[str], where: str) -> list[str]:
    """'where: ...' lines for each individual number or secret in `value`."""
    found = [
        f"{where}: a 12-digit number passing the My Number check: {hit}"
        for hit in individual_numbers_in(value)
    ]
    hits = secrets.find(value) if isinstance(secrets, SecretSet) else secrets_in(value, secrets)
    found += [f"{where}: a card secret: {hit}" for hit in hits]
    return found


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else str(value)


def _project_tables() -> dict[str, Table]:
    from voucher_api import models  # noqa: F401 -- every model registers its table
    from voucher_api.db import Base

    return dict(Base.metadata.tables)


def _text_columns(table: Table) -> list[str]:
    """Columns that can hold text someone typed: strings (not enums), JSON, binary."""
    return [
        column.name
        for column in table.columns
        if isinstance(column.type, (String, JSON, LargeBinary)) and not isinstance(column.type, Enum)
    ]


_TEXT_COLUMNS: dict[str, list[str]] = {}


def scan_tables(
    conn: Connection, tables: Iterable[str], secrets: SecretSet | Iterable[str] = SUITE_SECRETS
) -> list[str]:
    """Scan the text, JSON and binary columns of the project's `tables` through `conn` (which may be
    inside an uncommitted transaction); returns 'table.column: finding' lines."""
    project = _project_tables()
    findings: list[str] = []
    for name in sorted(set(tables)):
        table = project.get(name)
        if table is None:
            continue
        columns = _TEXT_COLUMNS.get(name)
        if columns is None:
            columns = _TEXT_COLUMNS[name] = _text_columns(table)
        if not columns:
            continue
        listed = ", ".join(f'"{c}"' for c in columns)
        for row in conn.execute(text(f'SELECT {listed} FROM "{name}"')):  # names from the metadata
            for column, value in zip(columns, row, strict=True):
                as_text = _as_text(value)
                if as_text:
                    findings += findings_in(as_text, secrets, f"{name}.{column}")
    return findings


def scan_database(engine: Engine, secrets: SecretSet | Iterable[str] = SUITE_SECRETS) -> list[str]:
    """Every project table of a committed database; returns 'table.column: finding' lines."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        return scan_tables(conn, present & set(_project_tables()), secrets)


# INSERT INTO t / INSERT OR REPLACE INTO t / UPDATE t / REPLACE INTO t, anywhere in a statement (a CTE may
# hold one). Names that are not project tables ("SET" of ON CONFLICT DO UPDATE SET) are ignored.
_WRITES = re.compile(
    r'\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE)\s+(?:ONLY\s+)?"?(\w+)"?', re.I
)


class DatabaseWatch:
    """Records which project tables a connection writes to, so a test's data can be scanned cheaply
    before its transaction is rolled back. Attach it before the test runs (`DatabaseWatch.attach`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tables: set[str] = set()
        self._known = set(_project_tables())

    @classmethod
    def attach(cls, conn: Connection) -> DatabaseWatch:
        watch = cls(conn)
        event.listen(conn, "before_cursor_execute", watch._record)
        conn.info["privacy_watch"] = watch
        return watch

    def _record(
        self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if statement.lstrip()[:6].upper() in ("SELECT", "SAVEPO", "RELEAS", "ROLLBA", "PRAGMA"):
            return
        for name in _WRITES.findall(statement):
            if name.lower() in self._known:
                self.tables.add(name.lower())

    def findings(self, secrets: SecretSet | Iterable[str] = SUITE_SECRETS) -> list[str]:
        """The scan of every table written so far (nothing to do when nothing was written)."""
        if not self.tables:
            return []
        return scan_tables(self.conn, self.tables, secrets)


def describe(findings: Sequence[str], limit: int = 20) -> str:
    return "PRIVACY GUARD: the database holds what must never be kept:\n" + "\n".join(findings[:limit])
