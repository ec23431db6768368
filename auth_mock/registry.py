"""The mock resident registry (住民基本台帳) and its change feed.

A city's real registry is a system the voucher project does not own; this module stands in for it.
It generates a population for a city that is stable by seed (households, names in kanji and kana,
addresses in the city's districts, birth dates, car licences, disability certificates), keeps it in
a SQLite file that several processes may share, and records moves, deaths, licence returns and name
changes as an ordered feed that the API follows with a cursor.

The registry never holds an individual number (My Number): registry ids are opaque keys of the form
``062120-0001234`` and every text that would contain twelve digits in a row is refused.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

from auth_mock.names import (
    FAMILY_NAMES,
    GIVEN_NAME_GENERATIONS,
    OBANAZAWA,
    CityLayout,
    District,
    kanji_numeral,
)

# The date the demo programs are judged at (start of fiscal year 2026); generated ages are set so
# that the demo city's program sizes come out right on this date.
REFERENCE_DATE = date(2026, 4, 1)

SCHEMA_VERSION = "1"

SEXES = ("male", "female")
CAR_LICENCES = ("none", "held", "returned")
STATUSES = ("resident", "moved_out", "deceased")
DISABILITY_GRADES: Mapping[str, tuple[str, ...]] = {
    "physical": ("1", "2", "3", "4", "5", "6"),
    "intellectual": ("A", "B"),
    "mental": ("1", "2", "3"),
}
CHANGE_KINDS = ("moved_within", "moved_out", "moved_in", "died", "licence_returned", "name_changed")

# Districts of the model city as (code, name, kana).
DISTRICTS: tuple[tuple[str, str, str], ...] = tuple((d.code, d.name, d.kana) for d in OBANAZAWA.districts)
BUS_ABOLISHED_DISTRICTS = ("03", "05")

_REGISTRY_ID = re.compile(r"^(\d{6})-(\d{7})$")
_MUNICIPALITY_CODE = re.compile(r"^\d{6}$")
_TWELVE_DIGITS = re.compile(r"\d{12}")
_KATAKANA = re.compile(r"^[\u30a1-\u30f6\u30fc]+$")
_MAX_PAGE = 5000


class RegistryError(Exception):
    """A registry operation was refused; the message is meant for staff (Japanese)."""


class PersonNotFound(RegistryError, LookupError):
    """No person with the given registry id."""


class InvalidChange(RegistryError, ValueError):
    """A change does not fit the person's record or carries bad fields."""


@dataclass(frozen=True)
class DisabilityCertificate:
    kind: str  # "physical" | "intellectual" | "mental"
    grade: str  # physical: "1".."6"; intellectual: "A" | "B"; mental: "1".."3"

    def __post_init__(self) -> None:
        grades = DISABILITY_GRADES.get(self.kind)
        if grades is None:
            raise ValueError(f"障害者手帳の種類が不正です: {self.kind!r}")
        if self.grade not in grades:
            raise ValueError(f"{self.kind} の等級が不正です: {self.grade!r}")


@dataclass(frozen=True)
class RegistryPerson:
    registry_id: str
    municipality_code: str
    household_id: str
    family_name: str
    given_name: str
    family_name_kana: str
    given_name_kana: str
    sex: str
    birth_date: date
    address: str
    district_code: str
    car_licence: str
    licence_returned_on: date | None
    disability_certificates: tuple[DisabilityCertificate, ...]
    status: str
    status_since: date | None

    def age_on(self, d: date) -> int:
        """Age in completed years on ``d``; the age goes up on the birthday (29 Feb: on 1 Mar)."""
        before_birthday = (d.month, d.day) < (self.birth_date.month, self.birth_date.day)
        return d.year - self.birth_date.year - int(before_birthday)

    @property
    def full_name(self) -> str:
        return f"{self.family_name} {self.given_name}"

    @property
    def full_name_kana(self) -> str:
        return f"{self.family_name_kana} {self.given_name_kana}"


@dataclass(frozen=True)
class RegistryChange:
    seq: int
    kind: str
    registry_id: str
    effective_on: date
    person: RegistryPerson


# --- JSON shape shared with the API side -------------------------------------------------------


def person_to_json(p: RegistryPerson) -> dict[str, object]:
    """Return ``p`` as a JSON-ready dict: dataclass field names, dates as ISO strings."""
    return {
        "registry_id": p.registry_id,
        "municipality_code": p.municipality_code,
        "household_id": p.household_id,
        "family_name": p.family_name,
        "given_name": p.given_name,
        "family_name_kana": p.family_name_kana,
        "given_name_kana": p.given_name_kana,
        "sex": p.sex,
        "birth_date": p.birth_date.isoformat(),
        "address": p.address,
        "district_code": p.district_code,
        "car_licence": p.car_licence,
        "licence_returned_on": _iso_or_none(p.licence_returned_on),
        "disability_certificates": [{"kind": c.kind, "grade": c.grade} for c in p.disability_certificates],
        "status": p.status,
        "status_since": _iso_or_none(p.status_since),
    }


def person_from_json(d: Mapping[str, object]) -> RegistryPerson:
    """Parse the shape written by :func:`person_to_json`.

    Raises ValueError when a field is missing, has the wrong type or a value outside its set.
    """
    certificates_raw = d.get("disability_certificates")
    if not isinstance(certificates_raw, list):
        raise ValueError("disability_certificates must be a list")
    certificates: list[DisabilityCertificate] = []
    for item in certificates_raw:
        if not isinstance(item, Mapping):
            raise ValueError("each disability certificate must be an object")
        certificates.append(
            DisabilityCertificate(kind=_json_str(item, "kind"), grade=_json_str(item, "grade"))
        )
    person = RegistryPerson(
        registry_id=_json_str(d, "registry_id"),
        municipality_code=_json_str(d, "municipality_code"),
        household_id=_json_str(d, "household_id"),
        family_name=_json_str(d, "family_name"),
        given_name=_json_str(d, "given_name"),
        family_name_kana=_json_str(d, "family_name_kana"),
        given_name_kana=_json_str(d, "given_name_kana"),
        sex=_json_str(d, "sex"),
        birth_date=_json_date(d, "birth_date"),
        address=_json_str(d, "address"),
        district_code=_json_str(d, "district_code"),
        car_licence=_json_str(d, "car_licence"),
        licence_returned_on=_json_optional_date(d, "licence_returned_on"),
        disability_certificates=tuple(certificates),
        status=_json_str(d, "status"),
        status_since=_json_optional_date(d, "status_since"),
    )
    _check_person_shape(person)
    return person


def change_to_json(c: RegistryChange) -> dict[str, object]:
    """Return a feed entry as a JSON-ready dict (the person nested in :func:`person_to_json` shape)."""
    return {
        "seq": c.seq,
        "kind": c.kind,
        "registry_id": c.registry_id,
        "effective_on": c.effective_on.isoformat(),
        "person": person_to_json(c.person),
    }


