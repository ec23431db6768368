"""Tap to confirmation, online and offline, next to the bare API round trip (issue 5, point 6).

What one run does:

1. **Seed.** A fresh database (PostgreSQL with `--database-url`, else a SQLite file), migrated and seeded
   with bench/rides' city: one `percent_capped` program, `--cards` residents with bound virtual cards from
   a mock issuer whose OCSP responder is served on 127.0.0.1 (so the API checks revocation as in
   production). The program allows 20 offline rides a day so the offline phase never hits that limit.
2. **Servers.** The API under `gunicorn -w 2 -k sync` (bench/rides' settings). The kiosk as in the car:
   enrolled with a one-time code through the real enrolment, its snapshot fetched, its Flask app served by
   one thread on 127.0.0.1 over its own store (SQLite WAL, synchronous=FULL).
3. **Drive**, `--rounds` times after `--warmup` rounds, the three kinds in turn so that a change of load
   falls on all of them, each round with the next card:
   - **floor**: the bare API round trip: one `POST /api/v1/rides` with a card proof made beforehand (the
     challenge fetched and signed before the clock starts), over a kept-alive connection;
   - **online**: the kiosk, as its page does it once the card is on the reader: `POST /api/board/check`,
     then `POST /api/board` with the PIN — the card read and its signature through the APDU emulation,
     the boarding numbered and committed, the API's answer kept (the API handed the challenge over with
     the previous answer, so this is one API round trip);
   - **offline**: the same with the kiosk knowing it is offline: the snapshot decides, the card signs the
     terminal's nonce, the signed record and the journal are committed together.
   Each boarding is followed by its fare (not timed) so the rider is not "on board" at the next tap.
4. **Report.** p50, p90 and mean per kind, `ratio = online p50 / floor p50` and `offline p50 / floor p50`,
   then the offline records are synced and their answers counted (all must be accepted).

The person's own time (holding the card, typing the PIN) is not part of any figure.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from werkzeug.serving import make_server

from auth_mock.reader import JPKIReader, VirtualCardTransport
from bench.rides import servers
from bench.rides.seed import CARD_PIN, IssuedCardFile, create_database, drop_database, issue_cards, seed_city
from driver_terminal.keys import TerminalKey
from driver_terminal.kiosk.app import KIOSK_TIMEOUT, KioskContext, create_kiosk_app
from driver_terminal.kiosk.reader import VirtualCardSlot
from driver_terminal.terminal import Terminal, enrol_terminal
from voucher_api import migrate
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import Program, Vehicle
from voucher_api.services import terminals

API_APP = "voucher_api.app:create_app()"
KINDS = ("floor", "online", "offline")
CARD = "card"  # the virtual card's own signature, timed inside the floor's preparation


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.terminal",
        description="カードをかざしてから確定表示までの時間（オンライン・オフライン）と API 単体の往復時間",
    )
    parser.add_argument("--rounds", type=int, default=40, help="計測するラウンド数（各種類 1 回ずつ）")
    parser.add_argument("--warmup", type=int, default=5, help="計測しないラウンド数")
    parser.add_argument("--cards", type=int, default=4, help="仮想カードの枚数")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="PostgreSQL の管理用 URL（省略時は SQLite ファイル）",
    )
    parser.add_argument("--json", type=Path, default=None, help="結果を JSON でも書き出す")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or not 1 <= args.cards <= 50:
        parser.error("--rounds は 1 以上、--warmup は 0 以上、--cards は 1〜50 にしてください")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url は postgresql:// で始まる PostgreSQL の URL です")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Summary:
    kind: str
    samples: int
    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def of(cls, kind: str, seconds: list[float]) -> Summary:
        ms = sorted(s * 1000 for s in seconds)
        p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
        return cls(kind, len(ms), statistics.median(ms), p90, statistics.fmean(ms), ms[0])


def _width(text: str) -> int:
    """Columns the text takes in a terminal (Japanese characters take two)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _cell(text: str, width: int, *, right: bool = True) -> str:
    pad = " " * max(0, width - _width(text))
    return pad + text if right else text + pad


def format_report(summaries: dict[str, Summary], heading: str) -> str:
    floor = summaries["floor"].p50_ms
    head = ["p50 ms", "p90 ms", "平均 ms", "最小 ms", "ratio"]
    rows = [heading, "", _cell("", 34, right=False) + "".join(_cell(h, 10) for h in head)]
    names = {
        "floor": "API 単体（POST /rides 1 往復）",
        "online": "タップ→確定（オンライン）",
        "offline": "タップ→仮受付（オフライン）",
    }
    for kind in KINDS:
        s = summaries[kind]
        ratio = s.p50_ms / floor if floor > 0 else float("nan")
        figures = [
            f"{s.p50_ms:.2f}",
            f"{s.p90_ms:.2f}",
            f"{s.mean_ms:.2f}",
            f"{s.min_ms:.2f}",
            f"{ratio:.2f}",
        ]
        rows.append(_cell(names[kind], 34, right=False) + "".join(_cell(v, 10) for v in figures))
    return "\n".join(rows)


