"""A typed HTTP client for the voucher API, as the in-car terminal uses it.

- Every answer becomes a dataclass; every refusal an `ApiError(status, code, title, body)` whose title the
  API has already put in the reader's language (Accept-Language).
- The terminal's access token is fetched from its key when first needed, renewed shortly before it
  expires and once more if the API says it is no longer valid.
- Retries are bounded, with exponential backoff, and a retried write carries the SAME Idempotency-Key,
  so the API answers a retry with the first result instead of doing the work twice. Writes that are not
  idempotent on the server (enrolment, creating a terminal) are retried only when the connection was
  never made.

This module speaks HTTP only; it imports nothing from voucher_api.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx

from driver_terminal.keys import TerminalKey

API_PREFIX: Final = "/api/v1"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TOKEN_RENEWAL_MARGIN: Final = timedelta(seconds=30)
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
# The 401s that mean "get a new token"; other 401s (a card's bad signature) are answers to the request.
TOKEN_REJECTED_CODES: Final = frozenset({"auth.required", "auth.invalid_token"})

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The device's clock, timezone-aware UTC (the default for `clock=` parameters)."""
    return datetime.now(UTC)


# -- errors ---------------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of everything the client raises."""


class ApiError(ClientError):
    """The API answered with an error (a problem document, or at least an error status).

    `code` is the API's stable machine code (e.g. `entitlement.exhausted`); `title` is the sentence to
    show, localised by the API; `body` is the whole problem document.
    """

    def __init__(self, status: int, code: str, title: str, body: Mapping[str, Any]) -> None:
        super().__init__(f"{status} {code}: {title}")
        self.status = status
        self.code = code
        self.title = title
        self.body: dict[str, Any] = dict(body)

    @property
    def field_errors(self) -> dict[str, Any]:
        """Field errors of a validation problem (`errors`), empty otherwise."""
        errors = self.body.get("errors")
        return dict(errors) if isinstance(errors, Mapping) else {}

    @property
    def is_refusal(self) -> bool:
        """A 4xx: the API understood and said no; sending the same thing again will not change that."""
        return 400 <= self.status < 500


class ApiUnreachable(ClientError):
    """No answer from the API after every attempt (network down, server not listening, timeouts)."""

    def __init__(self, url: str, attempts: int, cause: Exception, *, maybe_delivered: bool = True) -> None:
        super().__init__(f"{url}: no answer after {attempts} attempt(s): {type(cause).__name__}: {cause}")
        self.url = url
        self.attempts = attempts
        self.cause = cause
        # False only when no attempt ever got a connection: then the API cannot have acted on it.
        self.maybe_delivered = maybe_delivered


class UnexpectedResponse(ClientError):
    """The API answered successfully but not in the shape of the contract."""


class NotSignedIn(ClientError):
    """A call needs a token but the client has neither terminal credentials nor a staff sign-in."""


# -- results --------------------------------------------------------------------------------------


