"""The boarding benchmark (issue 2, point 11).

1. Creates a fresh PostgreSQL database, migrates it, seeds a small city with the project's services and
   a few virtual cards from auth_mock's issuer.
2. Floor: serves `bench.rides.floor_app` with gunicorn (2 sync workers) and drives the bare conditional
   UPDATE + ledger INSERT from the clients for the given time.
3. API: serves `voucher_api.app:create_app()` with the same gunicorn settings and drives whole rides
   (signed boarding with the challenge the last answer handed over → fare; a challenge request only
   when a client holds none) from the same number of clients for the same time.
4. Prints rides/s, p50 and p99 of both, and the ratio api_rides_per_s / floor_rides_per_s; stops the
   servers and drops the database.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.rides import servers
from bench.rides.loadgen import API_STEPS, ApiClientSpec, ClientSpec, FloorClientSpec, PhasePlan, run_phase
from bench.rides.report import PhaseResult, client_cores, format_table, ratio, summarise
from bench.rides.seed import (
    IssuedCardFile,
    SeededCity,
    create_database,
    drop_database,
    issue_cards,
    seed_city,
)
from voucher_api import migrate
from voucher_api.db import make_engine, make_session_factory

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
API_APP = "voucher_api.app:create_app()"
FLOOR_APP = "bench.rides.floor_app:create_floor_app()"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rides",
        description=(
            "乗車ベンチマーク: API（gunicorn + PostgreSQL）の乗車＋運賃と、"
            "同じ構成の下限（フロア）を比べます。"
        ),
    )
    parser.add_argument("--clients", type=int, default=16, help="同時クライアント数（既定 16、2 以上を推奨）")
    parser.add_argument("--seconds", type=float, default=20.0, help="各フェーズの計測秒数（既定 20）")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="各ラウンドの計測前のウォームアップ秒数（既定 2）"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="フロアと API を交互に走らせる回数（既定 2、計測秒数を分割）"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="管理用の PostgreSQL URL。この隣に使い捨てのデータベースを作ります",
    )
    parser.add_argument("--cards", type=int, default=8, help="発行する仮想カード（利用者）の数（既定 8）")
    parser.add_argument("--processes", type=int, default=2, help="負荷生成プロセス数（既定 2）")
    parser.add_argument(
        "--max-rides", type=int, default=200_000, help="各フェーズの乗車数の上限（既定 200000）"
    )
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL, help="API に渡す CELERY_BROKER_URL")
    parser.add_argument("--json", type=Path, default=None, help="結果を JSON でも書き出すファイル")
    args = parser.parse_args(argv)
    if min(args.clients, args.cards, args.processes, args.max_rides, args.rounds) < 1:
        parser.error("--clients, --cards, --processes, --max-rides, --rounds は 1 以上です")
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds は正、--warmup は 0 以上です")
    if not args.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        parser.error("--database-url は PostgreSQL の URL です")
    return args


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _server_version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()


def _drive_rounds(
    args: argparse.Namespace,
    floor_server: servers.Server,
    api_server: servers.Server,
    floor_clients: tuple[ClientSpec, ...],
    api_clients: tuple[ClientSpec, ...],
) -> tuple[list[PhaseResult], list[PhaseResult]]:
    """Alternate floor and API runs, `rounds` of each, so a change of load on the machine during the
    benchmark falls on both sides rather than on one."""
    per_round = args.seconds / args.rounds
    max_rides = max(1, args.max_rides // args.rounds)
    floor_runs: list[PhaseResult] = []
    api_runs: list[PhaseResult] = []
    for number in range(1, args.rounds + 1):
        for name, server, clients, runs in (
            ("floor", floor_server, floor_clients, floor_runs),
            ("api", api_server, api_clients, api_runs),
        ):
            say(
                f"{name}（{number}/{args.rounds}）: {args.clients} クライアントで"
                f" {args.warmup:g}+{per_round:g} 秒…"
            )
            runs.append(
                run_phase(
                    PhasePlan(
                        base_url=server.base_url,
                        clients=clients,
                        warmup_seconds=args.warmup,
                        seconds=per_round,
                        max_rides=max_rides,
                        processes=args.processes,
                        # A ride attempt takes one sequence number and at most rides_per_client are made.
                        first_sequence=1 + (number - 1) * math.ceil(max_rides / len(clients)),
                    )
                )
            )
    return floor_runs, api_runs


def _clients(city: SeededCity, cards: list[IssuedCardFile], count: int) -> tuple[tuple[ClientSpec, ...], ...]:
    """Client i drives terminal i and card i mod cards in the API phase, that card's entitlement in the
    floor phase, so both phases meet the same row contention."""
    api: list[ClientSpec] = []
    floor: list[ClientSpec] = []
    for i in range(count):
        terminal = city.terminals[i]
        api.append(
            ApiClientSpec(terminal.terminal_id, terminal.private_key, cards[i % len(cards)].credentials)
        )
        floor.append(FloorClientSpec(city.entitlement_ids[i % len(cards)]))
    return tuple(floor), tuple(api)


def _finite(value: Any) -> Any:
    """The document with NaN (no rides to measure) as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    """The whole benchmark; returns the exit status (1 when a phase completed no ride at all)."""
    now = datetime.now(UTC)
    cards_count = min(args.cards, args.clients)
    db_name = f"bench_rides_{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-rides-") as tmp:
        work = Path(tmp)
        say(f"データベース {db_name} を作成しています…")
        url = create_database(args.database_url, db_name)
        try:
            migrate.upgrade(url)
            version = _server_version(url)
            with servers.issuer_repository(work / "issuer", now=now) as issuer:
                say(f"仮想カードを {cards_count} 枚発行しています…")
                cards = issue_cards(issuer, work / "cards", cards_count, now=now)
                engine = make_engine(url)
                try:
                    with make_session_factory(engine)() as session:
                        city = seed_city(
                            session,
                            cards=cards,
                            terminal_count=args.clients,
                            root_pem=issuer.root_certificate_pem_path.read_bytes(),
                            grant_amount=2 * args.max_rides + 1,
                            now=now,
                        )
                finally:
                    engine.dispose()
                floor_clients, api_clients = _clients(city, cards, args.clients)
                api_env = {
                    "DATABASE_URL": url,
                    "JWT_SECRET": secrets.token_urlsafe(48),
                    "CARD_TRUST_ANCHOR": str(issuer.root_certificate_pem_path),
                    "CELERY_BROKER_URL": args.broker_url,
                    "VOUCHER_VAR_DIR": str(work / "var"),
                    "TERMINAL_TOKEN_TTL": str(int(args.warmup + args.seconds) + 900),
                    "LOG_LEVEL": "WARNING",
                }
                say("gunicorn を起動しています（API とフロア、同じ設定）…")
                started: list[servers.Server] = []
                try:
                    started.append(
                        servers.start_server(
                            "floor", FLOOR_APP, {"DATABASE_URL": url}, work, health_path="/health"
                        )
                    )
                    started.append(
                        servers.start_server("api", API_APP, api_env, work, health_path="/api/v1/health")
                    )
                    floor_runs, api_runs = _drive_rounds(
                        args, started[0], started[1], floor_clients, api_clients
                    )
                finally:
                    for server in started:
                        server.stop()
        finally:
            say(f"データベース {db_name} を削除しています…")
            drop_database(args.database_url, db_name)

    api = summarise("乗車（乗車＋降車の 2 リクエスト）", api_runs, step_names=API_STEPS)
    floor = summarise("UPDATE + INSERT のみ（1 リクエスト）", floor_runs)
    per_round = [
        ratio(summarise("", [a]), summarise("", [f])) for a, f in zip(api_runs, floor_runs, strict=True)
    ]
    capped = any(o.reached_max_rides for r in api_runs + floor_runs for o in r.outcomes)
    heading = (
        f"乗車ベンチマーク — クライアント {args.clients}（{min(args.processes, args.clients)} プロセス）、"
        f"計測 {args.seconds:g} 秒（{args.rounds} ラウンドに分けて交互、"
        f"各ウォームアップ {args.warmup:g} 秒）、"
        f"カード {cards_count} 枚、"
        f"端末 {args.clients} 台\n"
        f"gunicorn -w {servers.WORKERS} -k {servers.WORKER_CLASS}、PostgreSQL {version}、"
        f"CPU {os.cpu_count()} コア（負荷生成も同じマシン）\n"
        "カードの署名は負荷生成側で cryptography により計算（カードファイルの鍵、同一の署名）"
    )
    print(format_table(api, floor, heading=heading))
    print("ラウンドごとの ratio: " + ", ".join("-" if math.isnan(v) else f"{v:.2f}" for v in per_round))
    print(
        f"負荷生成が使った CPU（平均コア数）: API {client_cores(api_runs):.2f}、"
        f"フロア {client_cores(floor_runs):.2f}（2 コアをサーバー・PostgreSQL と共有）"
    )
    if capped:
        print("注: --max-rides に達したクライアントがあるため、最後の乗車までの時間で割っています")
    if args.json is not None:
        document = {
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "api": asdict(api) | {"rides_per_second": api.rides_per_second},
            "floor": asdict(floor) | {"rides_per_second": floor.rides_per_second},
            "ratio": ratio(api, floor),
            "ratio_per_round": per_round,
        }
        args.json.write_text(
            json.dumps(_finite(document), ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8"
        )
    if api.rides == 0 or floor.rides == 0:
        say("計測区間に完了した乗車がないフェーズがあります（上のエラーを確認してください）")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))
