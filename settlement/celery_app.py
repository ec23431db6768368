"""The Celery app of the settlement worker and beat, configured from Settings.

`celery -A settlement.celery_app worker` and `... beat` use the module-level `app`. Nothing is read at
import: the settings come from the environment when Celery first needs its configuration, and the
database engine is built in each worker process after the fork (worker_process_init), never in the
parent, so no connection is shared across processes.

Messages are JSON only. Tasks are acknowledged after they finish and re-queued when the process running
them dies (acks_late + reject_on_worker_lost, one message prefetched at a time), which is safe because
every settlement task is idempotent.

The per-operator fan-out is a chord, and a chord needs a result backend: Redis when the broker is Redis,
otherwise Celery's SQLAlchemy backend on the database (PostgreSQL), or a SQLite file of its own in the
var directory for the embedded default (so the worker's bookkeeping never holds the app database's
write lock). CELERY_RESULT_BACKEND overrides the choice; CELERY_QUEUE names the queue, for several
deployments on one broker (the API sends to the same queue).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from settlement.schedule import beat_schedule
from voucher_api.clock import Clock, SystemClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory

log = logging.getLogger(__name__)

TASK_MODULES = ["settlement.tasks", "settlement.upkeep"]
DEFAULT_QUEUE = "celery"


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    """The worker's settings: the same as the API's, read when Celery first needs them."""
    return Settings.from_env(env)


def result_backend_url(settings: Settings) -> str:
    """Where chord results live: see the module docstring."""
    if settings.celery_result_backend:
        return settings.celery_result_backend
    broker = settings.celery_broker_url
    if broker.startswith(("redis://", "rediss://", "redis+socket://")):
        return broker
    url = settings.database_url
    if url.startswith("sqlite"):
        return f"db+sqlite:///{(settings.var_dir / 'celery-results.sqlite3').resolve()}"
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return "db+" + url


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for `settings` (lower-case, Celery 4+ names)."""
    backend = result_backend_url(settings)
    config: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "result_backend": backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "timezone": "Asia/Tokyo",
        "enable_utc": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Only the chord's members keep results (they say so themselves); everything else is fire and forget.
        "task_ignore_result": True,
        "result_expires": timedelta(days=2),
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
        "task_default_queue": settings.celery_queue or DEFAULT_QUEUE,
        "beat_schedule": beat_schedule(),
    }
    if backend.startswith("db+sqlite"):
        config["database_engine_options"] = {"connect_args": {"timeout": 30}}
    return config


class WorkerDatabase:
    """The worker process's engine and session factory, built on first use in the current process.

    After a fork the parent's engine (if any) is dropped without closing its connections, which belong
    to the parent. Tests may hand in their own session factory with `use()`.
    """

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._factory: sessionmaker[Session] | None = None
        self._pid: int | None = None
        _DATABASES.add(self)

    def session_factory(self) -> sessionmaker[Session]:
        """This process's session factory, built on first use (and again after a fork)."""
        with self._lock:
            if self._factory is None or self._pid != os.getpid():
                self._forget(close=self._pid == os.getpid())
                self._engine = make_engine(self._settings().database_url)
                self._factory = make_session_factory(self._engine)
                self._pid = os.getpid()
            return self._factory

    def use(self, factory: sessionmaker[Session]) -> None:
        """Use a session factory made elsewhere (tests, or a process that already has one)."""
        with self._lock:
            self._forget(close=True)
            self._factory = factory
            self._pid = os.getpid()

    def after_fork(self) -> None:
        """Forget the parent's engine in a freshly forked worker process, leaving its sockets alone."""
        with self._lock:
            if self._pid != os.getpid():
                self._forget(close=False)

    def dispose(self) -> None:
        """Close this process's connections (worker process shutdown)."""
        with self._lock:
            self._forget(close=self._pid == os.getpid())

    def _forget(self, *, close: bool) -> None:
        if self._engine is not None:
            self._engine.dispose(close=close)
        self._engine = None
        self._factory = None
        self._pid = None


_DATABASES: weakref.WeakSet[WorkerDatabase] = weakref.WeakSet()


class SettlementCelery(Celery):  # type: ignore[misc]  # Celery ships no type hints
    """A Celery app that knows the project's settings, its worker database and its clock."""

    def __init__(self, settings: Settings | None = None, *, clock: Clock | None = None) -> None:
        super().__init__("settlement", include=TASK_MODULES, set_as_current=settings is None)
        self._voucher_settings = settings
        self._settings_lock = threading.Lock()
        # Celery's own `app.clock` is its Lamport clock; the domain's clock has a name of its own.
        self.voucher_clock: Clock = clock or SystemClock()
        self.voucher_database = WorkerDatabase(self.voucher_settings)
        self.on_configure.connect(self._configure, weak=False)

    def voucher_settings(self) -> Settings:
        """The settings given to the factory, or else read from the environment once, when first needed."""
        with self._settings_lock:
            if self._voucher_settings is None:
                self._voucher_settings = settings_from_env()
            return self._voucher_settings

    def _configure(self, sender: Any = None, **_: Any) -> None:
        self.config_from_object(celery_config(self.voucher_settings()))


def create_celery(settings: Settings | None = None, *, clock: Clock | None = None) -> SettlementCelery:
    """The settlement Celery app. Without `settings`, they are read from the environment on first use.

    The app given settings explicitly (tests, embedding) does not become Celery's current app.
    """
    return SettlementCelery(settings, clock=clock)


def _after_fork(**_: Any) -> None:
    for database in list(_DATABASES):
        database.after_fork()


def _on_shutdown(**_: Any) -> None:
    for database in list(_DATABASES):
        database.dispose()


def _resume_runs_on_the_embedded_broker(sender: Any = None, **_: Any) -> None:
    """Send again the close of every running run, on the embedded broker only.

    kombu's SQLAlchemy transport (the embedded default's server-less broker) deletes a message when a
    worker takes it, so a worker killed in the middle of a close loses its messages and the run would
    hold its month until it is abandoned (six hours). With that broker the one worker is the whole
    deployment, so when it starts nothing else can be working on a run: its close is sent again, which
    is safe because closing is idempotent (service.begin_run plans a running run again).
    """
    app = getattr(sender, "app", None)
    if not isinstance(app, SettlementCelery) or not str(app.conf.broker_url).startswith("sqla+"):
        return
    from settlement.service import running_run_ids
    from settlement.tasks import CLOSE_PERIOD

    engine = make_engine(app.voucher_settings().database_url)
    try:
        with make_session_factory(engine)() as session:
            run_ids = running_run_ids(session)
    finally:
        engine.dispose()
    for run_id in run_ids:
        log.warning("run %s was left running by a worker that stopped; sending its close again", run_id)
        app.send_task(CLOSE_PERIOD, args=[str(run_id)])


worker_process_init.connect(_after_fork, weak=False)
worker_process_shutdown.connect(_on_shutdown, weak=False)
worker_ready.connect(_resume_runs_on_the_embedded_broker, weak=False)

app = create_celery()
