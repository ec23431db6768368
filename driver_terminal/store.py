"""The terminal's local store: one SQLite file holding who the terminal is, its sequence numbers and its
journal of rides.

Durability rules (a taxi terminal loses power without warning):
- WAL with synchronous=FULL, so a committed transaction survives a power cut;
- a sequence number and its Idempotency-Key are committed *before* the request leaves the device, so a
  crash between "allocated" and "answered" never hands the same number out again, and the unanswered
  request can be re-sent with the same key (the API then answers with the first result);
- the card proof kept for a re-send is erased as soon as the server has answered.

Schema 2 (offline work, DESIGN §7) adds the outbox of signed records waiting for the API's sync, the
snapshot, the driver's shifts and a few facts per boarding (the card's fingerprint, the program, the units
held) that let the terminal decide offline. `PRAGMA user_version` numbers the schema; an older file is
brought up to date when it is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from driver_terminal.faults import checkpoint
from driver_terminal.keys import ensure_data_dir

STORE_FILENAME: Final = "terminal.sqlite3"
SCHEMA_VERSION: Final = 2

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    terminal_id INTEGER NOT NULL,
    api_url TEXT NOT NULL,
    operator_id INTEGER,
    vehicle_id INTEGER,
    municipality_id INTEGER,
    enrolled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sequence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_value INTEGER NOT NULL CHECK (next_value >= 1)
);
INSERT OR IGNORE INTO sequence (id, next_value) VALUES (1, 1);
CREATE TABLE IF NOT EXISTS rides (
    idempotency_key TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL UNIQUE CHECK (sequence >= 1),
    state TEXT NOT NULL,
    ride_id INTEGER,
    request TEXT,
    answer TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rides_ride_id ON rides (ride_id);
CREATE INDEX IF NOT EXISTS rides_state ON rides (state);
"""

# Schema 2: columns added to the tables of schema 1 (checked one by one, so a half-upgraded file is fine).
_ADDED_COLUMNS: Final = (
    ("identity", "snapshot_public_key", "TEXT"),
    ("rides", "fingerprint", "TEXT"),
    ("rides", "program_code", "TEXT"),
    ("rides", "trip_ref", "TEXT"),
    ("rides", "offline", "INTEGER NOT NULL DEFAULT 0"),
    ("rides", "units_held", "INTEGER"),
    ("rides", "units_used", "INTEGER"),
)

_SCHEMA_2: Final = """
CREATE INDEX IF NOT EXISTS rides_fingerprint ON rides (fingerprint);
CREATE TABLE IF NOT EXISTS records (
    sequence INTEGER PRIMARY KEY CHECK (sequence >= 1),
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('board', 'fare', 'void')),
    board_sequence INTEGER,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    ride_id INTEGER,
    code TEXT,
    title TEXT,
    created_at TEXT NOT NULL,
    synced_at TEXT,
    acknowledged_at TEXT
);
CREATE INDEX IF NOT EXISTS records_status ON records (status);
CREATE INDEX IF NOT EXISTS records_board_sequence ON records (board_sequence);
CREATE TABLE IF NOT EXISTS snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    payload TEXT NOT NULL,
    signature TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shifts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    driver_code TEXT NOT NULL,
    driver_name TEXT,
    server_shift_id INTEGER,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    end_sent INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""


class StoreError(Exception):
    """A problem with the local store; `str()` is a Japanese sentence."""


class AlreadyEnrolled(StoreError):
    """The store already belongs to an enrolled terminal."""


class UnknownJournalEntry(StoreError):
    """No journal entry has that Idempotency-Key."""


class SequenceMoved(StoreError):
    """The next sequence number is not the one a card signature was made for (another record took it)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"通し番号が進んでいます（予定 {expected}、実際 {actual}）")
        self.expected = expected
        self.actual = actual


