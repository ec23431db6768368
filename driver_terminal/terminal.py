"""The terminal as a whole: its identity, key, local journal and API client, and the driver's actions.

The CLI is a thin shell over this module; the kiosk (issue 5) is meant to be another. Every boarding is
numbered and journalled locally before it is sent, and an unanswered one can be re-sent with the same
number and Idempotency-Key (`resend_unanswered`), so a lost answer never turns into a second ride.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from driver_terminal.card import CardReader, prove_with_pin, read_certificates
from driver_terminal.client import (
    ApiClient,
    ApiError,
    ApiUnreachable,
    ChallengePurpose,
    Clock,
    RetryPolicy,
    Ride,
    RideStatus,
    TerminalCredentials,
    UnexpectedResponse,
    api_root,
    system_clock,
)
from driver_terminal.keys import load_key, load_or_generate_key
from driver_terminal.store import (
    AlreadyEnrolled,
    JournalEntry,
    JournalState,
    TerminalIdentity,
    TerminalStore,
)


class NotEnrolled(Exception):
    """The data directory holds no enrolled terminal."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(f"この端末はまだ登録されていません（{data_dir}）。先に enrol を実行してください。")
        self.data_dir = data_dir


class BoardingUnanswered(Exception):
    """A numbered boarding got no final answer (network down, server error). It is kept in the journal
    with its key and can be re-sent; the rider must not be treated as boarded until then."""

    def __init__(self, entry: JournalEntry, cause: Exception) -> None:
        super().__init__(f"boarding #{entry.sequence} unanswered: {cause}")
        self.entry = entry
        self.cause = cause


@dataclass(frozen=True)
class Boarding:
    ride: Ride
    entry: JournalEntry


@dataclass(frozen=True)
class ResendOutcome:
    """What happened to one re-sent boarding: a ride, a refusal, or still no answer."""

    entry: JournalEntry
    ride: Ride | None = None
    refusal: ApiError | None = None
    still_unanswered: Exception | None = None


_JOURNAL_STATE = {
    RideStatus.BOARDED: JournalState.BOARDED,
    RideStatus.COMPLETED: JournalState.COMPLETED,
    RideStatus.VOIDED: JournalState.VOIDED,
}


def normalise_enrolment_code(code: str) -> str:
    """The code as typed, without spaces and in capitals (the API ignores hyphens and case)."""
    return "".join(code.split()).upper()


def enrol_terminal(
    data_dir: Path,
    api_url: str,
    enrolment_code: str,
    *,
    http: httpx.Client | None = None,
    clock: Clock = system_clock,
    sleep: Callable[[float], None] = time.sleep,
    lang: str = "ja",
    retry: RetryPolicy | None = None,
) -> TerminalIdentity:
    """Enrol this device with a one-time code: make (or reuse) its key, send the public half, keep the
    identity. A store that is already enrolled stays as it is.

    Raises AlreadyEnrolled, ApiError (terminal.enrolment_invalid), ApiUnreachable, key errors.
    """
    root = api_root(api_url)
    with TerminalStore.open(data_dir) as store:
        existing = store.identity()
        if existing is not None:
            raise AlreadyEnrolled(f"この端末はすでに登録されています（端末番号 {existing.terminal_id}）")
        # A key left by an enrolment whose answer was lost is reused: the public half may already be
        # on the server, and it is never replaced silently.
        key = load_or_generate_key(data_dir)
        with ApiClient(root, http, lang=lang, clock=clock, sleep=sleep, retry=retry) as client:
            enrolment = client.enrol(normalise_enrolment_code(enrolment_code), key.public_key_b64())
        identity = TerminalIdentity(
            terminal_id=enrolment.terminal_id,
            api_url=root,
            operator_id=enrolment.operator_id,
            vehicle_id=enrolment.vehicle_id,
            municipality_id=enrolment.municipality_id,
            enrolled_at=clock(),
        )
        store.save_identity(identity)
        return identity


