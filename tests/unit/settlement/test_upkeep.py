"""Upkeep tasks, called in this process (no broker): following the registry, pruning spent challenges."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from auth_mock.registry import Registry, person_to_json
from auth_mock.registry_http import create_registry_app
from settlement.celery_app import SettlementCelery, create_celery
from tests import factories as f
from voucher_api.clock import FixedClock
from voucher_api.config import Settings
from voucher_api.models import AuditEntry, CardChallenge
from voucher_api.services import residents


@pytest.fixture
def worker_app(tmp_path: Path, session_factory: sessionmaker[Session]) -> SettlementCelery:
    settings = Settings.from_env({"VOUCHER_VAR_DIR": str(tmp_path / "var"), "JWT_SECRET": "s" * 64})
    app = create_celery(settings, clock=FixedClock(f.NOW))
    app.voucher_database.use(session_factory)
    app.loader.import_default_modules()
    return app


def test_spent_challenges_older_than_a_day_are_forgotten(
    worker_app: SettlementCelery, session: Session
) -> None:
    for age in (timedelta(days=3), timedelta(hours=2)):
        session.execute(
            insert(CardChallenge).values(
                nonce=f"{int(age.total_seconds()):064x}",
                purpose="board",
                context="terminal:1",
                created_at=f.NOW - age,
                expires_at=f.NOW - age + timedelta(minutes=10),
                used_at=f.NOW - age,
            )
        )
    session.commit()
    task: Any = worker_app.tasks["upkeep.prune_spent_challenges"]
    assert task() == 1
    assert session.scalar(select(func.count()).select_from(CardChallenge)) == 1


def test_registry_changes_are_followed_by_the_beat_task(
    worker_app: SettlementCelery, session: Session, tmp_path: Path
) -> None:
    registry = Registry.generate(tmp_path / "registry.sqlite3", size=60, seed=5)
    mun = f.municipality(session)
    for person in registry.iter_people():
        residents.upsert_resident(
            session, mun, residents.RegistryPersonSchema().load(person_to_json(person)), f.NOW
        )
    session.commit()
    someone = next(p for p in registry.iter_people() if p.status == "resident")
    registry.record_change("died", someone.registry_id, effective_on=date(2026, 10, 10))
    worker_app.registry_client = residents.HttpRegistryClient(
        "http://registry", httpx.Client(transport=httpx.WSGITransport(app=create_registry_app(registry)))
    )
    task: Any = worker_app.tasks["registry.follow_changes"]
    assert task() == 1
    assert task() == 0  # the cursor moved on
    applied = session.scalar(select(AuditEntry).where(AuditEntry.action == "registry.change_applied"))
    assert applied is not None
    assert applied.details["kind"] == "died"
    registry.close()