def change_from_json(d: Mapping[str, object]) -> RegistryChange:
    """Parse the shape written by :func:`change_to_json`; raises ValueError on a bad shape."""
    seq = d.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("seq must be an integer")
    kind = _json_str(d, "kind")
    if kind not in CHANGE_KINDS:
        raise ValueError(f"unknown change kind: {kind!r}")
    person = d.get("person")
    if not isinstance(person, Mapping):
        raise ValueError("person must be an object")
    return RegistryChange(
        seq=seq,
        kind=kind,
        registry_id=_json_str(d, "registry_id"),
        effective_on=_json_date(d, "effective_on"),
        person=person_from_json(person),
    )


def _iso_or_none(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def _json_str(d: Mapping[str, object], key: str) -> str:
    value = d.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _json_date(d: Mapping[str, object], key: str) -> date:
    return date.fromisoformat(_json_str(d, key))


def _json_optional_date(d: Mapping[str, object], key: str) -> date | None:
    if d.get(key) is None:
        return None
    return _json_date(d, key)


def _check_person_shape(p: RegistryPerson) -> None:
    if _REGISTRY_ID.match(p.registry_id) is None:
        raise ValueError(f"registry_id has the wrong form: {p.registry_id!r}")
    if p.sex not in SEXES:
        raise ValueError(f"unknown sex: {p.sex!r}")
    if p.car_licence not in CAR_LICENCES:
        raise ValueError(f"unknown car_licence: {p.car_licence!r}")
    if p.status not in STATUSES:
        raise ValueError(f"unknown status: {p.status!r}")


# --- Kana and the demo programs ------------------------------------------------------------------


def normalize_kana(text: str) -> str:
    """Turn staff input into the registry's kana key: full-width katakana without spaces.

    Half-width katakana and full-width spaces are folded (NFKC), hiragana becomes katakana, and all
    whitespace is dropped. Characters that are not kana are kept as they are (and so match nothing).
    """
    folded = unicodedata.normalize("NFKC", text)
    katakana = "".join(chr(ord(ch) + 0x60) if "\u3041" <= ch <= "\u3096" else ch for ch in folded)
    return "".join(katakana.split())


def _is_severe_disability(certificate: DisabilityCertificate) -> bool:
    return (
        (certificate.kind == "physical" and certificate.grade in ("1", "2"))
        or (certificate.kind == "intellectual" and certificate.grade == "A")
        or (certificate.kind == "mental" and certificate.grade == "1")
    )


def demo_program_for(person: RegistryPerson, on: date = REFERENCE_DATE) -> str | None:
    """Which of the demo city's three mutually exclusive programs ``person`` qualifies for on ``on``.

    The rules, checked in this order: ``"elderly"`` (age 75 or over and no car licence or a returned
    one), ``"disability"`` (physical grade 1-2, intellectual A or mental grade 1), ``"bus_abolished"``
    (living in district 03 or 05 and age 65 or over). Only residents qualify; returns None otherwise.
    This mirrors the demo programs for seeding and tests; the real rules are program data in the API.
    """
    if person.status != "resident":
        return None
    age = person.age_on(on)
    if age >= 75 and person.car_licence in ("none", "returned"):
        return "elderly"
    if any(_is_severe_disability(c) for c in person.disability_certificates):
        return "disability"
    if person.district_code in BUS_ABOLISHED_DISTRICTS and age >= 65:
        return "bus_abolished"
    return None


def layout_for(municipality_code: str) -> CityLayout:
    """The district and town layout used for a municipality.

    Only the model city is described; any other code reuses its layout, which is enough for the
    multi-city tests a mock has to support.
    """
    return OBANAZAWA


# --- Storage -------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS people (
    registry_id TEXT PRIMARY KEY,
    municipality_code TEXT NOT NULL,
    household_id TEXT NOT NULL,
    family_name TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name_kana TEXT NOT NULL,
    given_name_kana TEXT NOT NULL,
    kana_key TEXT NOT NULL,
    sex TEXT NOT NULL CHECK (sex IN ('male', 'female')),
    birth_date TEXT NOT NULL,
    address TEXT NOT NULL,
    district_code TEXT NOT NULL,
    car_licence TEXT NOT NULL CHECK (car_licence IN ('none', 'held', 'returned')),
    licence_returned_on TEXT,
    disability_certificates TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('resident', 'moved_out', 'deceased')),
    status_since TEXT
);
CREATE INDEX IF NOT EXISTS people_kana_key ON people (kana_key);
CREATE INDEX IF NOT EXISTS people_household ON people (household_id);
CREATE INDEX IF NOT EXISTS people_municipality ON people (municipality_code, registry_id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    registry_id TEXT NOT NULL,
    effective_on TEXT NOT NULL,
    person TEXT NOT NULL
);
"""

_PERSON_COLUMNS = (
    "registry_id, municipality_code, household_id, family_name, given_name, family_name_kana, "
    "given_name_kana, sex, birth_date, address, district_code, car_licence, licence_returned_on, "
    "disability_certificates, status, status_since"
)
_UPSERT_PERSON = (
    f"INSERT OR REPLACE INTO people ({_PERSON_COLUMNS}, kana_key) "  # noqa: S608 -- constant column list
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_PERSON = f"SELECT {_PERSON_COLUMNS} FROM people"  # noqa: S608 -- constant column list


def _person_row(p: RegistryPerson) -> tuple[str | None, ...]:
    certificates = json.dumps(
        [{"kind": c.kind, "grade": c.grade} for c in p.disability_certificates], separators=(",", ":")
    )
    return (
        p.registry_id,
        p.municipality_code,
        p.household_id,
        p.family_name,
        p.given_name,
        p.family_name_kana,
        p.given_name_kana,
        p.sex,
        p.birth_date.isoformat(),
        p.address,
        p.district_code,
        p.car_licence,
        _iso_or_none(p.licence_returned_on),
        certificates,
        p.status,
        _iso_or_none(p.status_since),
        p.family_name_kana + p.given_name_kana,
    )


def _person_from_row(row: Sequence[str | None]) -> RegistryPerson:
    def text(i: int) -> str:
        value = row[i]
        assert value is not None  # the schema declares these columns NOT NULL
        return value

    def optional_date(i: int) -> date | None:
        value = row[i]
        return None if value is None else date.fromisoformat(value)

    return RegistryPerson(
        registry_id=text(0),
        municipality_code=text(1),
        household_id=text(2),
        family_name=text(3),
        given_name=text(4),
        family_name_kana=text(5),
        given_name_kana=text(6),
        sex=text(7),
        birth_date=date.fromisoformat(text(8)),
        address=text(9),
        district_code=text(10),
        car_licence=text(11),
        licence_returned_on=optional_date(12),
        disability_certificates=tuple(
            DisabilityCertificate(kind=c["kind"], grade=c["grade"]) for c in json.loads(text(13))
        ),
        status=text(14),
        status_since=optional_date(15),
    )


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are opened explicitly (BEGIN IMMEDIATE for writes), so a
    # writer takes the lock up front instead of failing half-way when another process writes.
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class Registry:
    """The resident registry of one or more municipalities, kept in a SQLite file.

    One instance may be shared by the threads of a process (calls are serialised by a lock); several
    processes may open the same file (SQLite WAL locking). Writes are single transactions: a change is
    applied to the person and appended to the feed together, or not at all.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def generate(
        cls, path: Path, *, municipality_code: str = "062120", size: int = 14000, seed: int = 2025
    ) -> Registry:
        """Generate a municipality's population into ``path`` and return the open registry.

        The same seed and size give the same people, field for field. A file that already holds other
        municipalities gains this one; ages are set against :data:`REFERENCE_DATE`.
        Raises ValueError for a malformed municipality code or a size below 1, and RegistryError when
        the file already holds this municipality.
        """
        if _MUNICIPALITY_CODE.match(municipality_code) is None:
            raise ValueError(f"地方公共団体コードは6桁の数字です: {municipality_code!r}")
        if not 1 <= size <= 9_999_999:
            raise ValueError(f"人口は1〜9,999,999人で指定してください: {size}")
        people = PopulationGenerator(municipality_code=municipality_code, seed=seed).generate(size)
        conn = _connect(path)
        registry = cls(conn, path)
        try:
            with registry._lock:
                # executescript commits by itself, so the schema goes in before the write transaction.
                conn.executescript(_SCHEMA)
            with registry._write() as c:
                c.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
                registry._check_schema(c)
                exists = c.execute(
                    "SELECT 1 FROM people WHERE municipality_code = ? LIMIT 1", (municipality_code,)
                ).fetchone()
                if exists is not None:
                    raise RegistryError(f"この台帳には既に {municipality_code} の住民が生成されています")
                c.executemany(_UPSERT_PERSON, [_person_row(p) for p in people])
                c.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    (f"generated:{municipality_code}", json.dumps({"seed": seed, "size": size})),
                )
        except BaseException:
            registry.close()
            raise
        return registry

    @classmethod
    def open(cls, path: Path) -> Registry:
        """Open an existing registry file.

        Raises FileNotFoundError when there is no file, RegistryError when it is not a registry of
        this schema version.
        """
        if not path.is_file():
            raise FileNotFoundError(f"住民台帳ファイルがありません: {path}")
        conn = _connect(path)
        registry = cls(conn, path)
        try:
            with registry._lock:
                registry._check_schema(conn)
        except BaseException:
            registry.close()
            raise
        return registry

    def close(self) -> None:
        """Close the database connection; the registry cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _check_schema(conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"住民台帳ファイルではありません: {exc}") from exc
        if row is None or row[0] != SCHEMA_VERSION:
            raise RegistryError("住民台帳ファイルの形式が違います")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- reading ---------------------------------------------------------------------------------

    def get(self, registry_id: str) -> RegistryPerson | None:
        """The person with ``registry_id`` in any status, or None if there is none."""
        with self._lock:
            return self._get(self._conn, registry_id)

    @staticmethod
    def _get(conn: sqlite3.Connection, registry_id: str) -> RegistryPerson | None:
        row = conn.execute(f"{_SELECT_PERSON} WHERE registry_id = ?", (registry_id,)).fetchone()
        return None if row is None else _person_from_row(row)

    def list_people(
        self, *, after: str | None = None, limit: int = 100, municipality_code: str | None = None
    ) -> list[RegistryPerson]:
        """One page of people in registry_id order, starting after ``after``; any status.

        Raises ValueError when ``limit`` is not between 1 and 5000.
        """
        _check_limit(limit)
        sql = f"{_SELECT_PERSON} WHERE registry_id > ?"
        params: list[object] = [after or ""]
        if municipality_code is not None:
            sql += " AND municipality_code = ?"
            params.append(municipality_code)
        sql += " ORDER BY registry_id LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_person_from_row(r) for r in rows]

    def iter_people(self, *, municipality_code: str | None = None) -> Iterator[RegistryPerson]:
        """Every person (any status) in registry_id order, read page by page.

        No lock or transaction is held between pages, so writers are never blocked by a slow reader.
        """
        after: str | None = None
        while True:
            page = self.list_people(after=after, limit=1000, municipality_code=municipality_code)
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].registry_id

    def search(self, *, kana: str, birth_date: date | None = None, limit: int = 20) -> list[RegistryPerson]:
        """Staff look-up: people whose family+given kana starts with ``kana``.

        ``kana`` may be hiragana, half-width or full-width katakana, with or without spaces. With
        ``birth_date`` only people born on that day match. People in every status are returned (the
        status is on the record); order is kana, then birth date, then registry id.
        Raises ValueError when ``kana`` is empty after removing spaces, or ``limit`` is not 1-5000.
        """
        _check_limit(limit)
        key = normalize_kana(kana)
        if not key:
            raise ValueError("検索するカナを入力してください")
        # A range on kana_key, rather than LIKE, uses the index and treats % and _ as plain text.
        sql = f"{_SELECT_PERSON} WHERE kana_key >= ? AND kana_key < ?"
        params: list[object] = [key, key + "\U0010ffff"]
        if birth_date is not None:
            sql += " AND birth_date = ?"
            params.append(birth_date.isoformat())
        sql += " ORDER BY kana_key, birth_date, registry_id LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [_person_from_row(r) for r in rows]

    def eligible_candidates(self, limit: int, *, on: date = REFERENCE_DATE) -> list[RegistryPerson]:
        """Up to ``limit`` living residents who meet one of the demo programs' rules on ``on``.

        The rules are those of :func:`demo_program_for`; order is registry_id, so the same registry
        gives the same list. Raises ValueError for a negative limit.
        """
        if limit < 0:
            raise ValueError(f"件数が不正です: {limit}")
        found: list[RegistryPerson] = []
        if limit == 0:
            return found
        for person in self.iter_people():
            if demo_program_for(person, on) is not None:
                found.append(person)
                if len(found) >= limit:
                    break
        return found

    def changes_since(self, seq: int, limit: int = 500) -> list[RegistryChange]:
        """Feed entries with a sequence number above ``seq``, oldest first, at most ``limit``.

        Each entry carries the person as recorded right after that change. Raises ValueError when
        ``limit`` is not between 1 and 5000.
        """
        _check_limit(limit)
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, registry_id, effective_on, person FROM changes WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [
            RegistryChange(
                seq=row[0],
                kind=row[1],
                registry_id=row[2],
                effective_on=date.fromisoformat(row[3]),
                person=person_from_json(json.loads(row[4])),
            )
            for row in rows
        ]

    def municipality_codes(self) -> list[str]:
        """The municipalities this registry holds people for, in code order."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT municipality_code FROM people ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def next_registry_id(self, municipality_code: str = "062120") -> str:
        """A registry id not yet used in ``municipality_code``, for a person moving in.

        Two processes asking at once may get the same id; the second ``record_change("moved_in")``
        with it is then refused, so callers retry with a fresh id.
        """
        with self._lock:
            return self._next_registry_id(self._conn, municipality_code)

    # -- changes ---------------------------------------------------------------------------------

    def record_change(
        self, kind: str, registry_id: str, *, effective_on: date, **fields: object
    ) -> RegistryChange:
        """Apply a change to a person and append it to the feed, in one transaction.

        Kinds and their fields:
        - ``moved_within``: ``address`` and ``district_code``, optional ``household_id`` (joining that
          household; its address is taken when ``address`` is left out). Without ``household_id`` a
          person who shares a household starts a new one.
        - ``moved_out``: optional ``address`` (where they went). ``died``: no fields.
        - ``moved_in``: a person who moved out comes back (``address``, ``district_code``, optional
          ``household_id``), or a new person with an unused id (see :meth:`next_registry_id`) and
          ``family_name``, ``given_name``, ``family_name_kana``, ``given_name_kana``, ``sex``,
          ``birth_date``, ``address``, ``district_code``, optional ``household_id``, ``car_licence``,
          ``licence_returned_on``, ``disability_certificates``.
        - ``licence_returned``: no fields; the person must hold a licence.
        - ``name_changed``: ``family_name`` with ``family_name_kana`` and/or ``given_name`` with
          ``given_name_kana`` (kana may be given in hiragana).
        Raises PersonNotFound for an unknown id (other than a new ``moved_in``) and InvalidChange for an
        unknown kind, unknown or bad fields, a change that does not fit the person's status, an
        effective date before the birth date or the last status change, or any text holding twelve
        digits in a row.
        """
        with self._write() as conn:
            return self._apply_change(conn, kind, registry_id, effective_on, dict(fields))

    def _apply_change(
        self,
        conn: sqlite3.Connection,
        kind: str,
        registry_id: str,
        effective_on: object,
        fields: dict[str, object],
    ) -> RegistryChange:
        if kind not in CHANGE_KINDS:
            raise InvalidChange(f"異動の種類が不正です: {kind!r}")
        if type(effective_on) is not date:  # a datetime is a date too, but not a day
            raise InvalidChange("異動日は日付 (date) で指定してください")
        for name, value in fields.items():
            if isinstance(value, str) and _TWELVE_DIGITS.search(unicodedata.normalize("NFKC", value)):
                raise InvalidChange(f"12桁の数字は住民台帳に記録できません: {name}")
        allowed = _ALLOWED_FIELDS[kind]
        unknown = sorted(set(fields) - allowed)
        if unknown:
            raise InvalidChange(f"{kind} に指定できない項目です: {', '.join(unknown)}")

        current = self._get(conn, registry_id)
        if current is None:
            if kind != "moved_in":
                raise PersonNotFound(f"住民が見つかりません: {registry_id}")
            updated = self._new_person(conn, registry_id, effective_on, fields)
        else:
            _check_effective_date(current, effective_on)
            updated = self._changed_person(conn, kind, current, effective_on, fields)

        conn.execute(_UPSERT_PERSON, _person_row(updated))
        cursor = conn.execute(
            "INSERT INTO changes (kind, registry_id, effective_on, person) VALUES (?, ?, ?, ?)",
            (
                kind,
                registry_id,
                effective_on.isoformat(),
                json.dumps(person_to_json(updated), ensure_ascii=False, separators=(",", ":")),
            ),
        )
        seq = cursor.lastrowid
        assert seq is not None  # an INSERT into a rowid table always sets it
        return RegistryChange(
            seq=seq, kind=kind, registry_id=registry_id, effective_on=effective_on, person=updated
        )

    def _changed_person(
        self,
        conn: sqlite3.Connection,
        kind: str,
        current: RegistryPerson,
        effective_on: date,
        fields: dict[str, object],
    ) -> RegistryPerson:
        if kind == "moved_in":
            if current.status != "moved_out":
                raise InvalidChange(
                    f"転入できるのは転出した住民だけです (現在: {_STATUS_JA[current.status]})"
                )
            household_id, address, district_code = self._destination(conn, current, fields)
            return replace(
                current,
                household_id=household_id,
                address=address,
                district_code=district_code,
                status="resident",
                status_since=effective_on,
            )
        if current.status != "resident":
            raise InvalidChange(f"この住民は{_STATUS_JA[current.status]}のため異動を記録できません")
        if kind == "moved_within":
            household_id, address, district_code = self._destination(conn, current, fields)
            return replace(current, household_id=household_id, address=address, district_code=district_code)
        if kind == "moved_out":
            address = _optional_text(fields, "address") or current.address
            return replace(current, address=address, status="moved_out", status_since=effective_on)
        if kind == "died":
            return replace(current, status="deceased", status_since=effective_on)
        if kind == "licence_returned":
            if current.car_licence != "held":
                raise InvalidChange("運転免許を保有していない住民は免許返納を記録できません")
            return replace(current, car_licence="returned", licence_returned_on=effective_on)
        # name_changed
        if not fields:
            raise InvalidChange("変更後の氏名を指定してください")
        family_name, family_kana = _name_pair(
            fields, "family_name", current.family_name, current.family_name_kana
        )
        given_name, given_kana = _name_pair(fields, "given_name", current.given_name, current.given_name_kana)
        return replace(
            current,
            family_name=family_name,
            family_name_kana=family_kana,
            given_name=given_name,
            given_name_kana=given_kana,
        )

    def _destination(
        self, conn: sqlite3.Connection, current: RegistryPerson, fields: dict[str, object]
    ) -> tuple[str, str, str]:
        """Household, address and district a person moves to, from the change's fields."""
        household_id = _optional_text(fields, "household_id")
        address = _optional_text(fields, "address")
        district_code = _optional_text(fields, "district_code")
        if household_id is not None:
            if not household_id.startswith(f"{current.municipality_code}-H"):
                raise InvalidChange(f"世帯番号の形式が不正です: {household_id}")
            if address is None or district_code is None:
                row = conn.execute(
                    "SELECT address, district_code FROM people WHERE household_id = ? "
                    "AND status = 'resident' AND registry_id <> ? ORDER BY registry_id LIMIT 1",
                    (household_id, current.registry_id),
                ).fetchone()
                if row is None:
                    raise InvalidChange("新しい世帯に移る場合は住所と地区コードを指定してください")
                address = address or row[0]
                district_code = district_code or row[1]
        elif address is None or district_code is None:
            raise InvalidChange("住所 (address) と地区コード (district_code) を指定してください")
        else:
            others = conn.execute(
                "SELECT 1 FROM people WHERE household_id = ? AND status = 'resident' "
                "AND registry_id <> ? LIMIT 1",
                (current.household_id, current.registry_id),
            ).fetchone()
            household_id = (
                current.household_id
                if others is None and current.status == "resident"
                else self._next_household_id(conn, current.municipality_code)
            )
        assert address is not None
        assert district_code is not None
        _check_district(current.municipality_code, district_code)
        return household_id, address, district_code

    def _new_person(
        self, conn: sqlite3.Connection, registry_id: str, effective_on: date, fields: dict[str, object]
    ) -> RegistryPerson:
        match = _REGISTRY_ID.match(registry_id)
        if match is None:
            raise InvalidChange(f"住民番号の形式が不正です (例: 062120-0001234): {registry_id!r}")
        municipality_code = match.group(1)
        missing = sorted(_NEW_PERSON_REQUIRED - set(fields))
        if missing:
            raise InvalidChange(f"新しい住民の転入に必要な項目がありません: {', '.join(missing)}")
        family_name, family_kana = _name_pair(fields, "family_name", "", "")
        given_name, given_kana = _name_pair(fields, "given_name", "", "")
        sex = _required_text(fields, "sex")
        if sex not in SEXES:
            raise InvalidChange(f"性別が不正です: {sex!r}")
        birth_date = fields["birth_date"]
        if type(birth_date) is not date:
            raise InvalidChange("生年月日は日付 (date) で指定してください")
        car_licence = _optional_text(fields, "car_licence") or "none"
        if car_licence not in CAR_LICENCES:
            raise InvalidChange(f"運転免許の区分が不正です: {car_licence!r}")
        licence_returned_on = fields.get("licence_returned_on")
        if licence_returned_on is not None and type(licence_returned_on) is not date:
            raise InvalidChange("免許返納日は日付 (date) で指定してください")
        if (car_licence == "returned") != (licence_returned_on is not None):
            raise InvalidChange("免許返納日は返納済みの場合だけ指定してください")
        certificates = _certificates_field(fields.get("disability_certificates", ()))
        district_code = _required_text(fields, "district_code")
        _check_district(municipality_code, district_code)
        household_id = _optional_text(fields, "household_id") or self._next_household_id(
            conn, municipality_code
        )
        if not household_id.startswith(f"{municipality_code}-H"):
            raise InvalidChange(f"世帯番号の形式が不正です: {household_id}")
        person = RegistryPerson(
            registry_id=registry_id,
            municipality_code=municipality_code,
            household_id=household_id,
            family_name=family_name,
            given_name=given_name,
            family_name_kana=family_kana,
            given_name_kana=given_kana,
            sex=sex,
            birth_date=birth_date,
            address=_required_text(fields, "address"),
            district_code=district_code,
            car_licence=car_licence,
            licence_returned_on=licence_returned_on,
            disability_certificates=certificates,
            status="resident",
            status_since=effective_on,
        )
        _check_effective_date(person, effective_on)
        return person

    @staticmethod
    def _next_registry_id(conn: sqlite3.Connection, municipality_code: str) -> str:
        row = conn.execute(
            "SELECT MAX(registry_id) FROM people WHERE municipality_code = ?", (municipality_code,)
        ).fetchone()
        last = 0 if row is None or row[0] is None else int(row[0].split("-")[1])
        return f"{municipality_code}-{last + 1:07d}"

    @staticmethod
    def _next_household_id(conn: sqlite3.Connection, municipality_code: str) -> str:
        row = conn.execute(
            "SELECT MAX(household_id) FROM people WHERE municipality_code = ?", (municipality_code,)
        ).fetchone()
        last = 0 if row is None or row[0] is None else int(row[0].rsplit("H", 1)[1])
        return f"{municipality_code}-H{last + 1:06d}"

    # -- demo churn ------------------------------------------------------------------------------

    def simulate_changes(
        self, *, count: int, seed: int, start: date, end: date, municipality_code: str | None = None
    ) -> list[RegistryChange]:
        """Record ``count`` realistic changes dated between ``start`` and ``end`` (inclusive).

        The mix follows a small ageing town: deaths (mostly among the very old), young people moving
        out, families moving in, moves within the city (young adults leaving home, old people moving
        in with family), licence returns among drivers over 70, and name changes at marriage. Dates
        are spread over the period and the feed is in date order. Given the same registry state and
        seed the same changes are made. All are written in one transaction.
        Raises ValueError for a negative count or ``end`` before ``start``, RegistryError when there
        are no residents to change.
        """
        if count < 0:
            raise ValueError(f"件数が不正です: {count}")
        if end < start:
            raise ValueError("終了日が開始日より前です")
        if count == 0:
            return []
        with self._write() as conn:
            sql = f"{_SELECT_PERSON} WHERE status = 'resident'"
            params: list[object] = []
            if municipality_code is not None:
                sql += " AND municipality_code = ?"
                params.append(municipality_code)
            residents = [_person_from_row(r) for r in conn.execute(sql + " ORDER BY registry_id", params)]
            if not residents:
                raise RegistryError("異動させる住民がいません")
            used_addresses = {r[0] for r in conn.execute("SELECT DISTINCT address FROM people")}
            churn = _Churn(self, conn, residents, used_addresses, random.Random(seed), start)
            rng = churn.rng
            span = (end - start).days
            dates = sorted(start + timedelta(days=rng.randint(0, span)) for _ in range(count))
            return [churn.one_change(d) for d in dates]