class _Body:
    """Typed reads from a JSON object, raising UnexpectedResponse instead of KeyError/TypeError."""

    def __init__(self, what: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise UnexpectedResponse(f"{what}: expected a JSON object")
        self.what = what
        self.data: Mapping[str, Any] = data

    def _get(self, name: str) -> Any:
        if name not in self.data:
            raise UnexpectedResponse(f"{self.what}: missing {name!r}")
        return self.data[name]

    def integer(self, name: str) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UnexpectedResponse(f"{self.what}: {name!r} is not an integer")
        return value

    def optional_integer(self, name: str) -> int | None:
        return None if self.data.get(name) is None else self.integer(name)

    def text(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str):
            raise UnexpectedResponse(f"{self.what}: {name!r} is not a string")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise UnexpectedResponse(f"{self.what}: {name!r} is not a boolean")
        return value

    def instant(self, name: str) -> datetime:
        raw = self.text(name)
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError as error:
            raise UnexpectedResponse(f"{self.what}: {name!r} is not a date-time") from error
        if value.tzinfo is None:
            raise UnexpectedResponse(f"{self.what}: {name!r} has no time zone")
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise UnexpectedResponse(f"{self.what}: {name!r} is not a list of strings")
        return tuple(value)

    def b64(self, name: str) -> bytes:
        try:
            return base64.b64decode(self.text(name), validate=True)
        except ValueError as error:
            raise UnexpectedResponse(f"{self.what}: {name!r} is not base64") from error


E = TypeVar("E", bound=Enum)


def _enum(kind: type[E], what: str, value: str) -> E:
    try:
        return kind(value)
    except ValueError as error:
        raise UnexpectedResponse(f"{what}: unknown value {value!r}") from error


@dataclass(frozen=True)
class Health:
    status: str
    database: str
    broker: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_at: datetime
    roles: tuple[str, ...]
    municipality_id: int
    operator_id: int | None
    vehicle_id: int | None
    display_name: str

    def usable_at(self, now: datetime) -> bool:
        """Still good at `now`, with a margin so it does not expire in flight."""
        return now + TOKEN_RENEWAL_MARGIN < self.expires_at


@dataclass(frozen=True)
class Enrolment:
    terminal_id: int
    operator_id: int
    vehicle_id: int
    municipality_id: int | None
    snapshot_public_key: str | None = None  # the key that signs this terminal's offline snapshots


@dataclass(frozen=True)
class NewTerminal:
    terminal_id: int
    vehicle_id: int
    enrolment_code: str
    expires_at: datetime


class ChallengePurpose(StrEnum):
    BOARD = "board"
    ENROL = "enrol"
    BIND = "bind"


@dataclass(frozen=True)
class Challenge:
    nonce: str
    purpose: ChallengePurpose
    context: str
    expires_at: datetime
    message: bytes  # the exact bytes the card must sign


@dataclass(frozen=True)
class CardProof:
    """What the card proves: its user-authentication certificate, the CA above it, and (unless it is a
    PIN-less tap) its signature over a challenge."""

    certificate: bytes
    chain: tuple[bytes, ...]
    nonce: str | None = None
    signature: bytes | None = None

    def as_json(self) -> dict[str, Any]:
        """The `card` object of the API (DER and signature in standard base64)."""
        return {
            "certificate": base64.b64encode(self.certificate).decode("ascii"),
            "chain": [base64.b64encode(der).decode("ascii") for der in self.chain],
            "nonce": self.nonce,
            "signature": None if self.signature is None else base64.b64encode(self.signature).decode("ascii"),
        }


class RideStatus(StrEnum):
    BOARDED = "boarded"
    COMPLETED = "completed"
    VOIDED = "voided"


class EntitlementUnit(StrEnum):
    RIDE = "ride"
    TICKET = "ticket"
    YEN = "yen"


@dataclass(frozen=True)
class Ride:
    """A ride as the terminal shows it: enough for the driver's visual check, nothing more."""

    ride_id: int
    status: RideStatus
    given_name: str
    age_band: str
    program_name: str
    unit: EntitlementUnit
    balance: int
    units_held: int
    boarded_at: datetime
    meter_fare: int | None
    subsidy: int | None
    rider_share: int | None
    replayed: bool
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    next_challenge: Challenge | None = field(repr=False, compare=False, default=None)

    @classmethod
    def from_json(cls, data: Any) -> Ride:
        """Parse the API's Ride; raises UnexpectedResponse. The next boarding challenge the API hands out
        with a ride answer is kept apart from `raw` (it is single-use, not part of the ride)."""
        body = _Body("ride", data)
        following = body.data.get("next_challenge")
        return cls(
            ride_id=body.integer("ride_id"),
            status=_enum(RideStatus, "ride.status", body.text("status")),
            given_name=body.text("given_name"),
            age_band=body.text("age_band"),
            program_name=body.text("program_name"),
            unit=_enum(EntitlementUnit, "ride.unit", body.text("unit")),
            balance=body.integer("balance"),
            units_held=body.integer("units_held"),
            boarded_at=body.instant("boarded_at"),
            meter_fare=body.optional_integer("meter_fare"),
            subsidy=body.optional_integer("subsidy"),
            rider_share=body.optional_integer("rider_share"),
            replayed=body.flag("replayed"),
            raw={name: value for name, value in body.data.items() if name != "next_challenge"},
            next_challenge=_challenge(following) if following is not None else None,
        )


def _challenge(data: Any) -> Challenge:
    body = _Body("challenge", data)
    return Challenge(
        nonce=body.text("nonce"),
        purpose=_enum(ChallengePurpose, "challenge.purpose", body.text("purpose")),
        context=body.text("context"),
        expires_at=body.instant("expires_at"),
        message=body.b64("message"),
    )


class SyncStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    REJECTED = "rejected"


@dataclass(frozen=True)
class RecordResult:
    """The API's answer to one synced record; `title` is what to tell the driver, in plain words."""

    sequence: int
    status: SyncStatus
    ride_id: int | None
    code: str | None
    title: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "status": self.status.value,
            "ride_id": self.ride_id,
            "code": self.code,
            "title": self.title,
        }


