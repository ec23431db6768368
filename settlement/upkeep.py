"""Periodic upkeep beside the monthly close: follow the resident registry, prune spent card challenges.

registry.follow_changes()       every 5 minutes: apply the registry's change feed (REGISTRY_URL)
upkeep.prune_spent_challenges()  hourly: forget used challenge nonces older than any challenge's life
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from celery import Task, shared_task
from celery.utils.log import get_task_logger
from sqlalchemy import delete, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from voucher_api.clock import Clock, SystemClock
from voucher_api.models import CardChallenge, Municipality
from voucher_api.services import residents

log = get_task_logger(__name__)

FOLLOW_REGISTRY = "registry.follow_changes"
PRUNE_CHALLENGES = "upkeep.prune_spent_challenges"
# A used nonce must be remembered only while it could still be presented: past its expiry it is refused
# as expired anyway. A day's margin keeps the rows useful to someone investigating a complaint.
SPENT_CHALLENGE_KEPT = timedelta(days=1)


class UpkeepTask(Task):  # type: ignore[misc]  # Celery ships no type hints
    autoretry_for = (OperationalError,)
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True
    max_retries = 5

    def now(self) -> datetime:
        clock: Clock = getattr(self.app, "voucher_clock", None) or SystemClock()
        return clock.now()

    def registry_client(self) -> residents.RegistryClient | None:
        """The registry's feed: one handed to the app (tests), else REGISTRY_URL, else none."""
        given: residents.RegistryClient | None = getattr(self.app, "registry_client", None)
        if given is not None:
            return given
        url = self.app.voucher_settings().registry_url
        return residents.HttpRegistryClient(url) if url else None

    def session_factory(self) -> sessionmaker[Session]:
        database = getattr(self.app, "voucher_database", None)
        if database is None:
            raise RuntimeError("upkeep tasks run on the app made by settlement.celery_app.create_celery")
        factory: sessionmaker[Session] = database.session_factory()
        return factory


def upkeep_task(name: str) -> Callable[[Callable[..., Any]], Any]:
    decorator: Callable[[Callable[..., Any]], Any] = shared_task(
        bind=True, base=UpkeepTask, name=name, ignore_result=True
    )
    return decorator


@upkeep_task(FOLLOW_REGISTRY)
def follow_registry(self: UpkeepTask) -> int:
    """Apply the registry's new changes for every municipality; returns how many were applied."""
    client = self.registry_client()
    if client is None:
        log.info("REGISTRY_URL is not set; nothing to follow")
        return 0
    applied = 0
    with self.session_factory()() as session:
        codes = list(session.scalars(select(Municipality.code)))
    for code in codes:
        with self.session_factory()() as session:
            changes = residents.follow_changes(
                session, client, municipality_code=code, now=SystemClock().now()
            )
            session.commit()
        applied += len(changes)
        if changes:
            log.info("registry: %d changes applied for %s", len(changes), code)
    return applied


@upkeep_task(PRUNE_CHALLENGES)
def prune_spent_challenges(self: UpkeepTask) -> int:
    """Delete used challenge nonces that expired more than a day ago."""
    cutoff = self.now() - SPENT_CHALLENGE_KEPT
    with self.session_factory()() as session:
        deleted = session.execute(delete(CardChallenge).where(CardChallenge.expires_at < cutoff)).rowcount  # type: ignore[attr-defined]
        session.commit()
    return int(deleted or 0)
