"""GET /api/v1/health tells the truth about the database and the broker (terminals and dev.py poll it).

The body keeps its shape in every case ({status, database, broker}); 503 with status `degraded` and the
part that is `unavailable` when anything is down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import RecordingTaskSender
from voucher_api.app import create_app
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.tasks_client import CeleryTaskSender, TaskSender

# kombu's SQLAlchemy transport declares its queue model with `lazy="noload"`, deprecated in SQLAlchemy 2.1.
KOMBU_NOLOAD = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy is deprecated")


class SilentBroker(RecordingTaskSender):
    """A broker client whose ping answers False (reached nothing) instead of raising."""

    def ping(self) -> bool:
        return False


class RefusingBroker(RecordingTaskSender):
    def ping(self) -> bool:
        raise ConnectionRefusedError("broker refused the connection")


def health_of(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any, sender: TaskSender
) -> tuple[int, str, dict[str, Any]]:
    app: Flask = create_app(
        settings, session_factory=session_factory, clock=FixedClock(), verifier=verifier, task_sender=sender
    )
    r = app.test_client().get("/api/v1/health")
    return r.status_code, r.headers["Content-Type"], r.get_json()


@pytest.fixture
def unreachable_database(tmp_path: Path) -> sessionmaker[Session]:
    """A database that cannot be opened (its directory does not exist): every query fails."""
    return make_session_factory(make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'voucher.sqlite3'}"))


def test_healthy_database_and_broker_answer_200(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any
) -> None:
    status, _, body = health_of(settings, session_factory, verifier, RecordingTaskSender())
    assert (status, body) == (200, {"status": "ok", "database": "ok", "broker": "ok"})


@pytest.mark.parametrize("sender", [SilentBroker(), RefusingBroker()], ids=["ping false", "ping raises"])
def test_a_broker_that_does_not_answer_is_503_naming_the_broker(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any, sender: TaskSender
) -> None:
    status, content_type, body = health_of(settings, session_factory, verifier, sender)
    assert status == 503
    assert content_type.startswith("application/json")
    assert body == {"status": "degraded", "database": "ok", "broker": "unavailable"}


def test_a_database_that_fails_is_503_naming_the_database(
    settings: Settings, unreachable_database: sessionmaker[Session], verifier: Any
) -> None:
    status, _, body = health_of(settings, unreachable_database, verifier, RecordingTaskSender())
    assert status == 503
    assert body == {"status": "degraded", "database": "unavailable", "broker": "ok"}


def test_both_down_names_both(
    settings: Settings, unreachable_database: sessionmaker[Session], verifier: Any
) -> None:
    status, _, body = health_of(settings, unreachable_database, verifier, RefusingBroker())
    assert (status, body) == (503, {"status": "degraded", "database": "unavailable", "broker": "unavailable"})


# --- the real broker client ----------------------------------------------------------------------


def test_the_real_client_reports_a_redis_broker_nobody_listens_on(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any
) -> None:
    sender = CeleryTaskSender("redis://127.0.0.1:1/0")  # port 1: connection refused at once
    status, _, body = health_of(settings, session_factory, verifier, sender)
    assert (status, body["broker"]) == (503, "unavailable")


@KOMBU_NOLOAD
def test_the_real_client_reports_an_embedded_broker_file_that_cannot_be_opened(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any, tmp_path: Path
) -> None:
    # kombu's SQLAlchemy transport connects lazily: only a question to the broker shows it is broken.
    sender = CeleryTaskSender(f"sqla+sqlite:///{tmp_path / 'no-such-dir' / 'broker.sqlite3'}")
    status, _, body = health_of(settings, session_factory, verifier, sender)
    assert (status, body["broker"]) == (503, "unavailable")


@KOMBU_NOLOAD
def test_the_real_client_finds_a_working_embedded_broker_healthy(
    settings: Settings, session_factory: sessionmaker[Session], verifier: Any, tmp_path: Path
) -> None:
    sender = CeleryTaskSender(f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}", "obanazawa")
    status, _, body = health_of(settings, session_factory, verifier, sender)
    assert (status, body) == (200, {"status": "ok", "database": "ok", "broker": "ok"})