class Floor:
    """The bare API round trip: a terminal of its own, a proof made before the clock starts."""

    def __init__(self, base_url: str, terminal_id: int, key: bytes) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0, trust_env=False)
        self.terminal_id = terminal_id
        self.key = TerminalKey(Ed25519PrivateKey.from_private_bytes(key))
        self.sequence = 0
        self.card_seconds: list[float] = []
        assertion = self.key.assertion(terminal_id, datetime.now(UTC))
        token = self.http.post("/api/v1/auth/terminal-token", json={"assertion": assertion})
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}"}

    def tap(self, card: IssuedCardFile) -> float:
        challenge = self.http.post("/api/v1/card-challenges", json={"purpose": "board"}, headers=self.headers)
        challenge.raise_for_status()
        reader = JPKIReader(VirtualCardTransport(card.path))
        signing = time.perf_counter()
        signature = reader.sign_with_user_key(base64.b64decode(challenge.json()["message"]), CARD_PIN)
        self.card_seconds.append(time.perf_counter() - signing)
        self.sequence += 1
        body = {
            "sequence": self.sequence,
            "card": {
                "certificate": card.credentials.certificate_b64,
                "chain": list(card.credentials.chain_b64),
                "nonce": challenge.json()["nonce"],
                "signature": base64.b64encode(signature).decode(),
            },
        }
        headers = {**self.headers, "Idempotency-Key": f"floor-{secrets.token_hex(8)}"}
        started = time.perf_counter()
        response = self.http.post("/api/v1/rides", json=body, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"floor boarding refused: {response.status_code} {response.text}")
        fare = self.http.post(
            f"/api/v1/rides/{response.json()['ride_id']}/fare",
            json={"meter_fare": 1500},
            headers={**self.headers, "Idempotency-Key": f"fare-{secrets.token_hex(8)}"},
        )
        fare.raise_for_status()
        return elapsed


class Kiosk:
    """The car's kiosk served on 127.0.0.1, driven the way its page drives it."""

    def __init__(self, data_dir: Path) -> None:
        self.context = KioskContext(
            data_dir=data_dir,
            slot=VirtualCardSlot(),
            http=httpx.Client(timeout=KIOSK_TIMEOUT),
            background=False,
        )
        self.server = make_server("127.0.0.1", 0, create_kiosk_app(self.context), threaded=False)
        self.thread = threading.Thread(target=self.server.serve_forever, name="bench-kiosk", daemon=True)
        self.thread.start()
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.server.server_port}", timeout=30.0, trust_env=False
        )

    def tap(self, card: Path, *, online: bool) -> float:
        self.context.connectivity.mark(online)
        slot = self.context.slot
        assert isinstance(slot, VirtualCardSlot)
        slot.insert(card)
        started = time.perf_counter()
        check = self.http.post("/api/board/check", json={}).json()
        answer = self.http.post(
            "/api/board", json={"pin": CARD_PIN if check.get("pin_needed") else None}
        ).json()
        elapsed = time.perf_counter() - started
        slot.eject()
        wanted = "confirmed" if online else "pending"
        if answer.get("outcome") != wanted:
            raise RuntimeError(f"the kiosk did not answer {wanted}: {json.dumps(answer, ensure_ascii=False)}")
        fare = self.http.post(
            "/api/alight", json={"sequence": answer["ride"]["sequence"], "meter_fare": 1500}
        )
        fare.raise_for_status()
        return elapsed

    def close(self) -> None:
        self.http.close()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
        self.context.close()
        if self.context.http is not None:
            self.context.http.close()


def drive(
    args: argparse.Namespace, cards: list[IssuedCardFile], floor: Floor, kiosk: Kiosk
) -> dict[str, list[float]]:
    taps: dict[str, Callable[[IssuedCardFile], float]] = {
        "floor": floor.tap,
        "online": lambda card: kiosk.tap(card.path, online=True),
        "offline": lambda card: kiosk.tap(card.path, online=False),
    }
    samples: dict[str, list[float]] = {kind: [] for kind in (*KINDS, CARD)}
    for index in range(args.warmup + args.rounds):
        card = cards[index % len(cards)]
        for kind in KINDS:
            elapsed = taps[kind](card)
            if index >= args.warmup:
                samples[kind].append(elapsed)
    samples[CARD] = floor.card_seconds[args.warmup :]
    return samples


