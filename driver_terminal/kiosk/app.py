"""The kiosk: one page for the car's tablet (10-inch, landscape, touch) and the JSON it talks to.

The page is served from 127.0.0.1 only and needs no network beyond the terminal itself: its script and
styles are local, nothing comes from a CDN. Every action goes through `driver_terminal.terminal`, so the
kiosk decides nothing the CLI would decide differently. Requests are handled one at a time (a car has one
screen); the background sync runs in its own thread with its own connection to the local store.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import httpx
from flask import Flask, Response, abort, current_app, jsonify, render_template, request

from driver_terminal.card import CardProblem, WrongPin
from driver_terminal.client import (
    ApiError,
    ApiUnreachable,
    Clock,
    RetryPolicy,
    UnexpectedResponse,
    system_clock,
)
from driver_terminal.keys import TerminalKeyError
from driver_terminal.kiosk.reader import CardSlot, VirtualCardSlot
from driver_terminal.kiosk.texts import catalogue, text
from driver_terminal.messages import rider_message, sync_explanation
from driver_terminal.snapshot import OfflineRefusal
from driver_terminal.store import AlreadyEnrolled, OutboxRecord, StoreError, UnknownJournalEntry
from driver_terminal.sync import Connectivity, SyncWorker
from driver_terminal.terminal import (
    BoardingUnanswered,
    NotEnrolled,
    RideFacts,
    RideRefused,
    ShiftRefused,
    Terminal,
    enrol_terminal,
)

log = logging.getLogger(__name__)

JAPAN: Final = ZoneInfo("Asia/Tokyo")
LANGUAGES: Final = ("ja", "en")
# The rider waits in the car: one quick retry, then the terminal decides offline.
BOARDING_RETRY: Final = RetryPolicy(attempts=2, first_delay=0.2, max_delay=1.0)
KIOSK_TIMEOUT: Final = httpx.Timeout(5.0, connect=2.0)
OPEN_TRIP_FACT: Final = "open_trip"
LAST_DRIVER_FACT: Final = "last_driver"
_CODE: Final = re.compile(r"[A-Za-z0-9-]{1,40}")


@dataclass
class KioskContext:
    """What the kiosk works with; tests build their own (a WSGI transport to the API, a virtual reader)."""

    data_dir: Path
    api_url: str | None = None
    slot: CardSlot = field(default_factory=VirtualCardSlot)
    http: httpx.Client | None = None
    clock: Clock = system_clock
    connectivity: Connectivity = field(default_factory=Connectivity)
    worker: SyncWorker | None = None
    lang: str = "ja"
    dev_reader: bool = False
    background: bool = True  # run the SyncWorker (tests drive the sync themselves)
    _local: threading.local = field(default_factory=threading.local)

    def open_terminal(self) -> Terminal:
        return Terminal.open(self.data_dir, http=self.http, clock=self.clock, retry=BOARDING_RETRY)

    @contextmanager
    def terminal(self) -> Iterator[Terminal]:
        """This thread's terminal, opened once (SQLite connections stay in their thread)."""
        found: Terminal | None = getattr(self._local, "terminal", None)
        if found is None:
            found = self.open_terminal()
            self._local.terminal = found
        yield found

    def close(self) -> None:
        found: Terminal | None = getattr(self._local, "terminal", None)
        if found is not None:
            found.close()
            self._local.terminal = None

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def start_worker(self) -> None:
        if not self.background:
            return
        if self.worker is None:
            self.worker = SyncWorker(self.open_terminal, self.connectivity)
        self.worker.start()


def _lang() -> str:
    wanted = request.args.get("lang") or request.headers.get("X-Kiosk-Lang") or ""
    return wanted if wanted in LANGUAGES else _context().lang


def _context() -> KioskContext:
    context: KioskContext = current_app.extensions["kiosk"]
    return context


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