class RecordStatus(StrEnum):
    """Where a signed offline record stands: waiting to be sent, or the API's answer to it."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


SETTLED_STATUSES: Final = frozenset({RecordStatus.ACCEPTED, RecordStatus.DUPLICATE, RecordStatus.CONFLICT})


class JournalState(StrEnum):
    """Where a boarding stands as far as this terminal knows."""

    SENDING = "sending"  # numbered and committed locally; no answer from the server yet
    BOARDED = "boarded"
    COMPLETED = "completed"
    VOIDED = "voided"
    REFUSED = "refused"  # the server said no; the number stays used


@dataclass(frozen=True)
class TerminalIdentity:
    terminal_id: int
    api_url: str
    operator_id: int | None
    vehicle_id: int | None
    municipality_id: int | None
    enrolled_at: datetime
    snapshot_public_key: str | None = None  # the API's snapshot key, learnt at enrolment


@dataclass(frozen=True)
class JournalEntry:
    """One boarding attempt: its key and number, what the terminal knows, the server's last answer."""

    idempotency_key: str
    sequence: int
    state: JournalState
    ride_id: int | None
    request: dict[str, Any] | None  # the body to re-send (without `sequence`); None once answered
    answer: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    fingerprint: str | None = None
    program_code: str | None = None
    trip_ref: str | None = None
    offline: bool = False  # accepted offline: a signed board record with the same number is in the outbox
    units_held: int | None = None
    units_used: int | None = None
    board_sync: RecordStatus | None = None  # offline boardings: the API's answer to the board record
    fare_sync: RecordStatus | None = None  # the last fare record for this boarding, if any
    void_sync: RecordStatus | None = None  # the last void record for this boarding, if any

    @property
    def confirmed(self) -> bool:
        """The API has this boarding (answered online, or its offline record was accepted at sync)."""
        if not self.offline:
            return self.state is not JournalState.SENDING and self.ride_id is not None
        return self.board_sync in SETTLED_STATUSES

    @property
    def pending(self) -> bool:
        """Something about this boarding (the boarding, its fare or its void) still waits to be sent."""
        return RecordStatus.PENDING in (self.board_sync, self.fare_sync, self.void_sync)


@dataclass(frozen=True)
class OutboxRecord:
    """A signed record and what the API said about it."""

    sequence: int
    idempotency_key: str
    kind: str
    board_sequence: int | None
    body: dict[str, Any]
    status: RecordStatus
    ride_id: int | None
    code: str | None
    title: str | None
    created_at: datetime
    synced_at: datetime | None
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class StoredSnapshot:
    payload: dict[str, Any]
    signature: str
    public_key: str
    fetched_at: datetime


@dataclass(frozen=True)
class Shift:
    """A driver's shift on this terminal (kept locally; the API's id once it has been told)."""

    local_id: int
    driver_code: str
    driver_name: str | None
    server_shift_id: int | None
    started_at: datetime
    ended_at: datetime | None
    end_sent: bool


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return instant.astimezone(UTC).isoformat()


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), ensure_ascii=False, sort_keys=True)


def _status(value: str | None) -> RecordStatus | None:
    return None if value is None else RecordStatus(value)


def _entry(row: sqlite3.Row) -> JournalEntry:
    names = row.keys()
    return JournalEntry(
        idempotency_key=row["idempotency_key"],
        sequence=row["sequence"],
        state=JournalState(row["state"]),
        ride_id=row["ride_id"],
        request=json.loads(row["request"]) if row["request"] is not None else None,
        answer=json.loads(row["answer"]) if row["answer"] is not None else None,
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        fingerprint=row["fingerprint"],
        program_code=row["program_code"],
        trip_ref=row["trip_ref"],
        offline=bool(row["offline"]),
        units_held=row["units_held"],
        units_used=row["units_used"],
        board_sync=_status(row["board_sync"]) if "board_sync" in names else None,
        fare_sync=_status(row["fare_sync"]) if "fare_sync" in names else None,
        void_sync=_status(row["void_sync"]) if "void_sync" in names else None,
    )


