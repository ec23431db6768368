#!/usr/bin/env python3
"""The two commands. Needs only Python 3.11+; creates .venv and installs the project on first use.

python3 dev.py start    # the whole system on the embedded default (SQLite, server-less broker)
python3 dev.py test     # the test suite (extra arguments go to pytest)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed-pyproject-sha256"

# The demo's in-car kiosk: a terminal of its own on this vehicle of this operator, signed in by this driver
# (voucher_api/demo.py: vehicles are labelled 1号車, 2号車, …; each operator's drivers are D001, D002, …).
KIOSK_OPERATOR = "OP01"
KIOSK_VEHICLE = "1号車"
KIOSK_DRIVER = "D001"
# demo-summary.txt starts with this when `seed-demo` has just made the city (a new database).
DEMO_CREATED = "デモデータを作成しました"


def ensure_environment() -> None:
    """Create the virtual environment and (re)install when pyproject.toml changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit("Python 3.11 or newer is required.")
    if not PY.exists():
        print("・仮想環境を作成しています (.venv) / creating the virtual environment", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != digest:
        print("・依存パッケージをインストールしています / installing dependencies", flush=True)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(digest)


def run_tests(args: list[str]) -> int:
    return subprocess.call([str(PY), "-m", "pytest", *args], cwd=ROOT)


@dataclass
class Kiosk:
    """What the summary says about the demo's kiosk."""

    url: str
    terminal_id: int | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)


def _kiosk_identity(data_dir: Path) -> tuple[int, str] | None:
    """(terminal id, API URL) of the terminal enrolled in `data_dir` (driver_terminal/store.py), or None."""
    store = data_dir / "terminal.sqlite3"
    if not store.is_file():
        return None
    try:
        db = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT terminal_id, api_url FROM identity WHERE id = 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return (int(row[0]), str(row[1])) if row else None


def _answers(url: str) -> bool:
    """Whether something answers HTTP at `url` (any status: an error page is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local http:// URL built here
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def _wait_for(url: str, seconds: float, give_up: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _answers(url):
            return True
        if give_up():
            return False
        time.sleep(0.5)
    return False


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit {result.returncode}"


def enrol_kiosk(
    env: dict[str, str], var: Path, data_dir: Path, api_url: str, give_up: Callable[[], bool]
) -> str | None:
    """Enrol the demo kiosk the way a real device is: a one-time code, then `driver-terminal enrol`.

    Reuses `data_dir` when it holds a terminal of this API; one left by an earlier database or another
    port is moved to `<data_dir>.old`. Returns None when the kiosk is enrolled, else what went wrong.
    """
    found = _kiosk_identity(data_dir)
    summary = var / "demo-summary.txt"
    fresh_city = summary.is_file() and summary.read_text(encoding="utf-8").startswith(DEMO_CREATED)
    if found is not None and found[1] == api_url and not fresh_city:
        return None
    if data_dir.exists():
        old = data_dir.with_name(data_dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        data_dir.rename(old)
        print(
            f"・以前の車載端末のデータを {old} に移しました / moved the earlier kiosk data to {old}",
            flush=True,
        )
    if not _wait_for(f"{api_url}/api/v1/health", 60, give_up):
        return "API が応答しません / the API did not answer"
    made = subprocess.run(
        [
            str(BIN / "voucher-api"),
            "terminal-code",
            "--operator",
            KIOSK_OPERATOR,
            "--vehicle",
            KIOSK_VEHICLE,
            "--code-only",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code = made.stdout.strip()
    if made.returncode != 0 or not code:
        return f"voucher-api terminal-code: {_last_line(made)}"
    enrolled = subprocess.run(
        [
            str(BIN / "driver-terminal"),
            "--data-dir",
            str(data_dir),
            "enrol",
            "--api",
            api_url,
            "--code",
            code,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if enrolled.returncode != 0:
        return f"driver-terminal enrol: {_last_line(enrolled)}"
    print(f"・{enrolled.stdout.strip()}", flush=True)
    return None


def _demo_card(var: Path) -> tuple[str, str] | None:
    """(file name, PIN) of the first demo card whose holder has a program (var/cards/index.json)."""
    try:
        entries = json.loads((var / "cards" / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("program") and entry.get("file"):
            return str(entry["file"]), str(entry.get("pin") or "")
    return None


def kiosk_lines(kiosk: Kiosk, var: Path) -> list[str]:
    """The kiosk's part of the summary, Japanese first."""
    if kiosk.problem is not None:
        return [
            f"  車載端末       {kiosk.url}/ (in-car kiosk: 未登録 / not enrolled)",
            f"    登録できませんでした / enrolment failed: {kiosk.problem}",
            "    画面の登録欄に登録コードを入力できます / type a one-time code on its set-up screen:",
            f"      VOUCHER_VAR_DIR={var} .venv/bin/voucher-api terminal-code "
            f"--operator {KIOSK_OPERATOR} --vehicle {KIOSK_VEHICLE}",
            *kiosk.notes,
        ]
    cards = var / "cards"
    example, pin = _demo_card(var) or ("<ファイル名>.card.json", "1234")
    insert = (
        f"curl -X POST {kiosk.url}/dev/reader/insert -H 'Content-Type: application/json' "
        f'-d \'{{"card":"{example}"}}\''
    )
    return [
        f"  車載端末       {kiosk.url}/ (in-car kiosk: 端末 {kiosk.terminal_id}、"
        f"{KIOSK_OPERATOR} {KIOSK_VEHICLE} / terminal {kiosk.terminal_id})",
        f"    運転者コード {KIOSK_DRIVER} で乗務開始 / sign in with driver code {KIOSK_DRIVER}",
        f"    カード: {cards}/*.card.json(上の仮想カード一覧、暗証番号 {pin})"
        f" / cards: the virtual cards listed above, PIN {pin}",
        f"    カードを置く / put a card on the reader: {insert}",
        f"    取り出す / take it off: curl -X POST {kiosk.url}/dev/reader/eject",
        *kiosk.notes,
    ]