SEQUENCE_MAX = 2**53
"""Far beyond any journal, and within what SQLite keeps in an INTEGER."""


def _sequence(value: Any) -> int:
    """A journal sequence from the page: a positive whole number (digits in a string will do); anything
    else is 0, which names no ride, so the caller answers "ride not found" rather than failing."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= SEQUENCE_MAX:
        return 0
    return value


def _refusal(code: str, message: str, status: int = 200, **extra: Any) -> tuple[Response, int]:
    return jsonify({"refusal": {"code": code, "message": message, **extra}}), status


def _local_time(instant: datetime) -> str:
    return instant.astimezone(JAPAN).strftime("%H:%M")


def _local_day_and_time(instant: datetime, lang: str) -> str:
    local = instant.astimezone(JAPAN)
    return local.strftime("%d %b %H:%M") if lang == "en" else f"{local.month}月{local.day}日 {local:%H:%M}"


def _age_band(age_band: str, lang: str) -> str:
    match = re.fullmatch(r"(\d+)代", age_band)
    return f"{match.group(1)}s" if match and lang == "en" else age_band


def _amount(unit: str, value: int | None, lang: str) -> str:
    if value is None:
        return "-"
    if unit == "yen":
        return f"¥{value:,}" if lang == "en" else f"{value:,}円"
    if unit == "ticket":
        return f"{value} ticket{'s' if value != 1 else ''}" if lang == "en" else f"{value}枚"
    return f"{value} ride{'s' if value != 1 else ''}" if lang == "en" else f"{value}回"


def facts_json(facts: RideFacts, lang: str) -> dict[str, Any]:
    """One boarding as the page shows it."""
    return {
        "sequence": facts.sequence,
        "ride_id": facts.ride_id,
        "state": facts.state.value,
        "confirmed": facts.confirmed,
        "pending": facts.pending,
        "offline": facts.offline,
        "given_name": facts.given_name,
        "age_band": _age_band(facts.age_band, lang),
        "program_name": facts.program_name,
        "balance": _amount(facts.unit, facts.balance, lang),
        "boarded_at": _local_time(facts.boarded_at),
        "meter_fare": facts.meter_fare,
        "subsidy": facts.subsidy,
        "rider_share": facts.rider_share,
        "fare_provisional": facts.fare_provisional,
        "trip_ref": facts.trip_ref,
        "review": facts.review.value if facts.review is not None else None,
    }


def _attention_json(terminal: Terminal, record: OutboxRecord, lang: str) -> dict[str, Any]:
    heading, advice = sync_explanation(record.status.value, lang) or ("", "")
    board_sequence = record.board_sequence or record.sequence
    name, at = "", record.created_at
    try:
        entry = terminal.store.entry_by_sequence(board_sequence)
    except UnknownJournalEntry:
        pass
    else:
        name = str((entry.answer or {}).get("given_name") or "")
        at = entry.created_at
    suffix = text("name_suffix", lang)
    return {
        "sequence": record.sequence,
        "kind": record.kind,
        "status": record.status.value,
        "heading": heading,
        "advice": advice,
        "title": record.title or "",
        "ride": text("attention_ride", lang, time=_local_time(at), name=f"{name} {suffix}".strip()),
    }


def create_kiosk_app(context: KioskContext) -> Flask:
    """The kiosk's Flask app over `context` (see KioskContext)."""
    app = Flask(__name__)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Japanese stays readable in the JSON
    app.extensions["kiosk"] = context

    @app.after_request
    def _no_store(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:"
        )
        return response

    @app.get("/")
    def page() -> str:
        lang = _lang()
        return render_template("kiosk.html", lang=lang, texts=catalogue(lang), other=catalogue(_other(lang)))

    @app.get("/api/state")
    def state() -> Any:
        lang = _lang()
        try:
            with context.terminal() as terminal:
                terminal.client.lang = lang
                status = terminal.status()
                shift = status.shift
                last_driver = terminal.store.fact(LAST_DRIVER_FACT)
                return jsonify(
                    {
                        "enrolled": True,
                        "terminal_id": status.identity.terminal_id,
                        "online": context.connectivity.online,
                        "shift": None
                        if shift is None
                        else {
                            "driver_code": shift.driver_code,
                            "driver_name": shift.driver_name or shift.driver_code,
                            "started_at": _local_time(shift.started_at),
                        },
                        "last_driver": last_driver,
                        "open_trip": terminal.store.fact(OPEN_TRIP_FACT) or None,
                        "on_board": [facts_json(f, lang) for f in terminal.on_board()],
                        "pending": status.pending_records,
                        "attention": [
                            _attention_json(terminal, r, lang) for r in terminal.needing_attention()
                        ],
                        "last_sync": _local_time(status.last_sync_at) if status.last_sync_at else None,
                        "now": _local_time(context.clock()),
                        "snapshot_until": _local_day_and_time(status.snapshot_valid_until, lang)
                        if status.snapshot_valid_until and status.snapshot_usable
                        else None,
                        "card_present": context.slot.card() is not None,
                    }
                )
        except NotEnrolled:
            return jsonify({"enrolled": False, "online": context.connectivity.online})

    @app.get("/api/reader")
    def reader() -> Any:
        return jsonify({"present": context.slot.card() is not None})

    @app.post("/api/enrol")
    def enrol() -> Any:
        lang = _lang()
        code = str(_body().get("code") or "").strip()
        api_url = str(_body().get("api_url") or context.api_url or "")
        if not _CODE.fullmatch(code.replace(" ", "")) or not api_url:
            return _refusal(
                "terminal.enrolment_invalid", rider_message("terminal.enrolment_invalid", lang), 422
            )
        try:
            identity = enrol_terminal(
                context.data_dir, api_url, code, http=context.http, clock=context.clock, lang=lang
            )
        except ApiError as error:
            return _refusal(error.code, error.title, 422)
        except (ApiUnreachable, UnexpectedResponse):
            return _refusal("terminal.unreachable", rider_message("terminal.unreachable", lang), 503)
        except (AlreadyEnrolled, TerminalKeyError, StoreError) as error:
            return _refusal("terminal.setup", str(error), 409)
        context.close()
        context.start_worker()
        return jsonify(
            {
                "terminal_id": identity.terminal_id,
                "message": text("setup_done", lang, terminal_id=identity.terminal_id),
            }
        )

    @app.post("/api/shift/start")
    def shift_start() -> Any:
        lang = _lang()
        code = str(_body().get("driver_code") or "").strip()
        with context.terminal() as terminal:
            terminal.client.lang = lang
            try:
                shift = terminal.start_shift(code)
            except ShiftRefused as error:
                return _refusal(error.code, rider_message(error.code, lang), 422)
            except ApiError as error:
                return _refusal(error.code, error.title, 422)
            terminal.store.set_fact(LAST_DRIVER_FACT, shift.driver_code)
            context.connectivity.mark(shift.server_shift_id is not None, context.clock())
            context.wake_worker()
            return jsonify(
                {
                    "driver_name": shift.driver_name or shift.driver_code,
                    "offline": shift.server_shift_id is None,
                }
            )

    @app.post("/api/shift/end")
    def shift_end() -> Any:
        lang = _lang()
        with context.terminal() as terminal:
            try:
                shift, rides = terminal.end_shift()
            except ShiftRefused as error:
                return _refusal(error.code, rider_message(error.code, lang), 409)
            terminal.store.set_fact(OPEN_TRIP_FACT, "")
            pending = terminal.store.count_pending()
        context.wake_worker()
        return jsonify(
            {
                "summary": text("signout_summary", lang, rides=rides),
                "pending": text("signout_pending", lang, n=pending) if pending else "",
                "driver_name": shift.driver_name or shift.driver_code,
            }
        )

    @app.post("/api/trip")
    def trip() -> Any:
        with context.terminal() as terminal:
            if _body().get("open"):
                # The whole UUID: twelve hex characters alone can be twelve digits, the shape of a
                # My Number, which no stored value should ever have.
                trip_ref = f"trip-{terminal.identity.terminal_id}-{uuid.uuid4().hex}"
                terminal.store.set_fact(OPEN_TRIP_FACT, trip_ref)
                return jsonify({"open_trip": trip_ref})
            terminal.store.set_fact(OPEN_TRIP_FACT, "")
            return jsonify({"open_trip": None})

    @app.post("/api/board/check")
    def board_check() -> Any:
        lang = _lang()
        card = context.slot.card()
        if card is None:
            return _refusal("offline.card_gone", rider_message("offline.card_gone", lang))
        with context.terminal() as terminal:
            try:
                return jsonify({"pin_needed": terminal.pin_needed(card)})
            except CardProblem as error:
                return _refusal(error.code, error.message(lang))

    @app.post("/api/board")
    def board() -> Any:
        lang = _lang()
        pin = _body().get("pin")
        card = context.slot.card()
        if card is None:
            return _refusal("offline.card_gone", rider_message("offline.card_gone", lang))
        with context.terminal() as terminal:
            terminal.client.lang = lang
            shift = terminal.store.current_shift()
            try:
                boarding = terminal.board(
                    card,
                    pin=str(pin) if pin is not None else None,
                    driver_code=shift.driver_code if shift is not None else None,
                    trip_ref=terminal.store.fact(OPEN_TRIP_FACT) or None,
                    online=context.connectivity.online,
                    on_unanswered="abandon",
                )
            except WrongPin as error:
                return _refusal(error.code, error.message(lang), tries_left=error.tries_left, retry_pin=True)
            except CardProblem as error:
                return _refusal(error.code, error.message(lang), retry_pin=error.code == "pin.malformed")
            except ApiError as error:
                return _refusal(error.code, rider_message(error.code, lang, title=error.title))
            except OfflineRefusal as error:
                return _refusal(error.code, rider_message(error.code, lang, **error.params))
            except RideRefused as error:
                return _refusal(error.code, rider_message(error.code, lang))
            except BoardingUnanswered as error:  # not with "abandon"; kept for completeness
                return _refusal(
                    "offline.no_snapshot", rider_message("offline.no_snapshot", lang), cause=str(error)
                )
            finally:
                _follow_reachability(context, terminal)
            facts = boarding.facts
        outcome = "already" if boarding.already_on_board else ("confirmed" if facts.confirmed else "pending")
        if outcome == "pending":
            context.wake_worker()
        return jsonify({"outcome": outcome, "ride": facts_json(facts, lang)})

    @app.get(f"/api/ride/<int(min=1, max={SEQUENCE_MAX}):sequence>")  # others name no ride: 404
    def ride(sequence: int) -> Any:
        with context.terminal() as terminal:
            try:
                return jsonify(facts_json(terminal.facts(sequence), _lang()))
            except UnknownJournalEntry:
                abort(404)

    @app.post("/api/alight")
    def alight() -> Any:
        lang = _lang()
        body = _body()
        fare = body.get("meter_fare")
        if isinstance(fare, bool) or not isinstance(fare, int) or not 0 <= fare <= 1_000_000:
            return _refusal("validation", text("fare_heading", lang), 422)
        with context.terminal() as terminal:
            terminal.client.lang = lang
            online = context.connectivity.online
            try:
                if body.get("trip_ref"):
                    done = terminal.alight_trip(str(body["trip_ref"]), fare, online=online)
                    terminal.store.set_fact(OPEN_TRIP_FACT, "")
                else:
                    done = [terminal.alight(_sequence(body.get("sequence")), fare, online=online)]
            except RideRefused as error:
                return _refusal(error.code, rider_message(error.code, lang))
            except ApiError as error:
                return _refusal(error.code, rider_message(error.code, lang, title=error.title))
            except UnknownJournalEntry:
                return _refusal("ride.not_found", rider_message("ride.not_found", lang), 404)
        if any(not facts.confirmed or facts.fare_provisional for facts in done):
            context.wake_worker()
        return jsonify({"rides": [facts_json(facts, lang) for facts in done]})

    @app.get("/api/voidable")
    def voidable() -> Any:
        with context.terminal() as terminal:
            return jsonify({"rides": [facts_json(f, _lang()) for f in terminal.voidable()]})

    @app.post("/api/void")
    def void() -> Any:
        lang = _lang()
        body = _body()
        reason = str(body.get("reason") or "").strip()
        with context.terminal() as terminal:
            terminal.client.lang = lang
            try:
                facts = terminal.cancel(
                    _sequence(body.get("sequence")), reason, online=context.connectivity.online
                )
            except ValueError:
                return _refusal("validation", text("void_reason_heading", lang), 422)
            except RideRefused as error:
                return _refusal(error.code, rider_message(error.code, lang))
            except ApiError as error:
                return _refusal(error.code, rider_message(error.code, lang, title=error.title))
            except UnknownJournalEntry:
                return _refusal("ride.not_found", rider_message("ride.not_found", lang), 404)
        context.wake_worker()
        return jsonify({"ride": facts_json(facts, lang)})

    @app.post("/api/sync")
    def sync_now() -> Any:
        context.wake_worker()
        return jsonify({"woken": context.worker is not None})

    @app.post("/api/attention/ack")
    def acknowledge() -> Any:
        asked = _body().get("sequences")
        sequences = [n for n in map(_sequence, asked if isinstance(asked, list) else []) if n]
        with context.terminal() as terminal:
            terminal.acknowledge(sequences)
        return jsonify({"acknowledged": sequences})

    if context.dev_reader:

        @app.post("/dev/reader/insert")
        def insert_card() -> Any:
            slot = context.slot
            if not isinstance(slot, VirtualCardSlot):
                abort(404)
            try:
                slot.insert(str(_body().get("card") or ""))
            except LookupError:
                abort(404)
            return jsonify({"present": True})

        @app.post("/dev/reader/eject")
        def eject_card() -> Any:
            if isinstance(context.slot, VirtualCardSlot):
                context.slot.eject()
            return jsonify({"present": False})

    return app


