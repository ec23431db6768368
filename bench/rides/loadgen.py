"""The load generator: client threads in a few processes, each driving rides until a deadline.

On two cores one Python process cannot keep gunicorn busy without the GIL getting in the way, so the
clients are spread over `processes` worker processes (spawned, so they share nothing with the parent),
each running one thread per client. Every client owns one terminal (its sequence numbers are its
own) and one card. All processes start together at an instant the parent chooses, stop by themselves
at the deadline or after their share of `max_rides`, and send their samples back.

Only 127.0.0.1 is ever contacted, without proxies from the environment.
"""

from __future__ import annotations

import base64
import math
import multiprocessing
import queue
import resource
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.rides.report import ClientOutcome, PhaseResult, RideSample

API_STEPS = ("POST /card-challenges (初回のみ)", "POST /rides", "POST /rides/<id>/fare")
READY_TIMEOUT_SECONDS = 120.0
START_DELAY_SECONDS = 0.3
REQUEST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CardCredentials:
    """A card as the load generator uses it: the certificates it reads, and the user key it signs with.

    The key is taken from the virtual card file once, so the card's RSA signing (≈ 0.4 ms a ride on
    the same two cores) is done with `cryptography` directly instead of through the APDU emulation;
    the signature is the same bytes (PKCS#1 v1.5 is deterministic) and the server's work is unchanged.
    """

    certificate_b64: str
    chain_b64: tuple[str, ...]
    private_key_pem: bytes


@dataclass(frozen=True)
class ApiClientSpec:
    """A client of the API phase: an enrolled terminal (raw Ed25519 private key) and a bound card."""

    terminal_id: int
    terminal_key: bytes
    card: CardCredentials


@dataclass(frozen=True)
class FloorClientSpec:
    """A client of the floor phase: the entitlement its rides consume."""

    entitlement_id: int


ClientSpec = ApiClientSpec | FloorClientSpec


@dataclass(frozen=True)
class PhasePlan:
    """One phase: who drives which server, for how long, and how many rides at most."""

    base_url: str
    clients: tuple[ClientSpec, ...]
    warmup_seconds: float
    seconds: float
    max_rides: int
    processes: int = 2
    first_sequence: int = 1  # terminal sequence numbers (and idempotency keys) of this run start here

    def __post_init__(self) -> None:
        if urlsplit(self.base_url).hostname != "127.0.0.1":
            raise ValueError("the load generator only talks to 127.0.0.1")
        if not self.clients:
            raise ValueError("at least one client is needed")
        if self.seconds <= 0 or self.warmup_seconds < 0 or min(self.max_rides, self.processes) < 1:
            raise ValueError("seconds must be > 0, warm-up >= 0, max_rides and processes >= 1")
        if self.first_sequence < 1:
            raise ValueError("terminal sequence numbers start at 1")

    @property
    def rides_per_client(self) -> int:
        return math.ceil(self.max_rides / len(self.clients))