@dataclass(frozen=True)
class SyncAnswer:
    results: tuple[RecordResult, ...]
    last_sequence: int
    gaps: tuple[int, ...]


@dataclass(frozen=True)
class ShiftAnswer:
    shift_id: int
    driver_name: str
    started_at: datetime
    ended_at: datetime | None
    rides: int | None


# -- retries --------------------------------------------------------------------------------------


class Retry(Enum):
    """How far a call may be retried."""

    NEVER = "never"
    UNSENT = "unsent"  # only when the connection was never made: the server cannot have acted
    ALWAYS = "always"  # transport errors and 5xx/429: safe because the call is idempotent


RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries; waits first_delay, 2×, 4×… between them, never more than max_delay."""

    attempts: int = 4
    first_delay: float = 0.5
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_delay < 0 or self.max_delay < 0:
            raise ValueError("attempts must be ≥ 1 and delays ≥ 0")

    def delays(self) -> Iterator[float]:
        """The waits between attempts (attempts - 1 of them)."""
        for n in range(self.attempts - 1):
            yield min(self.first_delay * (2**n), self.max_delay)


def _retry_after(response: httpx.Response, ceiling: float) -> float | None:
    value = response.headers.get("Retry-After", "")
    if value.isdigit():
        return min(float(value), ceiling)
    return None


# -- the client -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalCredentials:
    """An enrolled terminal's id and key, from which the client gets its own access tokens."""

    terminal_id: int
    key: TerminalKey


def api_root(url: str) -> str:
    """The server's root URL, whether the person typed it with or without /api/v1."""
    root = url.strip().rstrip("/")
    if root.endswith(API_PREFIX):
        root = root[: -len(API_PREFIX)]
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"API の URL は http:// か https:// で始めてください: {url}")
    return root


