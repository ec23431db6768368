"""The local store: sequence numbers never repeat, a boarding is numbered and committed before it is
sent, and the card proof is kept only until the server answers."""

from __future__ import annotations

import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driver_terminal.store import (
    STORE_FILENAME,
    AlreadyEnrolled,
    JournalState,
    RecordStatus,
    SequenceMoved,
    TerminalIdentity,
    TerminalStore,
    UnknownJournalEntry,
)
from tests.unit.driver_terminal.fakes import NOW

REQUEST: dict[str, Any] = {"card": {"certificate": "Y2VydA==", "chain": [], "nonce": None, "signature": None}}


def identity(terminal_id: int = 7) -> TerminalIdentity:
    return TerminalIdentity(
        terminal_id=terminal_id,
        api_url="http://api.test",
        operator_id=2,
        vehicle_id=3,
        municipality_id=1,
        enrolled_at=NOW,
    )


def test_sequence_numbers_never_repeat_across_restarts(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        first = [store.allocate_sequence() for _ in range(3)]
    with TerminalStore.open(tmp_path) as store:
        after_restart = store.allocate_sequence()
    assert first == [1, 2, 3]
    assert after_restart == 4


def test_a_boarding_is_committed_before_it_is_sent(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as device, TerminalStore.open(tmp_path) as onlooker:
        entry = device.begin_ride(REQUEST, NOW)
        # Another connection sees it at once: it is on disk, not in an open transaction.
        seen = onlooker.entry(entry.idempotency_key)
    assert (seen.sequence, seen.state, seen.request) == (1, JournalState.SENDING, REQUEST)


def test_crash_before_the_answer_leaves_the_boarding_resendable_and_its_number_used(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        lost = store.begin_ride(REQUEST, NOW)
    # power cut: nothing was recorded after sending
    with TerminalStore.open(tmp_path) as store:
        assert [e.idempotency_key for e in store.unanswered()] == [lost.idempotency_key]
        assert store.begin_ride(REQUEST, NOW).sequence == lost.sequence + 1


def test_every_boarding_gets_its_own_idempotency_key(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        keys = {store.begin_ride(REQUEST, NOW).idempotency_key for _ in range(5)}
    assert len(keys) == 5


def test_final_answer_erases_the_card_proof_kept_for_resending(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.begin_ride(REQUEST, NOW)
        answered = store.record_answer(
            entry.idempotency_key, state=JournalState.BOARDED, answer={"ride_id": 41}, now=NOW, ride_id=41
        )
    assert (answered.state, answered.ride_id, answered.request) == (JournalState.BOARDED, 41, None)
    assert answered.answer == {"ride_id": 41}


def test_a_server_error_keeps_the_card_proof_for_resending(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.begin_ride(REQUEST, NOW)
        kept = store.record_answer(
            entry.idempotency_key, state=JournalState.SENDING, answer={"code": "unavailable"}, now=NOW
        )
        assert store.unanswered() == [kept]
    assert kept.request == REQUEST


def test_a_ride_is_followed_after_boarding(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.begin_ride(REQUEST, NOW)
        store.record_answer(entry.idempotency_key, state=JournalState.BOARDED, answer={}, now=NOW, ride_id=41)
        assert store.update_ride(41, state=JournalState.COMPLETED, answer={"meter_fare": 1840}, now=NOW)
        assert not store.update_ride(99, state=JournalState.VOIDED, answer={}, now=NOW)
        followed = store.entry_for_ride(41)
    assert followed is not None
    assert (followed.state, followed.answer) == (JournalState.COMPLETED, {"meter_fare": 1840})


def test_unknown_idempotency_key_is_reported(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store, pytest.raises(UnknownJournalEntry):
        store.record_answer("ride-nope", state=JournalState.REFUSED, answer=None, now=NOW)


def test_a_store_belongs_to_one_terminal_for_life(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        store.save_identity(identity(7))
        with pytest.raises(AlreadyEnrolled, match="端末番号 7"):
            store.save_identity(identity(8))
    with TerminalStore.open(tmp_path) as store:
        assert store.identity() == identity(7)


def test_store_survives_power_cuts_with_wal_and_full_sync(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        journal_mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = store._db.execute("PRAGMA synchronous").fetchone()[0]
    assert (journal_mode, synchronous) == ("wal", 2)  # 2 is FULL


def test_store_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    TerminalStore.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / STORE_FILENAME).stat().st_mode) == 0o600


def test_two_processes_sharing_the_store_never_get_the_same_number(tmp_path: Path) -> None:
    TerminalStore.open(tmp_path).close()
    got: list[list[int]] = [[], []]

    def allocate(into: list[int]) -> None:
        with TerminalStore.open(tmp_path) as store:
            into.extend(store.allocate_sequence() for _ in range(50))

    workers = [threading.Thread(target=allocate, args=(numbers,)) for numbers in got]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(got[0] + got[1]) == list(range(1, 101))


@settings(max_examples=25)
@given(st.lists(st.sampled_from(["allocate", "board", "restart"]), min_size=1, max_size=20))
def test_numbers_only_ever_go_up_whatever_happens(steps: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = TerminalStore.open(Path(directory))
        handed_out: list[int] = []
        try:
            for step in steps:
                if step == "restart":
                    store.close()
                    store = TerminalStore.open(Path(directory))
                elif step == "allocate":
                    handed_out.append(store.allocate_sequence())
                else:
                    handed_out.append(store.begin_ride(REQUEST, NOW).sequence)
        finally:
            store.close()
    assert handed_out == list(range(1, len(handed_out) + 1))


# -- schema 2: the outbox and the offline facts --

SCHEMA_1 = """
CREATE TABLE identity (id INTEGER PRIMARY KEY CHECK (id = 1), terminal_id INTEGER NOT NULL,
    api_url TEXT NOT NULL, operator_id INTEGER, vehicle_id INTEGER, municipality_id INTEGER,
    enrolled_at TEXT NOT NULL);
CREATE TABLE sequence (id INTEGER PRIMARY KEY CHECK (id = 1), next_value INTEGER NOT NULL);
INSERT INTO sequence (id, next_value) VALUES (1, 5);
CREATE TABLE rides (idempotency_key TEXT PRIMARY KEY, sequence INTEGER NOT NULL UNIQUE, state TEXT NOT NULL,
    ride_id INTEGER, request TEXT, answer TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
INSERT INTO rides VALUES ('ride-old', 4, 'boarded', 41, NULL, '{}', '2026-10-15T01:00:00+00:00',
    '2026-10-15T01:00:00+00:00');
PRAGMA user_version = 1;
"""


def board_record_for(sequence: int, key: str = "") -> dict[str, Any]:
    return {"kind": "board", "sequence": sequence, "idempotency_key": key or f"ride-{sequence}", "card": {}}


def test_a_schema_1_file_is_brought_up_to_date_when_opened(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / STORE_FILENAME
    with sqlite3.connect(path) as old:
        old.executescript(SCHEMA_1)
    with TerminalStore(path) as store:
        old_entry = store.entry("ride-old")
        assert (old_entry.sequence, old_entry.ride_id, old_entry.offline) == (4, 41, False)
        assert store.next_sequence() == 5
        assert store.count_pending() == 0
    with sqlite3.connect(path) as onlooker:
        version = onlooker.execute("PRAGMA user_version").fetchone()[0]
    assert version == 2


def test_an_offline_boarding_and_its_record_are_kept_together(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.keep_offline_boarding(
            record=board_record_for(1),
            answer={"given_name": "花子"},
            now=NOW,
            fingerprint="ab",
            program_code="p",
            units_held=1,
        )
        [record] = store.pending_records()
    assert (entry.state, entry.offline, entry.pending, entry.confirmed) == (
        JournalState.BOARDED,
        True,
        True,
        False,
    )
    assert (record.sequence, record.kind, record.body["idempotency_key"]) == (
        1,
        "board",
        entry.idempotency_key,
    )


def test_an_offline_boarding_signed_for_a_number_already_taken_keeps_nothing(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        store.allocate_sequence()  # a fare record took number 1 meanwhile
        with pytest.raises(SequenceMoved):
            store.keep_offline_boarding(
                record=board_record_for(1),
                answer={},
                now=NOW,
                fingerprint="ab",
                program_code="p",
                units_held=1,
            )
        assert (store.entries(), store.pending_records(), store.next_sequence()) == ([], [], 2)


def test_sync_answers_are_kept_and_the_journal_learns_the_ride(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.keep_offline_boarding(
            record=board_record_for(1), answer={}, now=NOW, fingerprint="ab", program_code="p", units_held=1
        )
        kept = store.keep_sync_results(
            [
                {"sequence": 1, "status": "accepted", "ride_id": 77, "code": None, "title": None},
                {"sequence": 99, "status": "accepted", "ride_id": 1, "code": None, "title": None},
            ],
            NOW,
        )
        confirmed = store.entry(entry.idempotency_key)
    assert [(r.sequence, r.status) for r in kept] == [(1, RecordStatus.ACCEPTED)]
    assert (confirmed.ride_id, confirmed.confirmed, confirmed.pending) == (77, True, False)


def test_conflicts_wait_until_the_driver_has_read_them(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        store.keep_offline_boarding(
            record=board_record_for(1), answer={}, now=NOW, fingerprint="ab", program_code="p", units_held=1
        )
        store.keep_sync_results(
            [
                {
                    "sequence": 1,
                    "status": "conflict",
                    "ride_id": 8,
                    "code": "entitlement.exhausted",
                    "title": "使い切り",
                }
            ],
            NOW,
        )
        [waiting] = store.needing_attention()
        store.acknowledge([waiting.sequence], NOW)
        assert store.needing_attention() == []
    assert (waiting.code, waiting.title) == ("entitlement.exhausted", "使い切り")


def test_an_abandoned_boarding_that_was_sent_gets_a_void_record_in_the_same_transaction(
    tmp_path: Path,
) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.begin_ride(REQUEST, NOW)
        store.abandon_boarding(
            entry.idempotency_key,
            answer={"code": "offline.no_snapshot"},
            now=NOW,
            build_void=lambda n: {"kind": "void", "sequence": n, "idempotency_key": "v", "board_sequence": 1},
        )
        [void] = store.pending_records()
        refused = store.entry(entry.idempotency_key)
    assert (void.sequence, void.board_sequence) == (2, 1)
    assert (refused.state, refused.request) == (JournalState.REFUSED, None)


def test_a_void_for_a_boarding_the_api_never_received_needs_no_reading(tmp_path: Path) -> None:
    with TerminalStore.open(tmp_path) as store:
        entry = store.begin_ride(REQUEST, NOW)
        store.abandon_boarding(
            entry.idempotency_key,
            answer={"code": "offline.no_snapshot"},
            now=NOW,
            build_void=lambda n: {"kind": "void", "sequence": n, "idempotency_key": "v", "board_sequence": 1},
        )
        store.keep_sync_results(
            [{"sequence": 2, "status": "rejected", "ride_id": None, "code": "ride.not_found", "title": "x"}],
            NOW,
        )
        assert store.needing_attention() == []