class Terminal:
    """An enrolled terminal ready to work: open it with `Terminal.open(data_dir)`."""

    def __init__(self, store: TerminalStore, client: ApiClient, identity: TerminalIdentity, clock: Clock):
        self.store = store
        self.client = client
        self.identity = identity
        self._clock = clock

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        http: httpx.Client | None = None,
        clock: Clock = system_clock,
        sleep: Callable[[float], None] = time.sleep,
        lang: str = "ja",
        retry: RetryPolicy | None = None,
    ) -> Terminal:
        """Open the enrolled terminal in `data_dir`. Raises NotEnrolled and the key errors."""
        if not data_dir.is_dir():
            raise NotEnrolled(data_dir)
        store = TerminalStore.open(data_dir)
        try:
            identity = store.identity()
            if identity is None:
                raise NotEnrolled(data_dir)
            credentials = TerminalCredentials(identity.terminal_id, load_key(data_dir))
        except BaseException:
            store.close()
            raise
        client = ApiClient(
            identity.api_url,
            http,
            credentials=credentials,
            lang=lang,
            clock=clock,
            sleep=sleep,
            retry=retry,
        )
        return cls(store, client, identity, clock)

    def close(self) -> None:
        self.client.close()
        self.store.close()

    def __enter__(self) -> Terminal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- boarding --

    def board(
        self,
        card: CardReader,
        *,
        pin: str | None,
        driver_code: str | None = None,
        trip_ref: str | None = None,
    ) -> Boarding:
        """Board the card's holder: with `pin`, the card signs a fresh challenge; without, a PIN-less tap
        (the API refuses it unless the program allows it).

        The sequence number and Idempotency-Key are committed locally before the ride is sent.
        Raises CardProblem (nothing numbered), ApiError for a refusal (journalled as refused),
        BoardingUnanswered (journalled, re-send later), ApiUnreachable if no challenge could be had.
        """
        certificates = read_certificates(card)  # fails fast when the card is not on the reader
        if pin is None:
            proof = certificates
        else:
            challenge = self.client.challenge(ChallengePurpose.BOARD)
            proof = prove_with_pin(card, challenge, pin, certificates=certificates)
        request: dict[str, Any] = {"card": proof.as_json()}
        if driver_code:
            request["driver_code"] = driver_code
        if trip_ref:
            request["trip_ref"] = trip_ref
        entry = self.store.begin_ride(request, self._clock())
        return self._send_boarding(entry, request)

    def _send_boarding(self, entry: JournalEntry, request: dict[str, Any]) -> Boarding:
        try:
            ride = self.client.board(
                sequence=entry.sequence,
                card=request["card"],
                idempotency_key=entry.idempotency_key,
                driver_code=request.get("driver_code"),
                trip_ref=request.get("trip_ref"),
            )
        except ApiError as error:
            if error.is_refusal:
                self.store.record_answer(
                    entry.idempotency_key, state=JournalState.REFUSED, answer=error.body, now=self._clock()
                )
                raise
            kept = self.store.record_answer(
                entry.idempotency_key, state=JournalState.SENDING, answer=error.body, now=self._clock()
            )
            raise BoardingUnanswered(kept, error) from error
        except (ApiUnreachable, UnexpectedResponse) as error:
            raise BoardingUnanswered(entry, error) from error
        recorded = self.store.record_answer(
            entry.idempotency_key,
            state=_JOURNAL_STATE[ride.status],
            answer=ride.raw,
            now=self._clock(),
            ride_id=ride.ride_id,
        )
        return Boarding(ride, recorded)

    def resend_unanswered(self) -> list[ResendOutcome]:
        """Send every unanswered boarding again, oldest first, with its own number and key.

        A boarding the server already recorded comes back as that ride (replayed); one it never saw is
        recorded now or refused (e.g. challenge.expired: the rider was not boarded).
        """
        outcomes: list[ResendOutcome] = []
        for entry in self.store.unanswered():
            if entry.request is None:
                continue
            try:
                boarding = self._send_boarding(entry, entry.request)
            except ApiError as error:
                outcomes.append(ResendOutcome(self.store.entry(entry.idempotency_key), refusal=error))
            except BoardingUnanswered as error:
                outcomes.append(ResendOutcome(error.entry, still_unanswered=error.cause))
            else:
                outcomes.append(ResendOutcome(boarding.entry, ride=boarding.ride))
        return outcomes

    # -- after boarding --

    def _follow(self, ride: Ride) -> Ride:
        self.store.update_ride(
            ride.ride_id, state=_JOURNAL_STATE[ride.status], answer=ride.raw, now=self._clock()
        )
        return ride

    def set_fare(self, ride_id: int, meter_fare: int) -> Ride:
        """Record the meter fare at alighting; the Ride says what the rider pays.

        Raises ValueError for a fare outside 0..1,000,000 yen, ApiError, ApiUnreachable.
        """
        if not 0 <= meter_fare <= 1_000_000:
            raise ValueError("meter_fare must be 0..1,000,000 yen")
        return self._follow(self.client.fare(ride_id, meter_fare))

    def void(self, ride_id: int, reason: str) -> Ride:
        """Cancel a ride within the program's window. Raises ApiError (ride.void_window_passed, …)."""
        if not reason.strip():
            raise ValueError("a reason is required")
        return self._follow(self.client.void(ride_id, reason.strip()))

    def look_up(self, ride_id: int) -> Ride:
        """The ride as the server has it now (the journal follows). Raises ApiError (ride.not_found)."""
        return self._follow(self.client.ride(ride_id))
