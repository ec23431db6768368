"""Plain factories and fakes for the terminal's unit tests: a scripted API behind httpx.MockTransport,
API bodies, and a card reader that needs no RSA."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth_mock import reader as jpki_reader
from driver_terminal.client import ApiClient, RetryPolicy, TerminalCredentials
from driver_terminal.keys import TerminalKey

API_URL = "http://api.test"
NOW = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)  # 10:00 in Japan
PIN = "4739"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


class MovableClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def __call__(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


class FakeApi:
    """A scripted API: `on("POST /rides", reply, reply, …)` answers in order, the last reply repeating.
    Terminal tokens are handed out unless scripted. Every request is kept in `requests`."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.script: dict[str, list[Reply]] = {}
        self.tokens_issued = 0

    def on(self, route: str, *replies: Reply) -> FakeApi:
        method, _, path = route.partition(" ")
        self.script.setdefault(f"{method} /api/v1{path}", []).extend(replies)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = f"{request.method} {request.url.path}"
        replies = self.script.get(route)
        if not replies:
            if route == "POST /api/v1/auth/terminal-token":
                self.tokens_issued += 1
                return httpx.Response(200, json=token_json(f"token-{self.tokens_issued}"))
            return problem(404, "not_found", "見つかりません。")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        if callable(reply):
            return reply(request)
        return reply

    def sent(self, route: str) -> list[httpx.Request]:
        method, _, path = route.partition(" ")
        return [r for r in self.requests if r.method == method and r.url.path == f"/api/v1{path}"]

    def http(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


def problem(status: int, code: str, title: str, **extra: Any) -> httpx.Response:
    body = {"type": f"https://taxi-vouchers.example/problems/{code}", "title": title, "status": status}
    body.update(code=code, **extra)
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json"})


def token_json(access_token: str = "token-1", expires_in: int = 900) -> dict[str, Any]:
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "roles": ["terminal"],
        "display_name": "terminal 7",
        "municipality_id": 1,
        "operator_id": 2,
        "vehicle_id": 3,
    }


def ride_json(ride_id: int = 41, **overrides: Any) -> dict[str, Any]:
    ride: dict[str, Any] = {
        "ride_id": ride_id,
        "status": "boarded",
        "given_name": "花子",
        "age_band": "80代",
        "program_name": "高齢者おもいやりタクシー",
        "unit": "ride",
        "balance": 23,
        "units_held": 1,
        "boarded_at": "2026-10-15T01:00:00+00:00",
        "meter_fare": None,
        "subsidy": None,
        "rider_share": None,
        "replayed": False,
    }
    ride.update(overrides)
    return ride


def challenge_json(message: bytes = b"sign these bytes") -> dict[str, Any]:
    import base64

    return {
        "nonce": "ab" * 32,
        "purpose": "board",
        "context": "terminal:7",
        "expires_at": "2026-10-15T01:02:00+00:00",
        "message": base64.b64encode(message).decode(),
    }


def enrolment_json(terminal_id: int = 7) -> dict[str, Any]:
    return {"terminal_id": terminal_id, "operator_id": 2, "vehicle_id": 3, "municipality_id": 1}


def terminal_key() -> TerminalKey:
    return TerminalKey(Ed25519PrivateKey.generate())


def api_client(
    api: FakeApi,
    *,
    credentials: TerminalCredentials | None = None,
    clock: MovableClock | None = None,
    sleeps: list[float] | None = None,
    lang: str = "ja",
    attempts: int = 4,
) -> ApiClient:
    waits = sleeps if sleeps is not None else []
    return ApiClient(
        API_URL,
        api.http(),
        credentials=credentials if credentials is not None else TerminalCredentials(7, terminal_key()),
        clock=clock or MovableClock(),
        sleep=waits.append,
        lang=lang,
        retry=RetryPolicy(attempts=attempts),
    )


class FakeCard:
    """A card on the reader, without RSA: fixed certificates, a PIN with a try counter."""

    def __init__(
        self,
        *,
        pin: str = PIN,
        tries_left: int = 3,
        has_pin: bool = True,
        present: bool = True,
        certificate: bytes = b"user-certificate-der",
    ):
        self.pin = pin
        self.certificate = certificate
        self.tries_left = tries_left
        self._has_pin = has_pin
        self.present = present
        self.signed: list[bytes] = []

    def _check_present(self) -> None:
        if not self.present:
            raise jpki_reader.CardAbsent()

    def read_user_certificate(self) -> bytes:
        self._check_present()
        return self.certificate

    def read_user_ca_certificate(self) -> bytes:
        self._check_present()
        return b"user-ca-certificate-der"

    def has_user_pin(self) -> bool:
        self._check_present()
        return self._has_pin

    def sign_with_user_key(self, message: bytes, pin: str | None = None) -> bytes:
        self._check_present()
        if not self._has_pin:
            raise jpki_reader.NoUserPin()
        if self.tries_left == 0:
            raise jpki_reader.PinLocked()
        if pin != self.pin:
            self.tries_left -= 1
            if self.tries_left == 0:
                raise jpki_reader.PinLocked()
            raise jpki_reader.PinIncorrect(self.tries_left)
        self.tries_left = 3
        self.signed.append(message)
        return b"\x01" * 256
