"""The terminal as a whole: its identity, key, local store and API client, and the driver's actions.

The CLI and the kiosk are thin shells over this module.

Boarding (DESIGN §6, §7):
- every boarding is numbered and journalled locally before anything is sent; the number and its
  Idempotency-Key are on disk first, so a lost answer never turns into a second ride;
- online, the card signs the API's challenge and the API decides; the terminal keeps the next challenge
  the API hands back with each answer, so the next PIN boarding needs one round trip;
- when the API cannot be reached (or the terminal already knows it is offline), the terminal decides from
  its signed snapshot, within the program's offline limits, and keeps a record signed with its own key
  under the same number, in the same transaction that tells the journal the rider is on board (pending);
- a boarding that could not be accepted either way, after an online attempt that got no answer, is
  cancelled with a signed void record, so that if the API did record it after all, it is voided.

Records wait in the outbox until `sync` sends them (in sequence order, at most 500 at a time); the API's
answer to each is kept, and conflicts and rejections wait for the driver to read them.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import httpx

from driver_terminal.card import (
    CardProblem,
    CardReader,
    check_pin_format,
    prove_with_pin,
    read_certificates,
    sign_for_offline,
)
from driver_terminal.client import (
    ApiClient,
    ApiError,
    ApiUnreachable,
    CardProof,
    Challenge,
    ChallengePurpose,
    Clock,
    RecordResult,
    RetryPolicy,
    Ride,
    RideStatus,
    TerminalCredentials,
    UnexpectedResponse,
    api_root,
    system_clock,
)
from driver_terminal.fares import share_of_shared_fare, split_fare, units_to_hold
from driver_terminal.faults import checkpoint
from driver_terminal.keys import TerminalKey, load_key, load_or_generate_key
from driver_terminal.records import board_record, fare_record, offline_board_message, void_record
from driver_terminal.snapshot import (
    OfflineRefusal,
    Snapshot,
    SnapshotBinding,
    SnapshotInvalid,
    card_signature_valid,
    check_card,
    fingerprint,
    verify_snapshot,
)
from driver_terminal.store import (
    AlreadyEnrolled,
    JournalEntry,
    JournalState,
    OutboxRecord,
    RecordStatus,
    SequenceMoved,
    Shift,
    StoredSnapshot,
    TerminalIdentity,
    TerminalStore,
)

JAPAN: Final = ZoneInfo("Asia/Tokyo")
# A rider boarded this long ago without a fare is no longer "in the car" (the API settles fareless rides
# after the program's fareless_after_hours, 12 by default).
ON_BOARD_WINDOW: Final = timedelta(hours=12)
# A challenge kept from the last answer is used only while it has at least this long to live.
CHALLENGE_MARGIN: Final = timedelta(seconds=60)
SYNC_BATCH: Final = 500
DEFAULT_VOID_WINDOW_MINUTES: Final = 10
ABANDON_REASON: Final = "通信断のため乗車を受け付けできず(端末が自動で取消)"
SEQUENCE_ATTEMPTS: Final = 3

Unanswered = Literal["keep", "abandon"]


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


class RideRefused(Exception):
    """The terminal itself refuses an action on a ride it journalled (already voided, window passed…).
    `code` words it through driver_terminal.messages."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class ShiftRefused(Exception):
    """The API does not know the driver code."""

    def __init__(self, code: str = "shift.unknown_driver") -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class RideFacts:
    """What the screens show for one boarding: confirmed by the API, or provisional (pending sync)."""

    sequence: int
    idempotency_key: str
    ride_id: int | None
    state: JournalState
    confirmed: bool
    pending: bool
    offline: bool
    given_name: str
    age_band: str
    program_name: str
    unit: str
    balance: int | None
    boarded_at: datetime
    meter_fare: int | None
    subsidy: int | None
    rider_share: int | None
    fare_provisional: bool
    trip_ref: str | None
    review: RecordStatus | None  # conflict or rejected at sync

    @classmethod
    def from_entry(cls, entry: JournalEntry) -> RideFacts:
        answer: Mapping[str, Any] = entry.answer or {}
        boarded = answer.get("boarded_at")
        review = (
            entry.board_sync if entry.board_sync in (RecordStatus.CONFLICT, RecordStatus.REJECTED) else None
        )
        fare_pending = entry.fare_sync is RecordStatus.PENDING or bool(answer.get("fare_provisional"))
        return cls(
            sequence=entry.sequence,
            idempotency_key=entry.idempotency_key,
            ride_id=entry.ride_id,
            state=entry.state,
            confirmed=entry.confirmed,
            pending=entry.pending,
            offline=entry.offline,
            given_name=str(answer.get("given_name") or ""),
            age_band=str(answer.get("age_band") or ""),
            program_name=str(answer.get("program_name") or ""),
            unit=str(answer.get("unit") or "ride"),
            balance=_optional_int(answer.get("balance")),
            boarded_at=datetime.fromisoformat(str(boarded)) if boarded else entry.created_at,
            meter_fare=_optional_int(answer.get("meter_fare")),
            subsidy=_optional_int(answer.get("subsidy")),
            rider_share=_optional_int(answer.get("rider_share")),
            fare_provisional=fare_pending and entry.state is JournalState.COMPLETED,
            trip_ref=entry.trip_ref,
            review=review,
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None or isinstance(value, bool) else int(value)


@dataclass(frozen=True)
class Boarding:
    """A boarding the screen can say "done" for: confirmed online, or kept offline (pending)."""

    entry: JournalEntry
    ride: Ride | None  # the API's answer (online); None when accepted offline or already on board
    already_on_board: bool = False

    @property
    def facts(self) -> RideFacts:
        return RideFacts.from_entry(self.entry)

    @property
    def confirmed(self) -> bool:
        return self.entry.confirmed


@dataclass(frozen=True)
class ResendOutcome:
    """What happened to one re-sent boarding: a ride, a refusal, or still no answer."""

    entry: JournalEntry
    ride: Ride | None = None
    refusal: ApiError | None = None
    still_unanswered: Exception | None = None


@dataclass(frozen=True)
class SyncReport:
    """One sync: the API's answers, and what is still waiting."""

    sent: int
    results: tuple[RecordResult, ...]
    gaps: tuple[int, ...]
    still_pending: int
    needing_attention: tuple[OutboxRecord, ...] = field(default_factory=tuple)

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status.value == status)


