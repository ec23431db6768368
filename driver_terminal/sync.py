"""Background work of a terminal in a car: send what was recorded offline, keep the snapshot fresh, notice
when the network comes back (DESIGN §7).

`SyncWorker` runs in its own thread with its own `Terminal` (SQLite wants one connection per thread). After
a failure it waits longer each time (1 s, 2 s, 4 s … up to a minute, with jitter so that many cars coming
out of the same tunnel do not all call at once); after a success it is idle until woken or until the next
snapshot refresh is due. `Connectivity` is what the screens and the boarding path read to know whether to
try the API at all.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from driver_terminal.client import ApiError, ApiUnreachable, UnexpectedResponse
from driver_terminal.snapshot import SnapshotInvalid
from driver_terminal.terminal import SyncReport, Terminal

log = logging.getLogger(__name__)

SNAPSHOT_REFRESH: Final = timedelta(minutes=10)
IDLE_WAIT: Final = 30.0


class Connectivity:
    """Whether the API answered last time anyone asked (thread-safe)."""

    def __init__(self, online: bool = True) -> None:
        self._online = online
        self._changed_at: datetime | None = None
        self._lock = threading.Lock()

    @property
    def online(self) -> bool:
        with self._lock:
            return self._online

    def mark(self, online: bool, at: datetime | None = None) -> None:
        with self._lock:
            if online != self._online:
                self._changed_at = at
            self._online = online

    @property
    def changed_at(self) -> datetime | None:
        with self._lock:
            return self._changed_at


@dataclass
class Backoff:
    """Exponential waits with full jitter: each wait is drawn from [first·2ⁿ / 2, first·2ⁿ], capped."""

    first: float = 1.0
    ceiling: float = 60.0
    failures: int = 0
    rng: random.Random | None = None

    def next_wait(self) -> float:
        """The wait after one more failure."""
        top = min(self.first * 2.0**self.failures, self.ceiling)
        self.failures += 1
        draw: float = (self.rng or random).random()
        return top / 2 + (top / 2) * draw

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class RoundResult:
    """What one round of background work did."""

    reached_api: bool
    report: SyncReport | None = None
    snapshot_refreshed: bool = False
    error: str | None = None


def work_once(terminal: Terminal, *, refresh_after: timedelta = SNAPSHOT_REFRESH) -> RoundResult:
    """One round: tell the API about shifts, re-send boardings left unanswered (by a crash), send the
    outbox, refresh the snapshot when it is old. Never raises for the network: the result says."""
    try:
        terminal.tell_shifts()
        terminal.resend_unanswered()
        report = terminal.sync() if terminal.store.count_pending() else None
        refreshed = False
        stored = terminal.stored_snapshot()
        if stored is None or terminal.now() - stored.fetched_at >= refresh_after:
            terminal.refresh_snapshot()
            refreshed = True
        elif report is None:
            terminal.client.health()  # nothing else went out: is the API there?
    except (ApiUnreachable, UnexpectedResponse) as error:
        return RoundResult(False, error=type(error).__name__)
    except ApiError as error:
        return RoundResult(error.is_refusal, error=error.code)
    except SnapshotInvalid as error:
        log.warning("snapshot refused: %s", error)
        return RoundResult(True, error="snapshot.invalid")
    return RoundResult(True, report=report, snapshot_refreshed=refreshed)


class SyncWorker:
    """Runs `work_once` in a daemon thread, with backoff after failures; `wake()` asks for a round now."""

    def __init__(
        self,
        open_terminal: Callable[[], Terminal],
        connectivity: Connectivity,
        *,
        backoff: Backoff | None = None,
        idle_wait: float = IDLE_WAIT,
        on_round: Callable[[RoundResult], None] | None = None,
    ) -> None:
        self._open_terminal = open_terminal
        self.connectivity = connectivity
        self.backoff = backoff or Backoff()
        self.idle_wait = idle_wait
        self._on_round = on_round
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: RoundResult | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="terminal-sync", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _run(self) -> None:
        terminal = self._open_terminal()
        try:
            while not self._stop.is_set():
                wait = self.round(terminal)
                self._wake.wait(timeout=wait)
                self._wake.clear()
        finally:
            terminal.close()

    def round(self, terminal: Terminal) -> float:
        """One round of work; returns how long to wait before the next."""
        result = work_once(terminal)
        self.last = result
        self.connectivity.mark(result.reached_api, terminal.now())
        if self._on_round is not None:
            self._on_round(result)
        if not result.reached_api:
            return self.backoff.next_wait()
        self.backoff.reset()
        return 1.0 if terminal.store.count_pending() else self.idle_wait