class RideFailed(Exception):
    """A request of a ride did not get the answer a ride needs; `what` says which and why."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def _problem_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _expect(response: httpx.Response, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        raise RideFailed(f"{step} → {response.status_code} {_problem_code(response)}".rstrip())
    body = response.json()
    if not isinstance(body, dict):
        raise RideFailed(f"{step} → not a JSON object")
    return body


def _http_client(base_url: str, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(
        base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False, transport=transport
    )


class ApiRider:
    """Drives rides through the API as a terminal would: signed boarding, fare.

    Like the terminal, it boards with the challenge the previous answer handed over; it asks for one
    only when it has none (its first ride, or after a failure), and that time counts too.
    """

    def __init__(
        self,
        base_url: str,
        spec: ApiClientSpec,
        first_sequence: int = 1,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.spec = spec
        self.http = _http_client(base_url, transport)
        self.terminal_key = Ed25519PrivateKey.from_private_bytes(spec.terminal_key)
        key = serialization.load_pem_private_key(spec.card.private_key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("the card's user key is not an RSA key")
        self.card_key = key
        self.sequence = first_sequence - 1
        self.token: str | None = None
        self.next_challenge: dict[str, Any] | None = None

    def assertion(self) -> str:
        """A client assertion: EdDSA, the terminal as issuer and subject, one minute of life."""
        issued = int(time.time())
        claims = {
            "iss": f"terminal:{self.spec.terminal_id}",
            "sub": f"terminal:{self.spec.terminal_id}",
            "aud": "voucher-api/terminal-token",
            "iat": issued,
            "exp": issued + 60,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self.terminal_key, algorithm="EdDSA")

    def sign_in(self) -> None:
        response = self.http.post("/api/v1/auth/terminal-token", json={"assertion": self.assertion()})
        self.token = str(_expect(response, 200, "POST /auth/terminal-token")["access_token"])

    def ride(self) -> RideSample:
        """One ride: boarding and fare (plus a challenge request when none was handed over)."""
        if self.token is None:
            self.sign_in()
        headers = {"Authorization": f"Bearer {self.token}"}
        self.sequence += 1
        started = time.perf_counter()
        challenge, self.next_challenge = self.next_challenge, None
        if challenge is None:
            challenge = _expect(
                self.http.post("/api/v1/card-challenges", json={"purpose": "board"}, headers=headers),
                201,
                API_STEPS[0],
            )
        challenged = time.perf_counter()
        signature = self.card_key.sign(
            base64.b64decode(challenge["message"]), padding.PKCS1v15(), hashes.SHA256()
        )
        body = {
            "sequence": self.sequence,
            "card": {
                "certificate": self.spec.card.certificate_b64,
                "chain": list(self.spec.card.chain_b64),
                "nonce": challenge["nonce"],
                "signature": base64.b64encode(signature).decode(),
            },
        }
        signed = time.perf_counter()
        ride = _expect(
            self.http.post(
                "/api/v1/rides",
                json=body,
                headers={**headers, "Idempotency-Key": f"bench-{self.spec.terminal_id}-{self.sequence}"},
            ),
            201,
            API_STEPS[1],
        )
        boarded = time.perf_counter()
        fare = 1200 + (self.sequence % 20) * 100
        fared = _expect(
            self.http.post(
                f"/api/v1/rides/{ride['ride_id']}/fare", json={"meter_fare": fare}, headers=headers
            ),
            200,
            API_STEPS[2],
        )
        self.next_challenge = fared.get("next_challenge")
        finished = time.perf_counter()
        return RideSample(
            ended_at=time.monotonic(),
            total=finished - started,
            steps=(challenged - started, boarded - signed, finished - boarded),
        )

    def forget_token(self) -> None:
        self.token = None

    def close(self) -> None:
        self.http.close()


class FloorRider:
    """Drives the floor: one request per ride."""

    def __init__(
        self, base_url: str, spec: FloorClientSpec, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.spec = spec
        self.http = _http_client(base_url, transport)

    def sign_in(self) -> None:
        """The floor has no authentication; a health call opens nothing but checks the server answers."""
        _expect(self.http.get("/health"), 200, "GET /health")

    def ride(self) -> RideSample:
        started = time.perf_counter()
        _expect(
            self.http.post("/floor/rides", json={"entitlement_id": self.spec.entitlement_id}),
            201,
            "POST /floor/rides",
        )
        return RideSample(ended_at=time.monotonic(), total=time.perf_counter() - started)

    def forget_token(self) -> None:
        """Nothing to forget."""

    def close(self) -> None:
        self.http.close()


Rider = ApiRider | FloorRider


def _drive(rider: Rider, budget: int, start_at: float, deadline: float, outcome: ClientOutcome) -> None:
    delay = start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    done = 0
    while done < budget and time.monotonic() < deadline:
        done += 1
        try:
            outcome.rides.append(rider.ride())
        except RideFailed as failure:
            outcome.count_error(failure.what)
            if " → 401" in failure.what:
                rider.forget_token()
        except httpx.HTTPError as exc:
            outcome.count_error(f"{type(exc).__name__}")
        except (KeyError, TypeError, ValueError) as exc:  # an answer without the fields a ride needs
            outcome.count_error(f"unexpected answer ({type(exc).__name__})")
    outcome.reached_max_rides = done >= budget


def _process_main(
    base_url: str,
    specs: Sequence[ClientSpec],
    budget: int,
    first_sequence: int,
    warmup_seconds: float,
    seconds: float,
    ready: multiprocessing.Queue[tuple[str, str]],
    results: multiprocessing.Queue[tuple[list[ClientOutcome], float]],
    go: Event,
    start_at: Synchronized[float],
) -> None:
    """A worker process: prepare its clients, report ready, run them in threads, send the samples."""
    riders: list[Rider] = []
    try:
        for spec in specs:
            rider: Rider = (
                ApiRider(base_url, spec, first_sequence)
                if isinstance(spec, ApiClientSpec)
                else FloorRider(base_url, spec)
            )
            riders.append(rider)
            rider.sign_in()
    except Exception as exc:  # reported to the parent, which aborts the run
        ready.put(("error", f"{type(exc).__name__}: {exc}"))
        for rider in riders:
            rider.close()
        return
    ready.put(("ready", ""))
    go.wait()
    begin = start_at.value
    if begin <= 0:  # the parent aborted
        for rider in riders:
            rider.close()
        return
    deadline = begin + warmup_seconds + seconds
    outcomes = [ClientOutcome() for _ in riders]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    threads = [
        threading.Thread(target=_drive, args=(rider, budget, begin, deadline, outcome), daemon=True)
        for rider, outcome in zip(riders, outcomes, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    for rider in riders:
        rider.close()
    results.put((outcomes, cpu))


def split_clients(clients: Sequence[ClientSpec], processes: int) -> list[list[ClientSpec]]:
    """Deal clients round-robin into at most `processes` non-empty groups."""
    groups: list[list[ClientSpec]] = [[] for _ in range(min(processes, len(clients)))]
    for i, client in enumerate(clients):
        groups[i % len(groups)].append(client)
    return groups


def _wait_until_ready(ready: multiprocessing.Queue[tuple[str, str]], workers: list[Any]) -> list[str]:
    """Wait for every worker's ready message; returns what went wrong (nothing when all are ready)."""
    problems: list[str] = []
    answered = 0
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while answered < len(workers):
        try:
            state, detail = ready.get(timeout=0.5)
        except queue.Empty:
            crashed = [w.name for w in workers if w.exitcode not in (None, 0)]
            if crashed:
                return [*problems, f"{', '.join(crashed)} exited"]
            if time.monotonic() > deadline:
                return [*problems, "a client process did not get ready in time"]
            continue
        answered += 1
        if state != "ready":
            problems.append(detail)
    return problems