_ALLOWED_FIELDS: Mapping[str, frozenset[str]] = {
    "moved_within": frozenset({"address", "district_code", "household_id"}),
    "moved_out": frozenset({"address"}),
    "moved_in": frozenset(
        {
            "address",
            "district_code",
            "household_id",
            "family_name",
            "given_name",
            "family_name_kana",
            "given_name_kana",
            "sex",
            "birth_date",
            "car_licence",
            "licence_returned_on",
            "disability_certificates",
        }
    ),
    "died": frozenset(),
    "licence_returned": frozenset(),
    "name_changed": frozenset({"family_name", "given_name", "family_name_kana", "given_name_kana"}),
}
_NEW_PERSON_REQUIRED = frozenset(
    {
        "family_name",
        "given_name",
        "family_name_kana",
        "given_name_kana",
        "sex",
        "birth_date",
        "address",
        "district_code",
    }
)
_STATUS_JA = {"resident": "住民", "moved_out": "転出済み", "deceased": "死亡"}


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= _MAX_PAGE:
        raise ValueError(f"件数は1〜{_MAX_PAGE}で指定してください: {limit}")


def _check_effective_date(person: RegistryPerson, effective_on: date) -> None:
    if effective_on < person.birth_date:
        raise InvalidChange("異動日が生年月日より前です")
    if person.status_since is not None and effective_on < person.status_since:
        raise InvalidChange("異動日が前回の異動日より前です")