class ApiClient:
    """The voucher API over HTTP. Pass `http` to share a client (tests use httpx's Mock/WSGI transports);
    a client made here is closed by `close()`."""

    def __init__(
        self,
        base_url: str,
        http: httpx.Client | None = None,
        *,
        credentials: TerminalCredentials | None = None,
        lang: str = "ja",
        clock: Clock = system_clock,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url = api_root(base_url)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT)
        self.credentials = credentials
        self.lang = lang
        self._clock = clock
        self._sleep = sleep
        self.retry = retry or RetryPolicy()
        self._token: AccessToken | None = None

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- plumbing --

    def url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}{path}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        retry: Retry,
        body: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        accept_statuses: Sequence[int] = (),
    ) -> httpx.Response:
        """Send with retries; returns a success (or an accepted) response, raises ApiError/ApiUnreachable.

        `body` is called for each attempt, so a body that must be fresh (a signed assertion) can be.
        `headers` are the same on every attempt, which is what keeps an Idempotency-Key stable.
        """
        url = self.url(path)
        all_headers = {"Accept": "application/json", "Accept-Language": self.lang, **(headers or {})}
        delays = self.retry.delays() if retry is not Retry.NEVER else iter(())
        attempt = 0
        delivered = False
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    method, url, json=body() if body is not None else None, headers=all_headers
                )
            except httpx.TransportError as error:
                never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                delivered = delivered or not never_sent
                delay = next(delays, None) if (retry is Retry.ALWAYS or never_sent) else None
                if delay is None:
                    raise ApiUnreachable(url, attempt, error, maybe_delivered=delivered) from error
                self._sleep(delay)
                continue
            if response.is_success or response.status_code in accept_statuses:
                return response
            if retry is Retry.ALWAYS and response.status_code in RETRYABLE_STATUSES:
                delay = next(delays, None)
                if delay is not None:
                    self._sleep(_retry_after(response, self.retry.max_delay) or delay)
                    continue
            raise _api_error(response)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as error:
            raise UnexpectedResponse(f"{response.request.url}: the answer is not JSON") from error

    def _authorised(
        self,
        method: str,
        path: str,
        *,
        retry: Retry,
        body: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """A call with the bearer token; a token the API rejects is renewed once (terminals only)."""
        for renewal in (False, True):
            token = self._bearer(renew=renewal)
            try:
                response = self._send(
                    method,
                    path,
                    retry=retry,
                    body=body,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                )
            except ApiError as error:
                if error.code in TOKEN_REJECTED_CODES and not renewal and self.credentials is not None:
                    continue
                raise
            return self._json(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _bearer(self, *, renew: bool) -> str:
        if self.credentials is not None:
            if renew or self._token is None or not self._token.usable_at(self._clock()):
                self._token = self.token()
            return self._token.access_token
        if self._token is None:
            raise NotSignedIn("サインインしていません")
        return self._token.access_token

    # -- the API --

    def health(self) -> Health:
        """GET /health: answered (200 or 503) even when a dependency is down; no retries."""
        response = self._send("GET", "/health", retry=Retry.NEVER, accept_statuses=(503,))
        data = self._json(response) if response.status_code == 200 else _json_or_none(response)
        if not (isinstance(data, Mapping) and isinstance(data.get("status"), str)):
            raise _api_error(response)  # a 503 from something in front of the API, not its health report
        body = _Body("health", data)
        return Health(status=body.text("status"), database=body.text("database"), broker=body.text("broker"))

    def token(self) -> AccessToken:
        """Exchange a freshly signed client assertion for a terminal access token.

        Raises NotSignedIn without credentials, ApiError (terminal.bad_assertion, terminal.not_active).
        """
        credentials = self.credentials
        if credentials is None:
            raise NotSignedIn("端末が登録されていません")
        issued = self._clock()
        response = self._send(
            "POST",
            "/auth/terminal-token",
            retry=Retry.ALWAYS,
            body=lambda: {"assertion": credentials.key.assertion(credentials.terminal_id, self._clock())},
        )
        token = _access_token(self._json(response), issued)
        self._token = token
        return token

    def sign_in(self, username: str, password: str) -> AccessToken:
        """Staff sign-in (POST /auth/token); later calls use it unless terminal credentials are set."""
        issued = self._clock()
        response = self._send(
            "POST",
            "/auth/token",
            retry=Retry.ALWAYS,
            body=lambda: {"username": username, "password": password},
        )
        token = _access_token(self._json(response), issued)
        self._token = token
        return token

    def create_terminal(self, vehicle_id: int) -> NewTerminal:
        """POST /terminals (operator admin): a terminal for a vehicle and its one-time enrolment code."""
        body = _Body(
            "terminal",
            self._authorised(
                "POST", "/terminals", retry=Retry.UNSENT, body=lambda: {"vehicle_id": vehicle_id}
            ),
        )
        return NewTerminal(
            terminal_id=body.integer("terminal_id"),
            vehicle_id=body.integer("vehicle_id"),
            enrolment_code=body.text("enrolment_code"),
            expires_at=body.instant("expires_at"),
        )

    def enrol(self, enrolment_code: str, public_key: str) -> Enrolment:
        """POST /terminals/enrol with the one-time code and the raw Ed25519 public key (base64url).

        The code works once, so this is retried only when the request never reached the server.
        Raises ApiError (terminal.enrolment_invalid, validation).
        """
        response = self._send(
            "POST",
            "/terminals/enrol",
            retry=Retry.UNSENT,
            body=lambda: {"enrolment_code": enrolment_code, "public_key": public_key},
        )
        body = _Body("enrolment", self._json(response))
        key = body.data.get("snapshot_public_key")
        return Enrolment(
            terminal_id=body.integer("terminal_id"),
            operator_id=body.integer("operator_id"),
            vehicle_id=body.integer("vehicle_id"),
            municipality_id=body.optional_integer("municipality_id"),
            snapshot_public_key=key if isinstance(key, str) and key else None,
        )

    def challenge(self, purpose: ChallengePurpose | str = ChallengePurpose.BOARD) -> Challenge:
        """POST /card-challenges: a single-use nonce and the exact bytes the card must sign."""
        wanted = ChallengePurpose(purpose)
        return _challenge(
            self._authorised(
                "POST", "/card-challenges", retry=Retry.ALWAYS, body=lambda: {"purpose": wanted.value}
            )
        )

    def board(
        self,
        *,
        sequence: int,
        card: CardProof | Mapping[str, Any],
        idempotency_key: str,
        driver_code: str | None = None,
        trip_ref: str | None = None,
    ) -> Ride:
        """POST /rides: board with a card proof. Retries keep `idempotency_key`, so the API answers a
        retry with the first ride (`replayed` is then True). Raises ApiError for refusals (card.*,
        challenge.*, entitlement.*, limit.*, ride.sequence_reused), ApiUnreachable."""
        if sequence < 1:
            raise ValueError("sequence must be ≥ 1")
        payload: dict[str, Any] = {
            "sequence": sequence,
            "card": card.as_json() if isinstance(card, CardProof) else dict(card),
        }
        if driver_code:
            payload["driver_code"] = driver_code
        if trip_ref:
            payload["trip_ref"] = trip_ref
        return Ride.from_json(
            self._authorised(
                "POST",
                "/rides",
                retry=Retry.ALWAYS,
                body=lambda: payload,
                headers={"Idempotency-Key": idempotency_key},
            )
        )

    def fare(self, ride_id: int, meter_fare: int, *, idempotency_key: str | None = None) -> Ride:
        """POST /rides/<id>/fare: the meter fare in yen; the Ride then says what the rider pays.

        Raises ApiError (ride.already_completed, ride.voided, ride.not_found, validation).
        """
        return Ride.from_json(
            self._authorised(
                "POST",
                f"/rides/{int(ride_id)}/fare",
                retry=Retry.ALWAYS,
                body=lambda: {"meter_fare": meter_fare},
                headers={"Idempotency-Key": idempotency_key or f"fare-{uuid.uuid4()}"},
            )
        )

    def void(self, ride_id: int, reason: str, *, idempotency_key: str | None = None) -> Ride:
        """POST /rides/<id>/void. Raises ApiError (ride.void_window_passed, ride.settled, ride.not_found)."""
        return Ride.from_json(
            self._authorised(
                "POST",
                f"/rides/{int(ride_id)}/void",
                retry=Retry.ALWAYS,
                body=lambda: {"reason": reason},
                headers={"Idempotency-Key": idempotency_key or f"void-{uuid.uuid4()}"},
            )
        )

    def ride(self, ride_id: int) -> Ride:
        """GET /rides/<id>. Raises ApiError (ride.not_found)."""
        return Ride.from_json(self._authorised("GET", f"/rides/{int(ride_id)}", retry=Retry.ALWAYS))

    def snapshot_key(self) -> str:
        """GET /terminals/snapshot-key: the API's snapshot key (raw Ed25519, base64url); no token needed."""
        response = self._send("GET", "/terminals/snapshot-key", retry=Retry.ALWAYS)
        return _Body("snapshot key", self._json(response)).text("public_key")

    def snapshot(self) -> dict[str, Any]:
        """GET /terminals/snapshot: {snapshot, signature, public_key}, to be verified by the caller
        against the key pinned at enrolment (see driver_terminal.snapshot). Raises ApiError,
        ApiUnreachable, UnexpectedResponse."""
        body = _Body("snapshot", self._authorised("GET", "/terminals/snapshot", retry=Retry.ALWAYS))
        body.text("signature")
        return dict(body.data)

    def sync(self, records: Sequence[Mapping[str, Any]]) -> SyncAnswer:
        """POST /terminals/sync with at most 500 signed records, exactly as they were signed.

        Safe to resend: a record the API has seen comes back as `duplicate` with its first answer.
        Raises ValueError for an empty or oversized batch, ApiError, ApiUnreachable, UnexpectedResponse.
        """
        if not 1 <= len(records) <= 500:
            raise ValueError("a sync carries 1 to 500 records")
        batch = [dict(record) for record in records]
        body = _Body(
            "sync",
            self._authorised("POST", "/terminals/sync", retry=Retry.ALWAYS, body=lambda: {"records": batch}),
        )
        raw_results = body.data.get("results")
        if not isinstance(raw_results, list):
            raise UnexpectedResponse("sync: 'results' is not a list")
        results = []
        for item in raw_results:
            result = _Body("sync result", item)
            title = result.data.get("title")
            code = result.data.get("code")
            results.append(
                RecordResult(
                    sequence=result.integer("sequence"),
                    status=_enum(SyncStatus, "sync.status", result.text("status")),
                    ride_id=result.optional_integer("ride_id"),
                    code=code if isinstance(code, str) else None,
                    title=title if isinstance(title, str) else None,
                )
            )
        gaps = body.data.get("gaps") or []
        if not isinstance(gaps, list) or not all(isinstance(n, int) for n in gaps):
            raise UnexpectedResponse("sync: 'gaps' is not a list of integers")
        return SyncAnswer(tuple(results), body.integer("last_sequence"), tuple(gaps))

    def start_shift(self, driver_code: str) -> ShiftAnswer:
        """POST /terminals/shifts: the driver signs in. Raises ApiError (not_found for an unknown code)."""
        return _shift(
            self._authorised(
                "POST", "/terminals/shifts", retry=Retry.UNSENT, body=lambda: {"driver_code": driver_code}
            )
        )

    def end_shift(self, shift_id: int) -> ShiftAnswer:
        """POST /terminals/shifts/<id>/end: the driver signs out; says how many rides the shift had."""
        return _shift(self._authorised("POST", f"/terminals/shifts/{int(shift_id)}/end", retry=Retry.ALWAYS))


def _shift(data: Any) -> ShiftAnswer:
    body = _Body("shift", data)
    return ShiftAnswer(
        shift_id=body.integer("shift_id"),
        driver_name=body.text("driver_name"),
        started_at=body.instant("started_at"),
        ended_at=body.instant("ended_at") if body.data.get("ended_at") else None,
        rides=body.optional_integer("rides"),
    )


def _access_token(data: Any, issued: datetime) -> AccessToken:
    body = _Body("token", data)
    return AccessToken(
        access_token=body.text("access_token"),
        expires_at=issued + timedelta(seconds=body.integer("expires_in")),
        roles=body.texts("roles"),
        municipality_id=body.integer("municipality_id"),
        operator_id=body.optional_integer("operator_id"),
        vehicle_id=body.optional_integer("vehicle_id"),
        display_name=str(body.data.get("display_name") or ""),
    )


_GENERIC_TITLES: Final = {
    "ja": "サーバーがエラーを返しました（{status}）。時間をおいてお試しください。",
    "en": "The server answered with an error ({status}). Please try again later.",
}


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _api_error(response: httpx.Response) -> ApiError:
    """A problem document becomes ApiError as it is; anything else (a proxy's HTML page) gets a code
    `http.<status>` and a generic title."""
    status = response.status_code
    data = _json_or_none(response)
    if isinstance(data, Mapping) and isinstance(data.get("code"), str):
        title = data.get("title")
        return ApiError(status, data["code"], title if isinstance(title, str) else data["code"], data)
    lang = response.request.headers.get("Accept-Language", "ja")
    template = _GENERIC_TITLES["en" if lang == "en" else "ja"]
    return ApiError(status, f"http.{status}", template.format(status=status), {"status": status})
