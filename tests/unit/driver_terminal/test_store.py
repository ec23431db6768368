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


@settings(max_examples=25, deadline=None)
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