def _check_district(municipality_code: str, district_code: str) -> None:
    if layout_for(municipality_code).district(district_code) is None:
        raise InvalidChange(f"地区コードが不正です: {district_code!r}")


def _optional_text(fields: Mapping[str, object], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidChange(f"{name} は空でない文字列で指定してください")
    return value.strip()


def _required_text(fields: Mapping[str, object], name: str) -> str:
    value = _optional_text(fields, name)
    if value is None:
        raise InvalidChange(f"{name} を指定してください")
    return value


def _name_pair(fields: Mapping[str, object], name: str, kanji: str, kana: str) -> tuple[str, str]:
    """The kanji and kana of one name part; both change together or not at all."""
    new_kanji = _optional_text(fields, name)
    new_kana_raw = _optional_text(fields, f"{name}_kana")
    if new_kanji is None and new_kana_raw is None:
        return kanji, kana
    if new_kanji is None or new_kana_raw is None:
        raise InvalidChange(f"{name} と {name}_kana は一緒に指定してください")
    if any(ch.isspace() for ch in new_kanji):
        raise InvalidChange(f"{name} に空白は使えません")
    new_kana = normalize_kana(new_kana_raw)
    if _KATAKANA.match(new_kana) is None:
        raise InvalidChange(f"{name}_kana はカタカナで指定してください: {new_kana_raw!r}")
    return new_kanji, new_kana


def _certificates_field(value: object) -> tuple[DisabilityCertificate, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidChange("disability_certificates は手帳の一覧で指定してください")
    certificates: list[DisabilityCertificate] = []
    for item in value:
        try:
            if isinstance(item, DisabilityCertificate):
                certificates.append(item)
            elif isinstance(item, Mapping):
                certificates.append(
                    DisabilityCertificate(kind=str(item.get("kind")), grade=str(item.get("grade")))
                )
            else:
                raise ValueError("障害者手帳の形式が不正です")
        except ValueError as exc:
            raise InvalidChange(str(exc)) from exc
    return tuple(certificates)


# --- Population generation -----------------------------------------------------------------------

# Relative cohort size by five-year age band, shaped like a small Tohoku town: few children, the
# post-war baby boom now in its 70s, and a long tail of very old women.
_ELDER_BANDS: tuple[tuple[int, float], ...] = (
    (65, 1.00),
    (70, 1.15),
    (75, 0.90),
    (80, 0.78),
    (85, 0.58),
    (90, 0.30),
    (95, 0.09),
    (100, 0.015),
)

# Household types and their relative frequency.
_HOUSEHOLD_TYPES: tuple[tuple[str, int], ...] = (
    ("elderly_single", 17),
    ("elderly_couple", 20),
    ("three_generation", 13),
    ("couple_children", 15),
    ("couple", 8),
    ("single", 12),
    ("single_parent", 5),
    ("parent_adult_child", 11),
)

_SEVERE_PHYSICAL_GRADES = ("1", "2")


@dataclass
class _Member:
    sex: str
    age: int
    family: tuple[str, str] | None = None  # (kanji, kana) when it differs from the household's


@dataclass
class PopulationGenerator:
    """Builds a city's people household by household from one seeded random source.

    Kept separate from storage so the same generator makes the first population and the people who
    move in later. Only ``random.Random`` methods whose results are fixed for a given seed are used,
    and no set or dict of strings is ever iterated, so the output depends on the seed alone.
    """

    municipality_code: str
    seed: int
    reference_date: date = REFERENCE_DATE
    layout: CityLayout = field(init=False)
    rng: random.Random = field(init=False)
    used_addresses: set[str] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.layout = layout_for(self.municipality_code)
        self.rng = random.Random(self.seed)
        self._family_cum = list(itertools.accumulate(w for _, _, w in FAMILY_NAMES))
        self._district_cum = list(itertools.accumulate(d.weight for d in self.layout.districts))
        elder_ages = list(range(65, 104))
        self._elder_ages = elder_ages
        self._elder_cum = list(itertools.accumulate(_elder_weight(a) for a in elder_ages))

    def generate(self, size: int) -> list[RegistryPerson]:
        """Exactly ``size`` people, in households, with sequential registry and household ids."""
        people: list[RegistryPerson] = []
        household_no = 0
        while len(people) < size:
            household_no += 1
            members = self._household_members()[: size - len(people)]
            household_id = f"{self.municipality_code}-H{household_no:06d}"
            district = self.pick_district()
            address = self.new_address(district)
            family = self.pick_family_name()
            given_in_house: list[str] = []
            for member in members:
                registry_id = f"{self.municipality_code}-{len(people) + 1:07d}"
                people.append(
                    self.person(
                        registry_id=registry_id,
                        household_id=household_id,
                        family=member.family or family,
                        sex=member.sex,
                        age=member.age,
                        district=district,
                        address=address,
                        avoid_given=given_in_house,
                    )
                )
                given_in_house.append(people[-1].given_name)
        return people

    # -- one person ------------------------------------------------------------------------------

    def person(
        self,
        *,
        registry_id: str,
        household_id: str,
        family: tuple[str, str],
        sex: str,
        age: int,
        district: District,
        address: str,
        avoid_given: Sequence[str] = (),
        status_since: date | None = None,
    ) -> RegistryPerson:
        """One resident of ``age`` on the reference date, with a name, licence and certificates."""
        birth_date = self.birth_date(age)
        given, given_kana = self.pick_given_name(sex, birth_date.year, avoid_given)
        certificates = self.certificates(age)
        severe = any(_is_severe_disability(c) for c in certificates)
        car_licence, returned_on = self.licence(age, sex, severe)
        return RegistryPerson(
            registry_id=registry_id,
            municipality_code=self.municipality_code,
            household_id=household_id,
            family_name=family[0],
            given_name=given,
            family_name_kana=family[1],
            given_name_kana=given_kana,
            sex=sex,
            birth_date=birth_date,
            address=address,
            district_code=district.code,
            car_licence=car_licence,
            licence_returned_on=returned_on,
            disability_certificates=certificates,
            status="resident",
            status_since=status_since,
        )

    def birth_date(self, age: int) -> date:
        """A birth date that makes the person exactly ``age`` on the reference date."""
        ref = self.reference_date
        latest = _same_day_years_before(ref, age)
        earliest = _same_day_years_before(ref, age + 1) + timedelta(days=1)
        return earliest + timedelta(days=self.rng.randint(0, (latest - earliest).days))

    def pick_family_name(self) -> tuple[str, str]:
        i = bisect.bisect_right(self._family_cum, self.rng.random() * self._family_cum[-1])
        kanji, kana, _ = FAMILY_NAMES[i]
        return kanji, kana

    def pick_given_name(self, sex: str, birth_year: int, avoid: Sequence[str] = ()) -> tuple[str, str]:
        generation = next(g for g in GIVEN_NAME_GENERATIONS if birth_year <= g.born_until)
        names = generation.male if sex == "male" else generation.female
        choice = names[self.rng.randrange(len(names))]
        for _ in range(5):
            if choice[0] not in avoid:
                break
            choice = names[self.rng.randrange(len(names))]
        return choice

    def pick_district(self) -> District:
        i = bisect.bisect_right(self._district_cum, self.rng.random() * self._district_cum[-1])
        return self.layout.districts[i]

    def new_address(self, district: District) -> str:
        """An address in ``district`` not used by any other household of this generator."""
        town_cum = list(itertools.accumulate(t.weight for t in district.towns))
        prefix = f"{self.layout.prefecture}{self.layout.city}"
        while True:
            town = district.towns[bisect.bisect_right(town_cum, self.rng.random() * town_cum[-1])]
            if town.chome:
                chome = self.rng.randint(1, town.chome)
                address = (
                    f"{prefix}{town.name}{kanji_numeral(chome)}丁目"
                    f"{self.rng.randint(1, 24)}番{self.rng.randint(1, 30)}号"
                )
            else:
                lot = self.rng.randint(1, 3200)
                branch = f"の{self.rng.randint(1, 9)}" if self.rng.random() < 0.25 else ""
                address = f"{prefix}{town.name}{lot}番地{branch}"
            if address not in self.used_addresses:
                self.used_addresses.add(address)
                return address

    def licence(self, age: int, sex: str, severe_disability: bool) -> tuple[str, date | None]:
        """Car licence status: most adults drive; many of the old never had a licence or gave it up."""
        if age < 18:
            return "none", None
        if age < 65:
            held, returned = (0.95 if sex == "male" else 0.88), 0.0
        elif age < 75:
            held, returned = (0.93 if sex == "male" else 0.80), 0.03
        else:
            # Rural old people keep driving; women of the oldest cohorts often never had a licence.
            years = age - 75
            held = max(0.05, (0.94 if sex == "male" else 0.85) - 0.012 * years)
            returned = (1.0 - held) * min(0.7, 0.3 + 0.02 * years)
        if severe_disability:
            held *= 0.5
        draw = self.rng.random()
        if draw < held:
            return "held", None
        if draw < held + returned:
            days_back = self.rng.randint(30, min(age - 64, 15) * 365)
            return "returned", self.reference_date - timedelta(days=days_back)
        return "none", None

    def certificates(self, age: int) -> tuple[DisabilityCertificate, ...]:
        """Disability certificates, far more common with age (mostly physical ones)."""
        rng = self.rng
        found: list[DisabilityCertificate] = []
        if age < 18:
            physical, intellectual, mental = 0.006, 0.010, 0.002
        elif age < 40:
            physical, intellectual, mental = 0.012, 0.010, 0.015
        elif age < 65:
            physical, intellectual, mental = 0.04, 0.007, 0.015
        elif age < 75:
            physical, intellectual, mental = 0.09, 0.003, 0.006
        else:
            physical, intellectual, mental = 0.11, 0.001, 0.004
        if rng.random() < physical:
            grade = rng.choices(("1", "2", "3", "4", "5", "6"), weights=(27, 15, 17, 26, 7, 8))[0]
            found.append(DisabilityCertificate("physical", grade))
        if rng.random() < intellectual:
            found.append(DisabilityCertificate("intellectual", "A" if rng.random() < 0.38 else "B"))
        if rng.random() < mental:
            grade = rng.choices(("1", "2", "3"), weights=(10, 60, 30))[0]
            found.append(DisabilityCertificate("mental", grade))
        return tuple(found)

    # -- households ------------------------------------------------------------------------------

    def elder_age(self, lo: int = 65, hi: int = 103, *, older_bias: float = 0.0) -> int:
        """An age in [lo, hi] following the town's old-age cohorts; ``older_bias`` tilts it upward."""
        while True:
            i = bisect.bisect_right(self._elder_cum, self.rng.random() * self._elder_cum[-1])
            age = self._elder_ages[i]
            if lo <= age <= hi and self.rng.random() < 1.0 / (1.0 + older_bias * (103 - age) / 38):
                return age

    def _household_members(self) -> list[_Member]:
        rng = self.rng
        kind = rng.choices([k for k, _ in _HOUSEHOLD_TYPES], weights=[w for _, w in _HOUSEHOLD_TYPES])[0]
        if kind == "elderly_single":
            return [_Member("female" if rng.random() < 0.7 else "male", self.elder_age(older_bias=1.5))]
        if kind == "elderly_couple":
            husband = self.elder_age(67, 98)
            return [_Member("male", husband), _Member("female", max(63, husband - rng.randint(0, 6)))]
        if kind == "three_generation":
            eldest = self.elder_age(74, 101)
            members: list[_Member] = []
            # Now and then the grandmother is the wife's mother and keeps her own family name.
            grand_family = self.pick_family_name() if rng.random() < 0.12 else None
            if rng.random() < 0.45:
                members.append(_Member("male", eldest, grand_family))
                members.append(_Member("female", max(65, eldest - rng.randint(0, 5)), grand_family))
            else:
                members.append(_Member("female" if rng.random() < 0.75 else "male", eldest, grand_family))
            father = max(36, eldest - rng.randint(24, 34))
            members.append(_Member("male", father))
            mother = max(30, father - rng.randint(-2, 5))
            members.append(_Member("female", mother))
            for _ in range(rng.choices((0, 1, 2, 3), weights=(15, 30, 40, 15))[0]):
                child = mother - rng.randint(23, 38)
                if 0 <= child <= 34:
                    members.append(_Member(rng.choice(SEXES), child))
            return members
        if kind == "couple_children":
            father = rng.randint(27, 58)
            mother = max(22, father - rng.randint(-2, 5))
            members = [_Member("male", father), _Member("female", mother)]
            for _ in range(rng.choices((1, 2, 3), weights=(35, 45, 20))[0]):
                child = mother - rng.randint(22, 40)
                if 0 <= child <= 26:
                    members.append(_Member(rng.choice(SEXES), child))
            return members
        if kind == "couple":
            husband = rng.choice((rng.randint(24, 40), rng.randint(45, 66)))
            return [_Member("male", husband), _Member("female", max(20, husband - rng.randint(-2, 5)))]
        if kind == "single":
            return [_Member("male" if rng.random() < 0.62 else "female", rng.randint(18, 64))]
        if kind == "single_parent":
            parent = rng.randint(25, 54)
            members = [_Member("female" if rng.random() < 0.85 else "male", parent)]
            for _ in range(rng.choice((1, 1, 2))):
                members.append(_Member(rng.choice(SEXES), max(0, min(22, parent - rng.randint(20, 38)))))
            return members
        # parent_adult_child: an old parent (or both) living with an unmarried middle-aged child.
        eldest = self.elder_age(72, 101, older_bias=1.0)
        members = []
        if rng.random() < 0.35:
            members.append(_Member("male", eldest))
            members.append(_Member("female", max(65, eldest - rng.randint(0, 5))))
        else:
            members.append(_Member("female" if rng.random() < 0.75 else "male", eldest))
        members.append(
            _Member("male" if rng.random() < 0.6 else "female", max(38, eldest - rng.randint(23, 35)))
        )
        return members


def _elder_weight(age: int) -> float:
    band = max(lo for lo, _ in _ELDER_BANDS if lo <= age)
    return dict(_ELDER_BANDS)[band]


def _same_day_years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a year that has none
        return d.replace(year=d.year - years, day=28)


class _Churn:
    """Picks and records the changes of :meth:`Registry.simulate_changes` inside one transaction."""

    _KINDS: tuple[tuple[str, int], ...] = (
        ("died", 26),
        ("moved_out", 24),
        ("moved_in", 18),
        ("moved_within", 14),
        ("licence_returned", 13),
        ("name_changed", 5),
    )

    def __init__(
        self,
        registry: Registry,
        conn: sqlite3.Connection,
        residents: list[RegistryPerson],
        used_addresses: set[str],
        rng: random.Random,
        start: date,
    ) -> None:
        self.registry = registry
        self.conn = conn
        self.rng = rng
        self.start = start
        self.current = {p.registry_id: p for p in residents}
        self.ids = [p.registry_id for p in residents]
        codes = sorted({p.municipality_code for p in residents})
        self.generators = {
            code: PopulationGenerator(municipality_code=code, seed=rng.randrange(2**31), reference_date=start)
            for code in codes
        }
        for generator in self.generators.values():
            generator.used_addresses = used_addresses
        self.codes = codes

        def weights(rule: Callable[[RegistryPerson], float]) -> list[float]:
            return list(itertools.accumulate(rule(p) for p in residents))

        self.cum = {
            "died": weights(lambda p: math.exp(-10.5 + 0.1 * p.age_on(start))),
            "moved_out": weights(lambda p: 1.0 if 18 <= p.age_on(start) <= 39 else 0.1),
            "young_leaving_home": weights(lambda p: 1.0 if 18 <= p.age_on(start) <= 45 else 0.0),
            "old_joining_family": weights(lambda p: 1.0 if p.age_on(start) >= 80 else 0.0),
            "licence_returned": weights(
                lambda p: (
                    float(p.age_on(start) - 69) if p.car_licence == "held" and p.age_on(start) >= 70 else 0.0
                )
            ),
            "name_changed": weights(
                lambda p: 1.0 if p.sex == "female" and 22 <= p.age_on(start) <= 40 else 0.0
            ),
        }

    def one_change(self, on: date) -> RegistryChange:
        kinds = [k for k, _ in self._KINDS]
        weights = [w for _, w in self._KINDS]
        for _ in range(100):
            kind = self.rng.choices(kinds, weights=weights)[0]
            change = self._try(kind, on)
            if change is not None:
                if change.person.status == "resident":
                    self.current[change.registry_id] = change.person
                else:
                    self.current.pop(change.registry_id, None)
                return change
        raise RegistryError("条件に合う住民が見つからず、異動を作れませんでした")

    def _pick(self, pool: str, on: date) -> RegistryPerson | None:
        cum = self.cum[pool]
        if not cum or cum[-1] <= 0:
            return None
        for _ in range(20):
            i = bisect.bisect_right(cum, self.rng.random() * cum[-1])
            person = self.current.get(self.ids[min(i, len(self.ids) - 1)])
            if person is not None and (person.status_since is None or person.status_since <= on):
                return person
        return None

    def _record(self, kind: str, person_id: str, on: date, **fields: object) -> RegistryChange:
        return self.registry._apply_change(self.conn, kind, person_id, on, dict(fields))

    def _try(self, kind: str, on: date) -> RegistryChange | None:
        rng = self.rng
        if kind == "moved_in":
            return self._move_in(on)
        if kind == "moved_within":
            if rng.random() < 0.7:
                person = self._pick("young_leaving_home", on)
                if person is None:
                    return None
                generator = self.generators[person.municipality_code]
                district = generator.pick_district()
                return self._record(
                    kind,
                    person.registry_id,
                    on,
                    address=generator.new_address(district),
                    district_code=district.code,
                )
            person = self._pick("old_joining_family", on)
            host = self._pick("young_leaving_home", on)
            if person is None or host is None or host.household_id == person.household_id:
                return None
            if host.municipality_code != person.municipality_code:
                return None
            return self._record(kind, person.registry_id, on, household_id=host.household_id)
        pool = kind
        person = self._pick(pool, on)
        if person is None:
            return None
        if kind == "licence_returned" and person.car_licence != "held":
            return None
        if kind == "name_changed":
            family = self.generators[person.municipality_code].pick_family_name()
            if family[0] == person.family_name:
                return None
            return self._record(
                kind, person.registry_id, on, family_name=family[0], family_name_kana=family[1]
            )
        return self._record(kind, person.registry_id, on)

    def _move_in(self, on: date) -> RegistryChange:
        rng = self.rng
        code = self.codes[rng.randrange(len(self.codes))]
        generator = self.generators[code]
        district = generator.pick_district()
        age = rng.randint(20, 45)
        sex = rng.choice(SEXES)
        newcomer = generator.person(
            registry_id=self.registry._next_registry_id(self.conn, code),
            household_id=self.registry._next_household_id(self.conn, code),
            family=generator.pick_family_name(),
            sex=sex,
            age=age,
            district=district,
            address=generator.new_address(district),
        )
        return self._record(
            "moved_in",
            newcomer.registry_id,
            on,
            family_name=newcomer.family_name,
            given_name=newcomer.given_name,
            family_name_kana=newcomer.family_name_kana,
            given_name_kana=newcomer.given_name_kana,
            sex=newcomer.sex,
            birth_date=newcomer.birth_date,
            address=newcomer.address,
            district_code=newcomer.district_code,
            household_id=newcomer.household_id,
            car_licence=newcomer.car_licence,
            licence_returned_on=newcomer.licence_returned_on,
            disability_certificates=newcomer.disability_certificates,
        )
