#!/usr/bin/env python3
"""The two commands. Needs only Python 3.11+; creates .venv and installs the project on first use.

python3 dev.py start    # the whole system on the embedded default (SQLite, server-less broker)
python3 dev.py test     # the test suite (extra arguments go to pytest)
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".installed-pyproject-sha256"


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


def start() -> int:
    """Migrate, seed the demo city, then run the API, the card issuer's CRL/OCSP, a worker and beat."""
    env = dict(os.environ)
    var = Path(env.setdefault("VOUCHER_VAR_DIR", str(ROOT / "var"))).resolve()
    var.mkdir(parents=True, exist_ok=True)
    env.setdefault("CARD_TRUST_ANCHOR", str(var / "issuer" / "root-ca.pem"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    api_port = env.get("PORT", "8000")
    issuer_port = env.get("ISSUER_PORT", "8001")
    bridge_port = env.get("BRIDGE_PORT", "8765")
    env.setdefault("CARD_BRIDGE_URL", f"http://127.0.0.1:{bridge_port}")
    env.setdefault("MOCK_ISSUER_URL", f"http://127.0.0.1:{issuer_port}")
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{api_port}")
    env.setdefault("REGISTRY_URL", f"http://127.0.0.1:{issuer_port}/registry")

    for step in (["migrate"], ["seed-demo"]):
        if subprocess.call([str(BIN / "voucher-api"), *step], cwd=ROOT, env=env) != 0:
            print(f"失敗しました / failed: voucher-api {' '.join(step)}", file=sys.stderr)
            return 1

    procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(name: str, cmd: list[str]) -> None:
        procs.append((name, subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)))

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
    summary = var / "demo-summary.txt"
    print("\n" + "=" * 72)
    print(f"  窓口・移動市役所 http://127.0.0.1:{api_port}/staff/sign-in  (counter and mobile office)")
    print(f"  API            http://127.0.0.1:{api_port}/api/v1/health")
    print(f"  API の説明     http://127.0.0.1:{api_port}/api/v1/docs")
    print(f"  OpenAPI        http://127.0.0.1:{api_port}/api/v1/openapi.json")
    print(f"  CRL / OCSP     http://127.0.0.1:{issuer_port}/ (mock J-LIS)、住民基本台帳 /registry")
    print(f"  カードリーダー http://127.0.0.1:{bridge_port}/reader (mock reader bridge)")
    if summary.exists():
        print(summary.read_text())
    print("  止めるには Ctrl-C / press Ctrl-C to stop")
    print("=" * 72 + "\n", flush=True)

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, proc in procs:
            if proc.poll() is not None:
                print(f"{name} が停止しました (exit {proc.returncode}) / {name} stopped", file=sys.stderr)
                stopping, exit_code = True, 1
        time.sleep(0.5)
    print("\n停止しています… / stopping…", flush=True)
    # Each main process gets SIGTERM and stops its own children (gunicorn its workers, Celery its pool,
    # warmly); only what is still running after the deadline is killed, with its whole group.
    for _name, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for name, proc in procs:
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
