"""The terminal's local store: one SQLite file holding who the terminal is, its sequence numbers and its
journal of rides.

Durability rules (a taxi terminal loses power without warning):
- WAL with synchronous=FULL, so a committed transaction survives a power cut;
- a sequence number and its Idempotency-Key are committed *before* the request leaves the device, so a
  crash between "allocated" and "answered" never hands the same number out again, and the unanswered
  request can be re-sent with the same key (the API then answers with the first result);
- the card proof kept for a re-send is erased as soon as the server has answered.

Issue 5 (offline rides, snapshot) adds tables here; `PRAGMA user_version` numbers the schema.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from driver_terminal.keys import ensure_data_dir

STORE_FILENAME: Final = "terminal.sqlite3"
SCHEMA_VERSION: Final = 1

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


class StoreError(Exception):
    """A problem with the local store; `str()` is a Japanese sentence."""


class AlreadyEnrolled(StoreError):
    """The store already belongs to an enrolled terminal."""


class UnknownJournalEntry(StoreError):
    """No journal entry has that Idempotency-Key."""


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


def _iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return instant.astimezone(UTC).isoformat()


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), ensure_ascii=False, sort_keys=True)


def _entry(row: sqlite3.Row) -> JournalEntry:
    return JournalEntry(
        idempotency_key=row["idempotency_key"],
        sequence=row["sequence"],
        state=JournalState(row["state"]),
        ride_id=row["ride_id"],
        request=json.loads(row["request"]) if row["request"] is not None else None,
        answer=json.loads(row["answer"]) if row["answer"] is not None else None,
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


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
        self._db.execute("PRAGMA synchronous=FULL")
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")

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
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        if self._db.in_transaction:
            self._db.execute("COMMIT")

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
                " enrolled_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    identity.terminal_id,
                    identity.api_url,
                    identity.operator_id,
                    identity.vehicle_id,
                    identity.municipality_id,
                    _iso(identity.enrolled_at),
                ),
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
    def _allocate(db: sqlite3.Connection) -> int:
        value = int(db.execute("SELECT next_value FROM sequence WHERE id = 1").fetchone()[0])
        db.execute("UPDATE sequence SET next_value = ? WHERE id = 1", (value + 1,))
        return value

    # -- journal --

    def begin_ride(self, request: Mapping[str, Any], now: datetime) -> JournalEntry:
        """Number a boarding and give it an Idempotency-Key, committed before anything is sent.

        `request` is the body to send, without `sequence` (the entry carries it).
        """
        key = f"ride-{uuid.uuid4()}"
        stamp = _iso(now)
        with self._write() as db:
            sequence = self._allocate(db)
            db.execute(
                "INSERT INTO rides (idempotency_key, sequence, state, ride_id, request, answer, created_at,"
                " updated_at) VALUES (?, ?, ?, NULL, ?, NULL, ?, ?)",
                (key, sequence, JournalState.SENDING.value, _json(request), stamp, stamp),
            )
        return self.entry(key)

    def record_answer(
        self,
        idempotency_key: str,
        *,
        state: JournalState,
        answer: Mapping[str, Any] | None,
        now: datetime,
        ride_id: int | None = None,
    ) -> JournalEntry:
        """Store the server's answer to a boarding. A final answer (anything but SENDING) erases the
        card proof kept for re-sending. Raises UnknownJournalEntry."""
        keep_request = state is JournalState.SENDING
        with self._write() as db:
            updated = db.execute(
                "UPDATE rides SET state = ?, answer = ?, ride_id = COALESCE(?, ride_id),"
                " request = CASE WHEN ? THEN request END, updated_at = ? WHERE idempotency_key = ?",
                (state.value, _json(answer), ride_id, keep_request, _iso(now), idempotency_key),
            ).rowcount
        if updated == 0:
            raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
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

    def entry(self, idempotency_key: str) -> JournalEntry:
        """The journal entry for a key. Raises UnknownJournalEntry."""
        row = self._db.execute("SELECT * FROM rides WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        if row is None:
            raise UnknownJournalEntry(f"乗車記録がありません: {idempotency_key}")
        return _entry(row)

    def entry_for_ride(self, ride_id: int) -> JournalEntry | None:
        row = self._db.execute("SELECT * FROM rides WHERE ride_id = ?", (ride_id,)).fetchone()
        return None if row is None else _entry(row)

    def entries(self, limit: int = 50) -> list[JournalEntry]:
        """The latest entries, newest first."""
        rows = self._db.execute("SELECT * FROM rides ORDER BY sequence DESC LIMIT ?", (limit,)).fetchall()
        return [_entry(row) for row in rows]

    def unanswered(self) -> list[JournalEntry]:
        """Boardings sent (or about to be) that the server has not answered, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM rides WHERE state = ? ORDER BY sequence", (JournalState.SENDING.value,)
        ).fetchall()
        return [_entry(row) for row in rows]
