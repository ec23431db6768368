"""Servers of a run: gunicorn processes for the API and the floor, and the card issuer's repository.

Only what the benchmark started is stopped, by its own handle.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from werkzeug.serving import make_server

from auth_mock.issuer import Issuer
from auth_mock.issuer_http import create_issuer_app

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
WORKER_CLASS = "sync"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_command(app: str, port: int) -> list[str]:
    """The same server settings for the API and the floor: 2 sync workers, no access log."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        "--worker-class",
        WORKER_CLASS,
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--graceful-timeout",
        "10",
        app,
    ]


@dataclass
class Server:
    """A gunicorn master this run started, and where its log goes."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    _log: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the master (it stops its workers), SIGKILL to it if it does not leave in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def start_server(
    name: str, app: str, env: Mapping[str, str], log_dir: Path, *, health_path: str, timeout: float = 60.0
) -> Server:
    """Start gunicorn serving `app` and wait until `health_path` answers with a healthy database.

    Raises RuntimeError (with the end of the server's log) when it exits or does not answer in time.
    """
    port = free_port()
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    environment = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        gunicorn_command(app, port), cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    server = Server(name, process, port, log_path, log)
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = server.log_tail()
                server.stop()
                raise RuntimeError(f"{name} のサーバーが起動しませんでした:\n{tail}")
            try:
                response = client.get(health_path)
                body = response.json()
                # The API's health also pings the broker, which the benchmark does not need.
                if isinstance(body, dict) and body.get("database", body.get("status")) == "ok":
                    return server
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"{name} のサーバーが {timeout:.0f} 秒以内に応答しませんでした:\n{tail}")


@contextmanager
def issuer_repository(directory: Path, *, now: datetime) -> Iterator[Issuer]:
    """A new mock issuer whose OCSP responder and CRLs are served on 127.0.0.1 for the run.

    The API checks revocation as it would in production (OCSP, cached per card for
    REVOCATION_CACHE_SECONDS), so the certificates must point at a responder that answers. The
    server runs in a thread of the benchmark's own process, which only waits while clients drive.
    """
    served: list[Any] = []

    def late_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        # The port is needed to create the issuer (it goes into the certificates), the issuer to
        # build the app: bind first, attach the app after.
        return served[0](environ, start_response)  # type: ignore[no-any-return]

    server = make_server("127.0.0.1", 0, late_app, threaded=True)
    issuer = Issuer.create(directory, base_url=f"http://127.0.0.1:{server.server_port}", now=now)
    served.append(create_issuer_app(issuer))
    thread = threading.Thread(target=server.serve_forever, name="bench-issuer-http", daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