@dataclass(frozen=True)
class TerminalStatus:
    identity: TerminalIdentity
    next_sequence: int
    pending_records: int
    unanswered: int
    needing_attention: int
    snapshot_fetched_at: datetime | None
    snapshot_valid_until: datetime | None
    snapshot_usable: bool
    last_sync_at: datetime | None
    shift: Shift | None


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
    identity and the API's snapshot key. A store that is already enrolled stays as it is.

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
            snapshot_public_key=enrolment.snapshot_public_key,
        )
        store.save_identity(identity)
        return identity


class Terminal:
    """An enrolled terminal ready to work: open it with `Terminal.open(data_dir)`. One per thread."""

    def __init__(self, store: TerminalStore, client: ApiClient, identity: TerminalIdentity, clock: Clock):
        self.store = store
        self.client = client
        self.identity = identity
        self._clock = clock
        self._key = client.credentials.key if client.credentials is not None else None
        self._challenge: Challenge | None = None
        self._snapshot: Snapshot | None = None
        self._snapshot_seen: tuple[str, str] | None = None
        # Whether the API answered the last boarding's calls (None: not asked); the kiosk follows it.
        self.api_answered: bool | None = None

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

    def now(self) -> datetime:
        return self._clock()

    # -- snapshot --

    def snapshot(self) -> Snapshot | None:
        """The stored snapshot, verified against the pinned key (None if there is none or it fails)."""
        stored = self.store.stored_snapshot()
        if stored is None:
            return None
        seen = (stored.signature, stored.fetched_at.isoformat())
        if self._snapshot is not None and self._snapshot_seen == seen:
            return self._snapshot
        pinned = self.store.identity()
        key = pinned.snapshot_public_key if pinned is not None else None
        if key is None:
            return None
        try:
            snapshot = verify_snapshot(
                {"snapshot": stored.payload, "signature": stored.signature},
                key,
                terminal_id=self.identity.terminal_id,
            )
        except SnapshotInvalid:
            return None
        self._snapshot, self._snapshot_seen = snapshot, seen
        return snapshot

    def usable_snapshot(self) -> Snapshot | None:
        snapshot = self.snapshot()
        return snapshot if snapshot is not None and snapshot.usable_at(self._clock()) else None

    def refresh_snapshot(self) -> Snapshot:
        """Fetch a new snapshot, check it against the key pinned at enrolment and keep it.

        A terminal enrolled before the API sent its snapshot key learns it once from /snapshot-key.
        Raises SnapshotInvalid (nothing is kept), ApiError, ApiUnreachable, UnexpectedResponse.
        """
        if self.identity.snapshot_public_key is None:
            self.store.pin_snapshot_key(self.client.snapshot_key())
            refreshed = self.store.identity()
            assert refreshed is not None
            self.identity = refreshed
        pinned = self.identity.snapshot_public_key
        assert pinned is not None
        body = self.client.snapshot()
        snapshot = verify_snapshot(body, pinned, terminal_id=self.identity.terminal_id)
        self.store.save_snapshot(snapshot.payload, snapshot.signature, pinned, self._clock())
        return snapshot

    def stored_snapshot(self) -> StoredSnapshot | None:
        return self.store.stored_snapshot()

    # -- boarding --

    def pin_needed(self, card: CardReader) -> bool:
        """Whether this card's program needs the PIN, as far as the snapshot knows (unknown cards: yes).

        Raises CardUnreadable when the card is not on the reader."""
        snapshot = self.snapshot()
        if snapshot is None:
            return True
        binding = snapshot.binding(fingerprint(read_certificates(card).certificate))
        return binding is None or not binding.tap_allowed

    def board(
        self,
        card: CardReader,
        *,
        pin: str | None,
        driver_code: str | None = None,
        trip_ref: str | None = None,
        online: bool = True,
        on_unanswered: Unanswered = "keep",
    ) -> Boarding:
        """Board the card's holder. With `pin`, the card signs the API's challenge (online) or the
        terminal's own nonce bound to the record's number (offline, or after an online attempt that got
        no answer); without, a PIN-less tap (accepted only where the program allows it).

        A card already on board in this car (boarded here, no fare yet) is not boarded twice: that
        boarding is returned with `already_on_board`. With `online=False` the API is not tried at all.
        When the API gives no answer, the snapshot decides; if it cannot accept, `on_unanswered` says
        whether the numbered boarding is kept for `resend_unanswered` ("keep": raises
        BoardingUnanswered) or cancelled by a void record ("abandon": raises the OfflineRefusal).

        Raises CardProblem (nothing numbered), ApiError for the API's refusal (journalled as refused),
        OfflineRefusal, RideRefused("ride.still_checking"), BoardingUnanswered.
        """
        if pin is not None:
            check_pin_format(pin)
        certificates = read_certificates(card)  # fails fast when the card is not on the reader
        card_fingerprint = fingerprint(certificates.certificate)
        now = self._clock()
        previous = self.store.latest_for_card(card_fingerprint, now - ON_BOARD_WINDOW)
        if previous is not None and previous.state is JournalState.BOARDED:
            return Boarding(previous, None, already_on_board=True)
        if previous is not None and previous.state is JournalState.SENDING:
            raise RideRefused("ride.still_checking")
        snapshot = self.usable_snapshot()
        binding = snapshot.binding(card_fingerprint) if snapshot is not None else None

        online_proof: CardProof | None = None
        self.api_answered = None
        if online:
            if pin is None:
                online_proof = certificates
            else:
                try:
                    challenge = self._take_challenge()
                except (ApiUnreachable, UnexpectedResponse):
                    online, self.api_answered = False, False  # no challenge, no online boarding
                except ApiError as error:
                    if error.is_refusal:
                        raise
                    online, self.api_answered = False, False
                else:
                    online_proof = prove_with_pin(card, challenge, pin, certificates=certificates)

        def sign_offline(sequence: int) -> dict[str, Any]:
            return self._offline_card(card, certificates, pin, sequence)

        if online and online_proof is not None:
            request: dict[str, Any] = {"card": online_proof.as_json()}
            if pin is None and snapshot is not None:
                request["offline_card"] = certificates.as_json()  # a tap needs no signature offline
            if driver_code:
                request["driver_code"] = driver_code
            if trip_ref:
                request["trip_ref"] = trip_ref
            entry = self.store.begin_ride(
                request,
                now,
                fingerprint=card_fingerprint,
                program_code=binding.program_code if binding is not None else None,
                trip_ref=trip_ref,
            )
            checkpoint("board.numbered")
            return self._send_boarding(
                entry,
                request,
                on_unanswered=on_unanswered,
                sign_offline=sign_offline if snapshot is not None else None,
            )
        if snapshot is None:
            raise OfflineRefusal(
                "offline.no_snapshot" if self.snapshot() is None else "offline.snapshot_expired"
            )
        for _attempt in range(SEQUENCE_ATTEMPTS):
            # The card signs the terminal's own nonce for the number this boarding will take (a wrong
            # PIN is refused here, before anything is numbered).
            sequence = self.store.next_sequence()
            try:
                return self._accept_offline(
                    sequence=sequence,
                    idempotency_key=None,
                    card_json=sign_offline(sequence),
                    driver_code=driver_code,
                    trip_ref=trip_ref,
                )
            except SequenceMoved:
                continue  # a fare or void record took the number meanwhile: sign for the next one
        raise OfflineRefusal("signature.invalid")

    def _take_challenge(self) -> Challenge:
        kept, self._challenge = self._challenge, None
        if kept is not None and kept.expires_at - CHALLENGE_MARGIN > self._clock():
            return kept
        return self.client.challenge(ChallengePurpose.BOARD)

    def _offline_card(
        self, card: CardReader, certificates: CardProof, pin: str | None, sequence: int
    ) -> dict[str, Any]:
        if pin is None:
            return certificates.as_json()
        nonce = secrets.token_bytes(32)
        message = offline_board_message(nonce, self.identity.terminal_id, sequence)
        signature = sign_for_offline(card, message, pin)
        proof = CardProof(certificates.certificate, certificates.chain, nonce.hex(), signature)
        return proof.as_json()

    def _send_boarding(
        self,
        entry: JournalEntry,
        request: dict[str, Any],
        *,
        on_unanswered: Unanswered = "keep",
        sign_offline: Callable[[int], dict[str, Any]] | None = None,
    ) -> Boarding:
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
                self.api_answered = True
                self.store.record_answer(
                    entry.idempotency_key, state=JournalState.REFUSED, answer=error.body, now=self._clock()
                )
                raise
            self.api_answered = False
            kept = self.store.record_answer(
                entry.idempotency_key, state=JournalState.SENDING, answer=error.body, now=self._clock()
            )
            return self._unanswered(kept, request, error, on_unanswered, sign_offline)
        except (ApiUnreachable, UnexpectedResponse) as error:
            self.api_answered = False
            return self._unanswered(entry, request, error, on_unanswered, sign_offline)
        self.api_answered = True
        checkpoint("board.answered")
        if ride.next_challenge is not None:
            self._challenge = ride.next_challenge
        recorded = self.store.record_answer(
            entry.idempotency_key,
            state=_JOURNAL_STATE[ride.status],
            answer=ride.raw,
            now=self._clock(),
            ride_id=ride.ride_id,
            units_held=ride.units_held,
        )
        return Boarding(recorded, ride)

    def _unanswered(
        self,
        entry: JournalEntry,
        request: dict[str, Any],
        cause: Exception,
        on_unanswered: Unanswered,
        sign_offline: Callable[[int], dict[str, Any]] | None,
    ) -> Boarding:
        refusal: OfflineRefusal
        try:
            offline_card = request.get("offline_card")
            if offline_card is None and sign_offline is not None:
                # Only now does the card sign for offline use, so an online boarding costs one signature
                # (a real card takes a good part of a second for each). The PIN was accepted a moment ago.
                try:
                    offline_card = sign_offline(entry.sequence)
                except CardProblem as error:
                    raise OfflineRefusal("offline.card_gone") from error
            if offline_card is None:
                raise OfflineRefusal(
                    "offline.no_snapshot" if self.snapshot() is None else "offline.snapshot_expired"
                )
            return self._accept_offline(
                sequence=entry.sequence,
                idempotency_key=entry.idempotency_key,
                card_json=offline_card,
                driver_code=request.get("driver_code"),
                trip_ref=request.get("trip_ref"),
            )
        except OfflineRefusal as error:
            refusal = error
        if on_unanswered == "keep":
            raise BoardingUnanswered(entry, cause) from cause
        never_reached = isinstance(cause, ApiUnreachable) and not cause.maybe_delivered
        self.abandon(entry, refusal.code, maybe_recorded=not never_reached)
        raise refusal from cause

    def abandon(self, entry: JournalEntry, code: str, *, maybe_recorded: bool = True) -> JournalEntry:
        """Cancel a numbered boarding the driver was told did not happen. If the API may have recorded
        it (the request may have reached it), a signed void record makes sure it is voided there."""
        was_sent = entry.state is JournalState.SENDING and maybe_recorded

        def build(sequence: int) -> dict[str, Any]:
            return void_record(
                self._terminal_key(),
                sequence=sequence,
                idempotency_key=f"void-{uuid.uuid4()}",
                recorded_at=self._clock(),
                board_sequence=entry.sequence,
                reason=ABANDON_REASON,
            )

        return self.store.abandon_boarding(
            entry.idempotency_key,
            answer={"code": code, "abandoned": True},
            now=self._clock(),
            build_void=build if was_sent else None,
        )

    def _terminal_key(self) -> TerminalKey:
        if self._key is None:
            raise NotEnrolled(self.store.path.parent)
        return self._key

    def _accept_offline(
        self,
        *,
        sequence: int,
        idempotency_key: str | None,
        card_json: Mapping[str, Any],
        driver_code: str | None,
        trip_ref: str | None,
    ) -> Boarding:
        """Decide a boarding from the snapshot and keep it signed (see the module docstring).

        Raises OfflineRefusal, SequenceMoved (new boardings only).
        """
        now = self._clock()
        snapshot = self.snapshot()
        if snapshot is None:
            raise OfflineRefusal("offline.no_snapshot")
        if not snapshot.usable_at(now):
            raise OfflineRefusal("offline.snapshot_expired")
        certificate = base64.b64decode(card_json["certificate"])
        chain = [base64.b64decode(der) for der in card_json.get("chain") or []]
        card = check_card(snapshot, certificate, chain, now)
        binding = snapshot.binding(card.fingerprint)
        if binding is None:
            raise OfflineRefusal("card.not_bound")
        signature = card_json.get("signature")
        if signature is None:
            if not binding.tap_allowed:
                raise OfflineRefusal("card.tap_not_allowed")
        else:
            message = offline_board_message(
                bytes.fromhex(str(card_json["nonce"])), self.identity.terminal_id, sequence
            )
            if not card_signature_valid(card, message, base64.b64decode(signature)):
                raise OfflineRefusal("signature.invalid")
        program = snapshot.program(binding.program_code)
        if program is None:
            raise OfflineRefusal("entitlement.none")
        balance = binding.balance - self._consumed_since(snapshot.issued_at, binding)
        held = units_to_hold(program.subsidy, binding.unit, balance)
        if held <= 0:
            raise OfflineRefusal("entitlement.exhausted")
        if self._offline_rides_today(binding.fingerprint, now) >= binding.offline_max_rides_per_day:
            raise OfflineRefusal("limit.offline_per_day", limit=binding.offline_max_rides_per_day)
        key = idempotency_key or f"ride-{uuid.uuid4()}"
        record = board_record(
            self._terminal_key(),
            sequence=sequence,
            idempotency_key=key,
            recorded_at=now,
            card=card_json,
            driver_code=driver_code,
            trip_ref=trip_ref,
        )
        answer = {
            "ride_id": None,
            "status": RideStatus.BOARDED.value,
            "given_name": binding.given_name,
            "age_band": binding.age_band,
            "program_name": program.name,
            "program_name_en": program.name_en,
            "unit": binding.unit,
            "balance": balance - held,
            "units_held": held,
            "boarded_at": now.isoformat(),
            "meter_fare": None,
            "subsidy": None,
            "rider_share": None,
            "replayed": False,
            "provisional": True,
        }
        entry = self.store.keep_offline_boarding(
            record=record,
            answer=answer,
            now=now,
            fingerprint=binding.fingerprint,
            program_code=binding.program_code,
            units_held=held,
            idempotency_key=idempotency_key,
            trip_ref=trip_ref,
        )
        return Boarding(entry, None)

    def _consumed_since(self, since: datetime, binding: SnapshotBinding) -> int:
        """Units this terminal's own boardings of the card took after the snapshot was made."""
        used = 0
        for entry in self.store.entries_since(since):
            if entry.fingerprint != binding.fingerprint or entry.program_code not in (
                None,
                binding.program_code,
            ):
                continue
            if entry.state in (JournalState.REFUSED, JournalState.VOIDED):
                continue
            if entry.units_used is not None:
                used += entry.units_used
            elif entry.units_held is not None:
                used += entry.units_held
            else:
                used += 1  # unanswered: assume it took something
        return used

    def _offline_rides_today(self, card_fingerprint: str, now: datetime) -> int:
        midnight = datetime.combine(now.astimezone(JAPAN).date(), datetime.min.time(), tzinfo=JAPAN)
        return sum(
            1
            for entry in self.store.entries_since(midnight)
            if entry.fingerprint == card_fingerprint
            and entry.offline
            and entry.state not in (JournalState.REFUSED, JournalState.VOIDED)
        )

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

    def on_board(self) -> list[RideFacts]:
        """Riders in the car now (boarded on this terminal, no fare yet), oldest first."""
        return [RideFacts.from_entry(e) for e in self.store.on_board(self._clock() - ON_BOARD_WINDOW)]

    def facts(self, sequence: int) -> RideFacts:
        """The journal's view of one boarding. Raises UnknownJournalEntry."""
        return RideFacts.from_entry(self.store.entry_by_sequence(sequence))

    # -- after boarding, by ride id (the CLI) --

    def _follow(self, ride: Ride) -> Ride:
        if ride.next_challenge is not None:
            self._challenge = ride.next_challenge
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

    # -- after boarding, by the journal's number (the kiosk; works offline) --

    def alight(
        self, sequence: int, meter_fare: int, *, online: bool = True, shared: bool | None = None
    ) -> RideFacts:
        """The meter fare for the boarding numbered `sequence`: sent online when the API knows the ride,
        else kept as a signed fare record with a provisional split from the snapshot's formula.

        Raises ValueError (fare outside 0..1,000,000 yen), RideRefused (ride.voided,
        ride.already_completed), ApiError (the API's refusal), UnknownJournalEntry.
        """
        if not 0 <= meter_fare <= 1_000_000:
            raise ValueError("meter_fare must be 0..1,000,000 yen")
        entry = self.store.entry_by_sequence(sequence)
        if entry.state is JournalState.VOIDED:
            raise RideRefused("ride.voided")
        if entry.state is JournalState.COMPLETED:
            if (entry.answer or {}).get("meter_fare") == meter_fare:
                return RideFacts.from_entry(entry)
            raise RideRefused("ride.already_completed")
        if entry.state is not JournalState.BOARDED:
            raise RideRefused("ride.not_found")
        if online and entry.ride_id is not None and not entry.pending:
            try:
                ride = self.client.fare(entry.ride_id, meter_fare)
            except (ApiUnreachable, UnexpectedResponse):
                pass
            except ApiError as error:
                if error.is_refusal:
                    raise
            else:
                self._follow(ride)
                return RideFacts.from_entry(self.store.entry(entry.idempotency_key))
        return self._fare_offline(entry, meter_fare, shared)

    def _fare_offline(self, entry: JournalEntry, meter_fare: int, shared: bool | None) -> RideFacts:
        now = self._clock()
        answer = dict(entry.answer or {})
        units_used: int | None = None
        snapshot = self.snapshot()
        program = snapshot.program(entry.program_code) if snapshot and entry.program_code else None
        if shared is None:
            shared = entry.trip_ref is not None and self._trip_size(entry.trip_ref) > 1
        held = entry.units_held if entry.units_held is not None else 1
        if program is not None:
            split = split_fare(
                program.subsidy, str(answer.get("unit") or "ride"), held, meter_fare, shared=shared
            )
            units_used = split.units_used
            answer.update(subsidy=split.subsidy, rider_share=split.rider_share)
            if isinstance(answer.get("balance"), int):
                answer["balance"] = int(answer["balance"]) + (held - split.units_used)
        else:
            answer.update(subsidy=None, rider_share=None)
        answer.update(
            status=RideStatus.COMPLETED.value,
            meter_fare=meter_fare,
            fare_provisional=True,
            alighted_at=now.isoformat(),
        )

        def build(sequence: int) -> dict[str, Any]:
            return fare_record(
                self._terminal_key(),
                sequence=sequence,
                idempotency_key=f"fare-{uuid.uuid4()}",
                recorded_at=now,
                board_sequence=entry.sequence,
                meter_fare=meter_fare,
            )

        with self.store.transaction():  # the number, the record and the journal: all on disk, or none
            self.store.add_record(build, now)
            updated = self.store.follow_entry(
                entry.idempotency_key,
                state=JournalState.COMPLETED,
                answer=answer,
                now=now,
                units_used=units_used,
            )
        return RideFacts.from_entry(updated)

    def _trip_size(self, trip_ref: str) -> int:
        since = self._clock() - ON_BOARD_WINDOW
        return sum(
            1
            for entry in self.store.entries_since(since)
            if entry.trip_ref == trip_ref and entry.state is not JournalState.REFUSED
        )

    def alight_trip(self, trip_ref: str, meter_fare: int, *, online: bool = True) -> list[RideFacts]:
        """A shared ride ends: the car's meter fare is divided among its riders still on board (whole yen,
        the remainder to the first) and each share is entered as that rider's fare."""
        riders = [facts for facts in self.on_board() if facts.trip_ref == trip_ref]
        if not riders:
            raise RideRefused("ride.not_found")
        shares = share_of_shared_fare(meter_fare, len(riders))
        return [
            self.alight(facts.sequence, share, online=online, shared=len(riders) > 1 or None)
            for facts, share in zip(riders, shares, strict=True)
        ]

    def cancel(self, sequence: int, reason: str, *, online: bool = True) -> RideFacts:
        """Void the boarding numbered `sequence` within the program's window: online when the API knows
        the ride, else a signed void record (the units come back to the provisional balance).

        Raises ValueError (no reason), RideRefused (ride.void_window_passed, ride.not_found), ApiError.
        """
        if not reason.strip():
            raise ValueError("a reason is required")
        entry = self.store.entry_by_sequence(sequence)
        if entry.state is JournalState.VOIDED:
            return RideFacts.from_entry(entry)
        if entry.state not in (JournalState.BOARDED, JournalState.COMPLETED):
            raise RideRefused("ride.not_found")
        now = self._clock()
        answer = dict(entry.answer or {})
        reference = answer.get("alighted_at") or answer.get("boarded_at")
        window = timedelta(minutes=self._void_window(entry))
        if reference and now > datetime.fromisoformat(str(reference)) + window:
            raise RideRefused("ride.void_window_passed")
        if online and entry.ride_id is not None and not entry.pending:
            try:
                ride = self.client.void(entry.ride_id, reason.strip())
            except (ApiUnreachable, UnexpectedResponse):
                pass
            except ApiError as error:
                if error.is_refusal:
                    raise
            else:
                self._follow(ride)
                return RideFacts.from_entry(self.store.entry(entry.idempotency_key))
        consumed = entry.units_used if entry.units_used is not None else entry.units_held
        if isinstance(answer.get("balance"), int) and consumed:
            answer["balance"] = int(answer["balance"]) + consumed
        answer.update(status=RideStatus.VOIDED.value)

        def build(number: int) -> dict[str, Any]:
            return void_record(
                self._terminal_key(),
                sequence=number,
                idempotency_key=f"void-{uuid.uuid4()}",
                recorded_at=now,
                board_sequence=entry.sequence,
                reason=reason.strip(),
            )

        with self.store.transaction():
            self.store.add_record(build, now)
            updated = self.store.follow_entry(
                entry.idempotency_key, state=JournalState.VOIDED, answer=answer, now=now, units_used=0
            )
        return RideFacts.from_entry(updated)

    def voidable(self) -> list[RideFacts]:
        """Boardings the driver may still void here (boarded or completed, in the window), newest first."""
        now = self._clock()
        found = []
        for entry in self.store.entries_since(now - ON_BOARD_WINDOW):
            if entry.state not in (JournalState.BOARDED, JournalState.COMPLETED):
                continue
            answer = entry.answer or {}
            reference = answer.get("alighted_at") or answer.get("boarded_at")
            if reference is None:
                continue
            if now <= datetime.fromisoformat(str(reference)) + timedelta(minutes=self._void_window(entry)):
                found.append(RideFacts.from_entry(entry))
        return list(reversed(found))

    def _void_window(self, entry: JournalEntry) -> int:
        snapshot = self.snapshot()
        binding = snapshot.binding(entry.fingerprint) if snapshot and entry.fingerprint else None
        return binding.void_window_minutes if binding is not None else DEFAULT_VOID_WINDOW_MINUTES

    # -- sync --

    def sync(self, *, confirm: bool = True) -> SyncReport:
        """Send the outbox in sequence order, 500 records at a time, and keep the API's answer to each.

        Safe to repeat and to interrupt: a record the API has already applied comes back as `duplicate`
        with its first answer. With `confirm`, rides whose records were just settled are looked up, so the
        journal shows the API's balance and amounts instead of the provisional ones.
        Raises ApiError, ApiUnreachable, UnexpectedResponse (what was answered before is kept).
        """
        results: list[RecordResult] = []
        gaps: tuple[int, ...] = ()
        sent = 0
        while True:
            batch = self.store.pending_records(SYNC_BATCH)
            if not batch:
                break
            checkpoint("sync.sending")
            answer = self.client.sync([record.body for record in batch])
            checkpoint("sync.answered")
            kept = self.store.keep_sync_results([r.as_json() for r in answer.results], self._clock())
            sent += len(batch)
            results.extend(answer.results)
            gaps = answer.gaps
            if not kept:
                break  # the API answered none of them: do not send the same batch in a loop
        now = self._clock()
        self.store.set_fact("last_sync_at", now.isoformat())
        if confirm:
            self._confirm(results)
        return SyncReport(
            sent=sent,
            results=tuple(results),
            gaps=gaps,
            still_pending=self.store.count_pending(),
            needing_attention=tuple(self.store.needing_attention()),
        )

    def _confirm(self, results: list[RecordResult]) -> None:
        ride_ids = {r.ride_id for r in results if r.ride_id is not None and r.status.value != "rejected"}
        for ride_id in sorted(ride_ids):
            entry = self.store.entry_for_ride(ride_id)
            if entry is None or entry.pending:
                continue
            try:
                ride = self.client.ride(ride_id)
            except (ApiError, ApiUnreachable, UnexpectedResponse):
                continue
            self.store.update_ride(
                ride_id, state=_JOURNAL_STATE[ride.status], answer=ride.raw, now=self._clock()
            )

    def needing_attention(self) -> list[OutboxRecord]:
        return self.store.needing_attention()

    def acknowledge(self, sequences: list[int]) -> None:
        self.store.acknowledge(sequences, self._clock())

    # -- shifts --

    def start_shift(self, driver_code: str) -> Shift:
        """The driver signs in. Offline the shift starts locally and the API is told later.

        Raises ShiftRefused for a driver code the API does not know, ApiError for other refusals.
        """
        code = driver_code.strip().upper()
        if not code:
            raise ShiftRefused()
        try:
            answer = self.client.start_shift(code)
        except (ApiUnreachable, UnexpectedResponse):
            return self.store.start_shift(code, None, None, self._clock())
        except ApiError as error:
            if error.status == 404:
                raise ShiftRefused() from error
            if error.is_refusal:
                raise
            return self.store.start_shift(code, None, None, self._clock())
        return self.store.start_shift(code, answer.driver_name, answer.shift_id, self._clock())

    def current_shift(self) -> Shift | None:
        return self.store.current_shift()

    def end_shift(self) -> tuple[Shift, int]:
        """The driver signs out: (the shift, the rides this terminal recorded during it). Offline the API
        is told later. Raises ShiftRefused when no shift is open."""
        shift = self.store.current_shift()
        if shift is None:
            raise ShiftRefused("shift.none")
        ended = self.store.end_shift(shift.local_id, self._clock())
        rides = sum(
            1
            for entry in self.store.entries_since(shift.started_at)
            if entry.state not in (JournalState.REFUSED, JournalState.VOIDED, JournalState.SENDING)
        )
        self.tell_shifts()
        return self.store.shift(ended.local_id), rides

    def tell_shifts(self) -> None:
        """Tell the API about shifts started or ended while offline (best effort; retried at next sync)."""
        for shift in self.store.shifts_to_tell():
            try:
                if shift.server_shift_id is None:
                    answer = self.client.start_shift(shift.driver_code)
                    self.store.shift_told(
                        shift.local_id, server_shift_id=answer.shift_id, driver_name=answer.driver_name
                    )
                    shift = self.store.shift(shift.local_id)
                if shift.ended_at is not None and not shift.end_sent and shift.server_shift_id is not None:
                    self.client.end_shift(shift.server_shift_id)
                    self.store.shift_told(shift.local_id, end_sent=True)
            except ApiError as error:
                if error.is_refusal:  # e.g. an unknown driver code typed offline: nothing more to tell
                    self.store.shift_told(shift.local_id, server_shift_id=-1, end_sent=True)
                    continue
                return
            except (ApiUnreachable, UnexpectedResponse):
                return

    # -- status --

    def status(self) -> TerminalStatus:
        snapshot = self.snapshot()
        stored = self.store.stored_snapshot()
        last_sync = self.store.fact("last_sync_at")
        return TerminalStatus(
            identity=self.identity,
            next_sequence=self.store.next_sequence(),
            pending_records=self.store.count_pending(),
            unanswered=len(self.store.unanswered()),
            needing_attention=len(self.store.needing_attention()),
            snapshot_fetched_at=stored.fetched_at if stored is not None else None,
            snapshot_valid_until=snapshot.valid_until if snapshot is not None else None,
            snapshot_usable=snapshot is not None and snapshot.usable_at(self._clock()),
            last_sync_at=datetime.fromisoformat(last_sync) if last_sync else None,
            shift=self.store.current_shift(),
        )
