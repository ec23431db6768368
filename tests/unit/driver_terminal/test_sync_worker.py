"""The background sync: longer waits after each failure (capped, jittered), back to normal after a
success, and the kiosk told whether the API can be reached."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from driver_terminal.client import RetryPolicy
from driver_terminal.sync import Backoff, Connectivity, SyncWorker, work_once
from driver_terminal.terminal import Terminal, enrol_terminal
from tests.unit.driver_terminal.fakes import API_URL, FakeApi, MovableClock, enrolment_json
from tests.unit.driver_terminal.test_snapshot import payload, public_b64, signed


def test_waits_grow_after_each_failure_and_stop_at_a_minute() -> None:
    backoff = Backoff(rng=random.Random(5))
    waits = [backoff.next_wait() for _ in range(10)]
    tops = [min(2.0**n, 60.0) for n in range(10)]
    assert all(top / 2 <= wait <= top for wait, top in zip(waits, tops, strict=True))
    backoff.reset()
    assert backoff.next_wait() <= 1.0


def enrolled_terminal(tmp_path: Path, api: FakeApi, key: Ed25519PrivateKey) -> Terminal:
    enrol = FakeApi().on(
        "POST /terminals/enrol",
        httpx.Response(201, json={**enrolment_json(7), "snapshot_public_key": public_b64(key)}),
    )
    enrol_terminal(tmp_path, API_URL, "ABCD-EFGH-JKLM", http=enrol.http(), clock=MovableClock())
    return Terminal.open(
        tmp_path, http=api.http(), clock=MovableClock(), sleep=lambda _s: None, retry=RetryPolicy(attempts=1)
    )


def test_an_unreachable_api_puts_the_terminal_offline_and_backs_off(tmp_path: Path) -> None:
    api = FakeApi().on("GET /terminals/snapshot", httpx.ConnectError("no signal"))
    connectivity = Connectivity()
    worker = SyncWorker(lambda: terminal, connectivity, backoff=Backoff(rng=random.Random(1)))
    with enrolled_terminal(tmp_path, api, Ed25519PrivateKey.generate()) as terminal:
        first, second = worker.round(terminal), worker.round(terminal)
    assert connectivity.online is False
    assert first <= 1.0 < second <= 2.0
    assert worker.last is not None
    assert worker.last.reached_api is False


def test_a_round_that_reaches_the_api_fetches_the_snapshot_and_comes_back_online(
    tmp_path: Path, issuer: object
) -> None:
    key = Ed25519PrivateKey.generate()
    api = FakeApi().on("GET /terminals/snapshot", httpx.Response(200, json=signed(key, payload(issuer))))
    connectivity = Connectivity(online=False)
    worker = SyncWorker(lambda: terminal, connectivity, idle_wait=30.0)
    with enrolled_terminal(tmp_path, api, key) as terminal:
        wait = worker.round(terminal)
        assert terminal.snapshot() is not None
    assert (connectivity.online, wait) == (True, 30.0)


def test_a_forged_snapshot_is_not_kept_but_the_api_was_reached(tmp_path: Path, issuer: object) -> None:
    api = FakeApi().on(
        "GET /terminals/snapshot",
        httpx.Response(200, json=signed(Ed25519PrivateKey.generate(), payload(issuer))),
    )
    with enrolled_terminal(tmp_path, api, Ed25519PrivateKey.generate()) as terminal:
        result = work_once(terminal)
        assert terminal.stored_snapshot() is None
    assert (result.reached_api, result.error) == (True, "snapshot.invalid")


@pytest.mark.parametrize("online", [True, False])
def test_connectivity_remembers_the_last_answer(online: bool) -> None:
    connectivity = Connectivity(online=not online)
    connectivity.mark(online)
    assert connectivity.online is online
