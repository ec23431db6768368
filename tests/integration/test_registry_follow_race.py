"""Two followers of the registry feed at once (two beats, or beat and the CLI) on real PostgreSQL
connections: the second waits for the first and applies nothing twice."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from auth_mock.registry import Registry, person_to_json
from auth_mock.registry_http import create_registry_app
from tests import factories as f
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import AuditEntry
from voucher_api.services import residents

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
WAIT_SECONDS = 60.0  # a ceiling for a slow CI machine, not a speed requirement


class Feed:
    """The registry's change feed as it was read once (a sqlite registry stays in its own thread)."""

    def __init__(self, changes: list[dict[str, Any]]) -> None:
        self.changes = changes

    def changes_since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["seq"] > seq][:limit]


def test_a_second_follower_waits_for_the_first_and_applies_nothing_twice(
    postgres_database: str, tmp_path: Path
) -> None:
    registry = Registry.generate(tmp_path / "registry.sqlite3", size=60, seed=11)
    people = [residents.RegistryPersonSchema().load(person_to_json(p)) for p in registry.iter_people()]
    someone = next(p for p in registry.iter_people() if p.status == "resident")
    registry.record_change("died", someone.registry_id, effective_on=date(2026, 10, 10))
    http = httpx.Client(transport=httpx.WSGITransport(app=create_registry_app(registry)))
    feed = Feed(residents.HttpRegistryClient("http://registry", http).changes_since(0, 500))
    registry.close()
    assert feed.changes

    engine = make_engine(postgres_database, pool_size=3)
    factory = make_session_factory(engine)
    with factory() as session:
        mun = f.municipality(session)
        for person in people:
            residents.upsert_resident(session, mun, person, f.NOW)
        session.commit()
        code = mun.code

    first = factory()
    applied_first = residents.follow_changes(first, feed, municipality_code=code, now=f.NOW)
    assert applied_first  # applied, not yet committed

    second_applied: list[residents.Applied] = []
    failures: list[BaseException] = []

    def second_follower() -> None:
        try:
            with factory() as session:
                second_applied.extend(
                    residents.follow_changes(session, feed, municipality_code=code, now=f.NOW)
                )
                session.commit()
        except BaseException as exc:  # reported to the test below
            failures.append(exc)

    racer = threading.Thread(target=second_follower)
    racer.start()
    try:
        # The second follower must be waiting for the first one's lock before the first commits.
        deadline = time.monotonic() + WAIT_SECONDS
        with engine.connect() as watch:
            while True:
                waiting = watch.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar()
                if waiting or not racer.is_alive() or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert waiting == 1, "the second follower did not wait for the first"
    finally:
        first.commit()
        first.close()
        racer.join(timeout=WAIT_SECONDS)
    assert failures == []
    assert second_applied == []  # it read the cursor the first had moved
    with factory() as session:
        entries = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "registry.change_applied")
        )
    assert entries == len(applied_first)
    engine.dispose()