def _record(row: sqlite3.Row) -> OutboxRecord:
    return OutboxRecord(
        sequence=row["sequence"],
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        board_sequence=row["board_sequence"],
        body=json.loads(row["body"]),
        status=RecordStatus(row["status"]),
        ride_id=row["ride_id"],
        code=row["code"],
        title=row["title"],
        created_at=datetime.fromisoformat(row["created_at"]),
        synced_at=_instant(row["synced_at"]),
        acknowledged_at=_instant(row["acknowledged_at"]),
    )


# The journal with the outbox's answers for each boarding (its own record, its last fare and void).
_ENTRIES: Final = """
SELECT rides.*,
    (SELECT r.status FROM records r WHERE r.sequence = rides.sequence AND r.kind = 'board') AS board_sync,
    (SELECT r.status FROM records r WHERE r.board_sequence = rides.sequence AND r.kind = 'fare'
        ORDER BY r.sequence DESC LIMIT 1) AS fare_sync,
    (SELECT r.status FROM records r WHERE r.board_sequence = rides.sequence AND r.kind = 'void'
        ORDER BY r.sequence DESC LIMIT 1) AS void_sync
FROM rides
"""


class TerminalStore:
    """The SQLite file of one terminal. Use one instance per thread (sqlite3's rule)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            # Owner-only from the start: the journal holds riders' given names. SQLite gives the
            # -wal and -shm files the same permissions as the database file.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (the WAL is fsynced) before the screen says "done".
        self._db.execute("PRAGMA synchronous=FULL")
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            self._upgrade(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """Bring a schema-1 file up to schema 2 (idempotent)."""
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        for statement in _SCHEMA_2.split(";"):
            if statement.strip():
                db.execute(statement)

    @classmethod
    def open(cls, data_dir: Path) -> TerminalStore:
        """Open (creating if needed) the store in the terminal's data directory."""
        return cls(ensure_data_dir(data_dir) / STORE_FILENAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TerminalStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with BEGIN IMMEDIATE so two processes serialise on it."""
        if self._in_transaction():  # nested: part of the caller's transaction
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._in_transaction():
                self._db.execute("ROLLBACK")
            raise
        if self._in_transaction():
            self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several of the writes below as one transaction (all on disk, or none)."""
        with self._write():
            yield

    def _in_transaction(self) -> bool:
        return self._db.in_transaction

    # -- identity --

    def identity(self) -> TerminalIdentity | None:
        """Who this terminal is, or None before enrolment."""
        row = self._db.execute("SELECT * FROM identity WHERE id = 1").fetchone()
        if row is None:
            return None
        return TerminalIdentity(
            terminal_id=row["terminal_id"],
            api_url=row["api_url"],
            operator_id=row["operator_id"],
            vehicle_id=row["vehicle_id"],
            municipality_id=row["municipality_id"],
            enrolled_at=datetime.fromisoformat(row["enrolled_at"]),
            snapshot_public_key=row["snapshot_public_key"],
        )

    def save_identity(self, identity: TerminalIdentity) -> None:
        """Record the enrolment. Raises AlreadyEnrolled: one store, one terminal, for life."""
        with self._write() as db:
            existing = db.execute("SELECT terminal_id FROM identity WHERE id = 1").fetchone()
            if existing is not None:
                raise AlreadyEnrolled(
                    f"この端末はすでに登録されています（端末番号 {existing['terminal_id']}）"
                )
            db.execute(
                "INSERT INTO identity (id, terminal_id, api_url, operator_id, vehicle_id, municipality_id,"
                " enrolled_at, snapshot_public_key) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
                (
                    identity.terminal_id,
                    identity.api_url,
                    identity.operator_id,
                    identity.vehicle_id,
                    identity.municipality_id,
                    _iso(identity.enrolled_at),
                    identity.snapshot_public_key,
                ),
            )

    def pin_snapshot_key(self, public_key: str) -> None:
        """Remember the API's snapshot key when the enrolment did not carry it; a key already pinned is
        never replaced (a different one means someone else is signing)."""
        with self._write() as db:
            db.execute(
                "UPDATE identity SET snapshot_public_key = ? WHERE id = 1 AND snapshot_public_key IS NULL",
                (public_key,),
            )

    # -- sequence numbers --

    def next_sequence(self) -> int:
        """The number the next allocation will hand out (for display; it allocates nothing)."""
        return int(self._db.execute("SELECT next_value FROM sequence WHERE id = 1").fetchone()[0])

    def allocate_sequence(self) -> int:
        """Hand out the next sequence number, committed before it is returned (never handed out twice)."""
        with self._write() as db:
            return self._allocate(db)

    @staticmethod
    def _allocate(db: sqlite3.Connection, expected: int | None = None) -> int:
        value = int(db.execute("SELECT next_value FROM sequence WHERE id = 1").fetchone()[0])
        if expected is not None and value != expected:
            raise SequenceMoved(expected, value)
        db.execute("UPDATE sequence SET next_value = ? WHERE id = 1", (value + 1,))
        return value

    # -- journal --

    def begin_ride(
        self,
        request: Mapping[str, Any],
        now: datetime,
        *,
        fingerprint: str | None = None,
        program_code: str | None = None,
        trip_ref: str | None = None,
    ) -> JournalEntry:
        """Number a boarding and give it an Idempotency-Key, committed before anything is sent.

        `request` is the body to send, without `sequence` (the entry carries it).
        """
        key = f"ride-{uuid.uuid4()}"
        stamp = _iso(now)
        with self._write() as db:
            sequence = self._allocate(db)
            db.execute(
                "INSERT INTO rides (idempotency_key, sequence, state, ride_id, request, answer, created_at,"
                " updated_at, fingerprint, program_code, trip_ref, offline)"
                " VALUES (?, ?, ?, NULL, ?, NULL, ?, ?, ?, ?, ?, 0)",
                (
                    key,
                    sequence,
                    JournalState.SENDING.value,
                    _json(request),
                    stamp,
                    stamp,
                    fingerprint,
                    program_code,
                    trip_ref,
                ),
            )
        return self.entry(key)

    def keep_offline_boarding(
        self,
        *,
        record: Mapping[str, Any],
        answer: Mapping[str, Any],
        now: datetime,
        fingerprint: str,
        program_code: str,
        units_held: int,
        idempotency_key: str | None = None,
        trip_ref: str | None = None,
    ) -> JournalEntry:
        """Keep a boarding accepted offline: its signed board record goes to the outbox and the journal
        shows it as boarded (pending), in ONE transaction, on disk before this returns.

        Without `idempotency_key` this is a new boarding and takes the record's sequence number (raises
        SequenceMoved if that number is gone). With it, the numbered entry whose online attempt got no
        answer becomes this offline boarding (same number, same key: the API answers `duplicate` if the
        first attempt did reach it). Raises UnknownJournalEntry.
        """
        sequence = int(record["sequence"])
        key = idempotency_key or str(record["idempotency_key"])
        stamp = _iso(now)
        with self._write() as db:
            if idempotency_key is None:
                self._allocate(db, sequence)
                db.execute(
                    "INSERT INTO rides (idempotency_key, sequence, state, ride_id, request, answer,"
                    " created_at, updated_at, fingerprint, program_code, trip_ref, offline, units_held)"
                    " VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, 1, ?)",
                    (
                        key,
                        sequence,
                        JournalState.BOARDED.value,
                        _json(answer),
                        stamp,
                        stamp,
                        fingerprint,
                        program_code,
                        trip_ref,
                        units_held,
                    ),
                )
            else:
                updated = db.execute(
                    "UPDATE rides SET state = ?, answer = ?, request = NULL, offline = 1, units_held = ?,"
                    " fingerprint = ?, program_code = ?, updated_at = ? WHERE idempotency_key = ?"
                    " AND sequence = ?",
                    (
                        JournalState.BOARDED.value,
                        _json(answer),
                        units_held,
                        fingerprint,
                        program_code,
                        stamp,
                        key,
                        sequence,
                    ),
                ).rowcount
                if updated == 0:
                    raise UnknownJournalEntry(f"乗車記録がありません: {key}")
            self._insert_record(db, record, board_sequence=None, now=now)
            checkpoint("offline.writing")
        checkpoint("offline.kept")
        return self.entry(key)

    def record_answer(
        self,
        idempotency_key: str,
        *,
        state: JournalState,
        answer: Mapping[str, Any] | None,
        now: datetime,
        ride_id: int | None = None,
        units_held: int | None = None,
    ) -> JournalEntry:
        """Store the server's answer to a boarding. A final answer (anything but SENDING) erases the
        card proof kept for re-sending. Raises UnknownJournalEntry."""
        keep_request = state is JournalState.SENDING
        with self._write() as db:
            updated = db.execute(
                "UPDATE rides SET state = ?, answer = ?, ride_id = COALESCE(?, ride_id),"
                " units_held = COALESCE(?, units_held),"
                " request = CASE WHEN ? THEN request END, updated_at = ? WHERE idempotency_key = ?",
                (state.value, _json(answer), ride_id, units_held, keep_request, _iso(now), idempotency_key),
            ).rowcount
        if updated == 0:
            raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
        return self.entry(idempotency_key)

    def abandon_boarding(
        self,
        idempotency_key: str,
        *,
        answer: Mapping[str, Any],
        now: datetime,
        build_void: Callable[[int], Mapping[str, Any]] | None,
    ) -> JournalEntry:
        """A numbered boarding the driver was told did NOT happen: the entry becomes refused and, when the
        API may have recorded it (an online attempt without an answer), a signed void record for its
        number goes to the outbox in the same transaction. `build_void(sequence)` makes that record.
        Raises UnknownJournalEntry."""
        with self._write() as db:
            row = db.execute(
                "SELECT sequence FROM rides WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if row is None:
                raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
            db.execute(
                "UPDATE rides SET state = ?, answer = ?, request = NULL, updated_at = ?"
                " WHERE idempotency_key = ?",
                (JournalState.REFUSED.value, _json(answer), _iso(now), idempotency_key),
            )
            if build_void is not None:
                sequence = self._allocate(db)
                self._insert_record(db, build_void(sequence), board_sequence=row["sequence"], now=now)
        return self.entry(idempotency_key)

    def update_ride(
        self, ride_id: int, *, state: JournalState, answer: Mapping[str, Any], now: datetime
    ) -> bool:
        """Follow a ride after boarding (fare, void, a look); False if this terminal never boarded it."""
        with self._write() as db:
            updated = db.execute(
                "UPDATE rides SET state = ?, answer = ?, updated_at = ? WHERE ride_id = ?",
                (state.value, _json(answer), _iso(now), ride_id),
            ).rowcount
        return updated > 0

    def follow_entry(
        self,
        idempotency_key: str,
        *,
        state: JournalState,
        answer: Mapping[str, Any],
        now: datetime,
        units_used: int | None = None,
        record: Mapping[str, Any] | None = None,
        record_board_sequence: int | None = None,
    ) -> JournalEntry:
        """Move a boarding on (fare entered, voided) as this terminal knows it; with `record`, the signed
        fare or void record joins the outbox in the same transaction. Raises UnknownJournalEntry."""
        with self._write() as db:
            updated = db.execute(
                "UPDATE rides SET state = ?, answer = ?, units_used = COALESCE(?, units_used), updated_at = ?"
                " WHERE idempotency_key = ?",
                (state.value, _json(answer), units_used, _iso(now), idempotency_key),
            ).rowcount
            if updated == 0:
                raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
            if record is not None:
                self._insert_record(db, record, board_sequence=record_board_sequence, now=now)
        return self.entry(idempotency_key)

    def entry(self, idempotency_key: str) -> JournalEntry:
        """The journal entry for a key. Raises UnknownJournalEntry."""
        row = self._db.execute(_ENTRIES + " WHERE rides.idempotency_key = ?", (idempotency_key,)).fetchone()
        if row is None:
            raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
        return _entry(row)

    def entry_by_sequence(self, sequence: int) -> JournalEntry:
        """The journal entry numbered `sequence`. Raises UnknownJournalEntry."""
        row = self._db.execute(_ENTRIES + " WHERE rides.sequence = ?", (sequence,)).fetchone()
        if row is None:
            raise UnknownJournalEntry(f"乗車記録がありません: 通し番号 {sequence}")
        return _entry(row)

    def entry_for_ride(self, ride_id: int) -> JournalEntry | None:
        row = self._db.execute(_ENTRIES + " WHERE rides.ride_id = ?", (ride_id,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, limit: int = 50) -> list[JournalEntry]:
        """The latest entries, newest first."""
        rows = self._db.execute(_ENTRIES + " ORDER BY rides.sequence DESC LIMIT ?", (limit,)).fetchall()
        return [_entry(row) for row in rows]

    def entries_since(self, since: datetime) -> list[JournalEntry]:
        """Entries made at or after `since`, oldest first."""
        rows = self._db.execute(
            _ENTRIES + " WHERE rides.created_at >= ? ORDER BY rides.sequence", (_iso(since),)
        ).fetchall()
        return [_entry(row) for row in rows]

    def unanswered(self) -> list[JournalEntry]:
        """Boardings sent (or about to be) that the server has not answered, oldest first."""
        rows = self._db.execute(
            _ENTRIES + " WHERE rides.state = ? ORDER BY rides.sequence", (JournalState.SENDING.value,)
        ).fetchall()
        return [_entry(row) for row in rows]

    def on_board(self, since: datetime) -> list[JournalEntry]:
        """Riders still in the car: boarded at or after `since`, no fare and not voided; oldest first."""
        rows = self._db.execute(
            _ENTRIES + " WHERE rides.state = ? AND rides.created_at >= ? ORDER BY rides.sequence",
            (JournalState.BOARDED.value, _iso(since)),
        ).fetchall()
        return [_entry(row) for row in rows]

    def latest_for_card(self, card_fingerprint: str, since: datetime) -> JournalEntry | None:
        """This card's latest boarding on this terminal at or after `since` that was not refused."""
        row = self._db.execute(
            _ENTRIES + " WHERE rides.fingerprint = ? AND rides.created_at >= ? AND rides.state != ?"
            " ORDER BY rides.sequence DESC LIMIT 1",
            (card_fingerprint, _iso(since), JournalState.REFUSED.value),
        ).fetchone()
        return None if row is None else _entry(row)

    # -- outbox --

    def _insert_record(
        self, db: sqlite3.Connection, record: Mapping[str, Any], *, board_sequence: int | None, now: datetime
    ) -> None:
        db.execute(
            "INSERT INTO records (sequence, idempotency_key, kind, board_sequence, body, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(record["sequence"]),
                str(record["idempotency_key"]),
                str(record["kind"]),
                board_sequence if board_sequence is not None else record.get("board_sequence"),
                json.dumps(dict(record), ensure_ascii=False),
                RecordStatus.PENDING.value,
                _iso(now),
            ),
        )

    def add_record(self, build: Callable[[int], Mapping[str, Any]], now: datetime) -> OutboxRecord:
        """Number a fare or void record and keep it for sync, in one transaction. `build(sequence)` returns
        the signed record for that number."""
        with self._write() as db:
            sequence = self._allocate(db)
            self._insert_record(db, build(sequence), board_sequence=None, now=now)
        return self.record(sequence)

    def record(self, sequence: int) -> OutboxRecord:
        row = self._db.execute("SELECT * FROM records WHERE sequence = ?", (sequence,)).fetchone()
        if row is None:
            raise StoreError(f"送信待ちの記録がありません: 通し番号 {sequence}")
        return _record(row)

    def pending_records(self, limit: int = 500) -> list[OutboxRecord]:
        """Records not yet answered by the API, in sequence order (the order the API applies them)."""
        rows = self._db.execute(
            "SELECT * FROM records WHERE status = ? ORDER BY sequence LIMIT ?",
            (RecordStatus.PENDING.value, limit),
        ).fetchall()
        return [_record(row) for row in rows]

    def count_pending(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM records WHERE status = ?", (RecordStatus.PENDING.value,)
            ).fetchone()[0]
        )

    def records(self, limit: int = 100) -> list[OutboxRecord]:
        rows = self._db.execute("SELECT * FROM records ORDER BY sequence DESC LIMIT ?", (limit,)).fetchall()
        return [_record(row) for row in rows]

    def keep_sync_results(self, results: Sequence[Mapping[str, Any]], now: datetime) -> list[OutboxRecord]:
        """Store the API's per-record answers, all in one transaction, and let the journal follow: an
        offline boarding learns its ride id. Results for numbers this terminal never sent are ignored."""
        stamp = _iso(now)
        kept: list[int] = []
        with self._write() as db:
            for result in results:
                sequence = int(result["sequence"])
                status = RecordStatus(str(result["status"]))
                if status is RecordStatus.PENDING:
                    continue
                updated = db.execute(
                    "UPDATE records SET status = ?, ride_id = ?, code = ?, title = ?, synced_at = ?"
                    " WHERE sequence = ? AND status = ?",
                    (
                        status.value,
                        result.get("ride_id"),
                        result.get("code"),
                        result.get("title"),
                        stamp,
                        sequence,
                        RecordStatus.PENDING.value,
                    ),
                ).rowcount
                if updated == 0:
                    continue
                kept.append(sequence)
                # A void sent for a boarding the driver was told did not happen, which the API never
                # received either: nothing happened, so nothing for the driver to read.
                db.execute(
                    "UPDATE records SET acknowledged_at = ? WHERE sequence = ? AND kind = 'void'"
                    " AND status = ? AND code = 'ride.not_found' AND board_sequence IN"
                    " (SELECT sequence FROM rides WHERE state = ?)",
                    (stamp, sequence, RecordStatus.REJECTED.value, JournalState.REFUSED.value),
                )
                if result.get("ride_id") is not None:
                    db.execute(
                        "UPDATE rides SET ride_id = COALESCE(ride_id, ?), updated_at = ?"
                        " WHERE sequence = (SELECT COALESCE(board_sequence, sequence) FROM records"
                        " WHERE sequence = ?)",
                        (result["ride_id"], stamp, sequence),
                    )
        return [self.record(sequence) for sequence in kept]

    def needing_attention(self) -> list[OutboxRecord]:
        """Conflicts and rejections the driver has not yet read, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM records WHERE status IN (?, ?) AND acknowledged_at IS NULL ORDER BY sequence",
            (RecordStatus.CONFLICT.value, RecordStatus.REJECTED.value),
        ).fetchall()
        return [_record(row) for row in rows]

    def acknowledge(self, sequences: Sequence[int], now: datetime) -> None:
        """The driver has read these explanations."""
        with self._write() as db:
            db.executemany(
                "UPDATE records SET acknowledged_at = ? WHERE sequence = ? AND acknowledged_at IS NULL",
                [(_iso(now), sequence) for sequence in sequences],
            )

    # -- snapshot --

    def save_snapshot(
        self, payload: Mapping[str, Any], signature: str, public_key: str, now: datetime
    ) -> None:
        """Keep the latest verified snapshot (replacing the one before)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO snapshot (id, payload, signature, public_key, fetched_at) VALUES (1, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET payload = excluded.payload, signature = excluded.signature,"
                " public_key = excluded.public_key, fetched_at = excluded.fetched_at",
                (json.dumps(dict(payload), ensure_ascii=False), signature, public_key, _iso(now)),
            )

    def stored_snapshot(self) -> StoredSnapshot | None:
        row = self._db.execute("SELECT * FROM snapshot WHERE id = 1").fetchone()
        if row is None:
            return None
        return StoredSnapshot(
            payload=json.loads(row["payload"]),
            signature=row["signature"],
            public_key=row["public_key"],
            fetched_at=datetime.fromisoformat(row["fetched_at"]),
        )

    # -- shifts --

    def start_shift(
        self, driver_code: str, driver_name: str | None, server_shift_id: int | None, now: datetime
    ) -> Shift:
        """Begin a shift (an open one on this terminal is ended first, as the API does)."""
        with self._write() as db:
            db.execute("UPDATE shifts SET ended_at = ? WHERE ended_at IS NULL", (_iso(now),))
            cursor = db.execute(
                "INSERT INTO shifts (driver_code, driver_name, server_shift_id, started_at)"
                " VALUES (?, ?, ?, ?)",
                (driver_code, driver_name, server_shift_id, _iso(now)),
            )
            local_id = int(cursor.lastrowid or 0)
        return self.shift(local_id)

    def shift(self, local_id: int) -> Shift:
        row = self._db.execute("SELECT * FROM shifts WHERE id = ?", (local_id,)).fetchone()
        if row is None:
            raise StoreError(f"乗務の記録がありません: {local_id}")
        return _shift(row)

    def current_shift(self) -> Shift | None:
        row = self._db.execute(
            "SELECT * FROM shifts WHERE ended_at IS NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else _shift(row)

    def last_shift(self) -> Shift | None:
        row = self._db.execute("SELECT * FROM shifts ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _shift(row)

    def shift_told(
        self,
        local_id: int,
        *,
        server_shift_id: int | None = None,
        driver_name: str | None = None,
        end_sent: bool = False,
    ) -> None:
        """What the API has been told about a shift: its id and the driver's name, or that it ended."""
        with self._write() as db:
            db.execute(
                "UPDATE shifts SET server_shift_id = COALESCE(?, server_shift_id),"
                " driver_name = COALESCE(?, driver_name), end_sent = MAX(end_sent, ?) WHERE id = ?",
                (server_shift_id, driver_name, 1 if end_sent else 0, local_id),
            )

    def end_shift(self, local_id: int, now: datetime) -> Shift:
        with self._write() as db:
            db.execute(
                "UPDATE shifts SET ended_at = COALESCE(ended_at, ?) WHERE id = ?", (_iso(now), local_id)
            )
        return self.shift(local_id)

    def shifts_to_tell(self) -> list[Shift]:
        """Shifts the API has not heard about (started offline) or whose end it has not heard."""
        rows = self._db.execute(
            "SELECT * FROM shifts WHERE server_shift_id IS NULL OR (ended_at IS NOT NULL AND end_sent = 0)"
            " ORDER BY id"
        ).fetchall()
        return [_shift(row) for row in rows]

    # -- small facts --

    def set_fact(self, name: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def fact(self, name: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row["value"])


def _shift(row: sqlite3.Row) -> Shift:
    return Shift(
        local_id=row["id"],
        driver_code=row["driver_code"],
        driver_name=row["driver_name"],
        server_shift_id=row["server_shift_id"],
        started_at=datetime.fromisoformat(row["started_at"]),
        ended_at=_instant(row["ended_at"]),
        end_sent=bool(row["end_sent"]),
    )