def run(args: argparse.Namespace) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request of the kiosk or issuer
    now = datetime.now(UTC)
    db_name = f"bench_terminal_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-terminal-") as tmp:
        work = Path(tmp)
        if args.database_url:
            say(f"データベース {db_name} を作成しています…")
            url = create_database(args.database_url, db_name)
        else:
            url = f"sqlite:///{work / 'bench.sqlite3'}"
        try:
            migrate.upgrade(url)
            with servers.issuer_repository(work / "issuer", now=now) as issuer:
                say(f"仮想カードを {args.cards} 枚発行しています…")
                cards = issue_cards(issuer, work / "cards", args.cards, now=now)
                engine = make_engine(url)
                try:
                    with make_session_factory(engine)() as session:
                        city = seed_city(
                            session,
                            cards=cards,
                            terminal_count=1,
                            root_pem=issuer.root_certificate_pem_path.read_bytes(),
                            grant_amount=10 * (args.rounds + args.warmup) + 1,
                            now=now,
                        )
                        program = session.get(Program, city.program_id)
                        assert program is not None
                        program.options = {**program.options, "offline_max_rides_per_day": 20}
                        vehicle_id = session.scalar(select(Vehicle.id).order_by(Vehicle.id))
                        assert vehicle_id is not None
                        code = terminals.create_terminal(
                            session,
                            vehicle_id=vehicle_id,
                            municipality_id=city.municipality_id,
                            actor="bench",
                            now=now,
                            ttl=timedelta(hours=1),
                        ).enrolment_code
                        session.commit()
                finally:
                    engine.dispose()
                api_env = {
                    "DATABASE_URL": url,
                    "JWT_SECRET": secrets.token_urlsafe(48),
                    "CARD_TRUST_ANCHOR": str(issuer.root_certificate_pem_path),
                    "CELERY_BROKER_URL": "memory://",
                    "VOUCHER_VAR_DIR": str(work / "var"),
                    "LOG_LEVEL": "WARNING",
                }
                say("gunicorn で API を起動しています…")
                api = servers.start_server("api", API_APP, api_env, work, health_path="/api/v1/health")
                kiosk: Kiosk | None = None
                try:
                    data_dir = work / "terminal"
                    enrol_terminal(data_dir, api.base_url, code)
                    with Terminal.open(data_dir) as terminal:
                        terminal.refresh_snapshot()
                    floor = Floor(api.base_url, city.terminals[0].terminal_id, city.terminals[0].private_key)
                    kiosk = Kiosk(data_dir)
                    say(f"計測しています（{args.warmup} ラウンドの準備運転のあと {args.rounds} ラウンド）…")
                    samples = drive(args, cards, floor, kiosk)
                    with Terminal.open(data_dir) as terminal:
                        report = terminal.sync()
                finally:
                    if kiosk is not None:
                        kiosk.close()
                    api.stop()
        finally:
            if args.database_url:
                say(f"データベース {db_name} を削除しています…")
                drop_database(args.database_url, db_name)

    summaries = {kind: Summary.of(kind, samples[kind]) for kind in (*KINDS, CARD)}
    engine_name = "PostgreSQL" if args.database_url else "SQLite"
    heading = (
        f"端末ベンチマーク — {args.rounds} ラウンド（準備 {args.warmup}）、カード {args.cards} 枚、"
        f"API は gunicorn -w {servers.WORKERS} -k {servers.WORKER_CLASS} + {engine_name}、"
        f"CPU {os.cpu_count()} コア（すべて同じマシン）\n"
        "タップ→確定 = キオスクの /api/board/check と /api/board（カード読取・署名・採番・記録を含む。"
        "暗証番号を押す人の時間は含まない）"
    )
    print(format_report(summaries, heading))
    card, api_p50 = summaries[CARD].p50_ms, summaries["floor"].p50_ms
    print(
        f"うち仮想カードの署名（APDU 経由、1 回）: p50 {card:.2f} ms。端末自身の処理（p50 の差し引き）: "
        f"オンライン {summaries['online'].p50_ms - card - api_p50:.2f} ms、"
        f"オフライン {summaries['offline'].p50_ms - card:.2f} ms"
    )
    counts = {status: report.count(status) for status in ("accepted", "duplicate", "conflict", "rejected")}
    print(
        f"オフラインの記録の送信: {report.sent} 件 — "
        + "、".join(f"{status} {n}" for status, n in counts.items())
        + f"、未送信 {report.still_pending}"
    )
    if args.json is not None:
        document: dict[str, Any] = {
            "rounds": args.rounds,
            "summaries": {kind: asdict(s) for kind, s in summaries.items()},
            "card_signature_p50_ms": summaries[CARD].p50_ms,
            "ratio_online": summaries["online"].p50_ms / summaries["floor"].p50_ms,
            "ratio_offline": summaries["offline"].p50_ms / summaries["floor"].p50_ms,
            "sync": {"sent": report.sent, **counts, "still_pending": report.still_pending},
        }
        args.json.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    all_accepted = counts["accepted"] == report.sent and report.still_pending == 0
    return 0 if all_accepted else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))