def print_summary(var: Path, api_port: str, issuer_port: str, bridge_port: str, kiosk: Kiosk) -> None:
    summary = var / "demo-summary.txt"
    print("\n" + "=" * 72)
    print(f"  職員サインイン http://127.0.0.1:{api_port}/staff/sign-in  (staff sign-in)")
    print("                 窓口・移動市役所 (madoguchi, idou)、精算 (keiri, shonin, kenmu)")
    print(f"  精算(会計課)   http://127.0.0.1:{api_port}/staff/finance  (finance)")
    print(f"  API            http://127.0.0.1:{api_port}/api/v1/health")
    print(f"  API の説明     http://127.0.0.1:{api_port}/api/v1/docs")
    print(f"  OpenAPI        http://127.0.0.1:{api_port}/api/v1/openapi.json")
    print(f"  CRL / OCSP     http://127.0.0.1:{issuer_port}/ (mock J-LIS)、住民基本台帳 /registry")
    print(f"  カードリーダー http://127.0.0.1:{bridge_port}/reader (mock reader bridge)")
    if summary.exists():
        print(summary.read_text())
    print("\n".join(kiosk_lines(kiosk, var)))
    print("  止めるには Ctrl-C / press Ctrl-C to stop")
    print("=" * 72 + "\n", flush=True)