def run_phase(plan: PhasePlan) -> PhaseResult:
    """Run the plan's clients against its server and gather their samples.

    Raises RuntimeError if a worker cannot prepare (e.g. a terminal cannot sign in) or does not report.
    """
    ctx: SpawnContext = multiprocessing.get_context("spawn")
    ready: multiprocessing.Queue[tuple[str, str]] = ctx.Queue()
    results: multiprocessing.Queue[tuple[list[ClientOutcome], float]] = ctx.Queue()
    go = ctx.Event()
    start_at: Synchronized[float] = ctx.Value("d", 0.0)
    groups = split_clients(plan.clients, plan.processes)
    workers = [
        ctx.Process(
            target=_process_main,
            args=(
                plan.base_url,
                group,
                plan.rides_per_client,
                plan.first_sequence,
                plan.warmup_seconds,
                plan.seconds,
                ready,
                results,
                go,
                start_at,
            ),
            name=f"bench-rides-client-{i}",
        )
        for i, group in enumerate(groups)
    ]
    for worker in workers:
        worker.start()
    try:
        problems = _wait_until_ready(ready, workers)
        if problems:
            go.set()  # start_at is still 0: the workers leave
            raise RuntimeError("クライアントの準備に失敗しました: " + "; ".join(problems))
        begin = time.monotonic() + START_DELAY_SECONDS
        start_at.value = begin
        go.set()
        outcomes: list[ClientOutcome] = []
        cpu_seconds = 0.0
        wait = START_DELAY_SECONDS + plan.warmup_seconds + plan.seconds + 2 * REQUEST_TIMEOUT_SECONDS + 30
        for _ in workers:
            try:
                process_outcomes, process_cpu = results.get(timeout=wait)
            except queue.Empty as exc:
                raise RuntimeError("a client process did not report its samples") from exc
            outcomes.extend(process_outcomes)
            cpu_seconds += process_cpu
        driven = time.monotonic() - begin
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join(timeout=5)
    window_start = begin + plan.warmup_seconds
    window_end = window_start + plan.seconds
    if any(outcome.reached_max_rides for outcome in outcomes):
        # The run stopped on its ride budget before the deadline: measure up to the last ride.
        last = max((r.ended_at for outcome in outcomes for r in outcome.rides), default=window_end)
        window_end = min(window_end, max(last + 1e-6, window_start + 1e-3))
    return PhaseResult(outcomes, window_start, window_end, cpu_seconds, driven)