def _other(lang: str) -> str:
    return "en" if lang == "ja" else "ja"


def _follow_reachability(context: KioskContext, terminal: Terminal) -> None:
    """A boarding that got no answer puts the kiosk offline (the worker brings it back)."""
    if terminal.api_answered is False:
        context.connectivity.mark(False, context.clock())
        context.wake_worker()
    elif terminal.api_answered is True:
        context.connectivity.mark(True, context.clock())


def serve_kiosk(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    card_dir: Path | None = None,
    lang: str = "ja",
    api_url: str | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the kiosk until interrupted, with the background sync running (one request at a time)."""
    from werkzeug.serving import make_server

    slot: CardSlot
    if card_dir is not None:
        slot = VirtualCardSlot(card_dir)
    else:
        from driver_terminal.kiosk.reader import PcscCardSlot

        slot = PcscCardSlot()
    context = KioskContext(
        data_dir=data_dir,
        api_url=api_url,
        slot=slot,
        http=httpx.Client(timeout=KIOSK_TIMEOUT),
        lang=lang,
        dev_reader=card_dir is not None,
    )
    try:
        context.open_terminal().close()
        context.start_worker()
    except NotEnrolled:
        pass  # the set-up screen enrols; the worker starts then
    server = make_server(host, port, create_kiosk_app(context), threaded=False)
    if on_ready is not None:
        on_ready(server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if context.worker is not None:
            context.worker.stop()
        context.close()
        if context.http is not None:
            context.http.close()