def start() -> int:
    """Migrate, seed the demo city, then run the API, the card issuer's CRL/OCSP and registry, the card
    bridge, a worker, beat and one in-car kiosk (enrolled on first start)."""
    env = dict(os.environ)
    var = Path(env.setdefault("VOUCHER_VAR_DIR", str(ROOT / "var"))).resolve()
    var.mkdir(parents=True, exist_ok=True)
    env.setdefault("CARD_TRUST_ANCHOR", str(var / "issuer" / "root-ca.pem"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    api_port = env.get("PORT", "8000")
    issuer_port = env.get("ISSUER_PORT", "8001")
    bridge_port = env.get("BRIDGE_PORT", "8765")
    kiosk_port = env.get("KIOSK_PORT", "8090")
    api_url = f"http://127.0.0.1:{api_port}"
    env.setdefault("CARD_BRIDGE_URL", f"http://127.0.0.1:{bridge_port}")
    env.setdefault("MOCK_ISSUER_URL", f"http://127.0.0.1:{issuer_port}")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{api_port}")
    env.setdefault("REGISTRY_URL", f"http://127.0.0.1:{issuer_port}/registry")

    for step in (["migrate"], ["seed-demo"]):
        if subprocess.call([str(BIN / "voucher-api"), *step], cwd=ROOT, env=env) != 0:
            print(f"失敗しました / failed: voucher-api {' '.join(step)}", file=sys.stderr)
            return 1

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # From here on Ctrl-C stops what has been started (the services run in sessions of their own).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    # (name, process, essential, the signal that asks it to stop)
    procs: list[tuple[str, subprocess.Popen[bytes], bool, signal.Signals]] = []

    def spawn(
        name: str, cmd: list[str], *, essential: bool = True, stop_with: signal.Signals = signal.SIGTERM
    ) -> None:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        procs.append((name, process, essential, stop_with))

    spawn(
        "api",
        [
            str(BIN / "gunicorn"),
            "-w",
            "2",
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{api_port}",
            "--access-logfile",
            "-",
            "voucher_api.app:create_app()",
        ],
    )
    spawn(
        "mock-services",
        [
            str(PY),
            "-m",
            "auth_mock.server",
            "--port",
            issuer_port,
            "--issuer-dir",
            str(var / "issuer"),
            "--registry",
            str(var / "registry.sqlite3"),
        ],
    )
    spawn(
        "card-bridge",
        [
            str(BIN / "mock-card"),
            "bridge",
            "--port",
            bridge_port,
            "--cards",
            str(var / "cards"),
            "--origin",
            f"http://127.0.0.1:{api_port}",
        ],
    )
    spawn("worker", [str(BIN / "celery"), "-A", "settlement.celery_app", "worker", "-c", "2", "-l", "INFO"])
    spawn(
        "beat",
        [
            str(BIN / "celery"),
            "-A",
            "settlement.celery_app",
            "beat",
            "-l",
            "INFO",
            "-s",
            str(var / "celerybeat-schedule"),
        ],
    )
    # The kiosk is the driver's screen: it enrols once (needs the API up), then reuses var/kiosk. It is not
    # essential: when it cannot be enrolled or stops, the rest keeps running.
    kiosk_dir = var / "kiosk"
    kiosk = Kiosk(url=f"http://127.0.0.1:{kiosk_port}")

    def api_down() -> bool:
        return stopping or procs[0][1].poll() is not None

    try:
        kiosk.problem = enrol_kiosk(env, var, kiosk_dir, api_url, api_down)
    except (OSError, subprocess.SubprocessError) as error:
        kiosk.problem = str(error)
    found = _kiosk_identity(kiosk_dir)
    kiosk.terminal_id = found[0] if found else None
    if not stopping:
        # SIGINT: the kiosk stops its sync thread and closes its journal on KeyboardInterrupt.
        spawn(
            "kiosk",
            [
                str(BIN / "driver-terminal"),
                "--data-dir",
                str(kiosk_dir),
                "kiosk",
                "--port",
                kiosk_port,
                "--virtual-reader",
                str(var / "cards"),
                "--api",
                api_url,
            ],
            essential=False,
            stop_with=signal.SIGINT,
        )
        if not _wait_for(f"{kiosk.url}/api/reader", 15, lambda: stopping or procs[-1][1].poll() is not None):
            kiosk.notes.append("    車載端末の画面が起動していません / the kiosk did not start (see its log)")
    if not stopping:
        print_summary(var, api_port, issuer_port, bridge_port, kiosk)

    exit_code = 0
    reported: set[str] = set()
    while not stopping:
        for name, proc, essential, _ in procs:
            if proc.poll() is not None and name not in reported:
                reported.add(name)
                print(f"{name} が停止しました (exit {proc.returncode}) / {name} stopped", file=sys.stderr)
                if essential:
                    stopping, exit_code = True, 1
        time.sleep(0.5)
    print("\n停止しています… / stopping…", flush=True)
    # Each main process gets its stop signal (SIGTERM; the kiosk SIGINT) and stops its own children
    # (gunicorn its workers, Celery its pool, warmly); only what is still running after the deadline is
    # killed, with its whole group.
    for _name, proc, _essential, stop_with in procs:
        if proc.poll() is None:
            proc.send_signal(stop_with)
    deadline = time.monotonic() + 30
    for name, proc, _essential, _stop_with in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{name} が止まらないため強制終了します / killing {name}", file=sys.stderr)
            os.killpg(proc.pid, signal.SIGKILL)
    print("停止しました / stopped", flush=True)
    return exit_code


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in {"start", "test", "setup"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "setup":
        return 0
    if command == "test":
        return run_tests(rest)
    return start()


if __name__ == "__main__":
    sys.exit(main())
