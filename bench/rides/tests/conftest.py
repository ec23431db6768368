"""A small seeded city on a SQLite file, with one virtual card: enough to drive both apps in-process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from auth_mock.issuer import Issuer
from bench.rides.seed import IssuedCardFile, SeededCity, issue_cards, seed_city
from voucher_api import migrate
from voucher_api.db import make_engine, make_session_factory


@dataclass(frozen=True)
class BenchCity:
    url: str
    engine: Engine
    issuer: Issuer
    cards: list[IssuedCardFile]
    city: SeededCity


@pytest.fixture(scope="session")
def bench_city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BenchCity]:
    # Real time: the terminal's assertion carries the wall clock, as a terminal's would.
    now = datetime.now(UTC)
    work = tmp_path_factory.mktemp("bench-city")
    url = f"sqlite:///{work / 'bench.sqlite3'}"
    migrate.upgrade(url)
    issuer = Issuer.create(work / "issuer", base_url="http://127.0.0.1:9", now=now)
    cards = issue_cards(issuer, work / "cards", 1, now=now)
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        city = seed_city(
            session,
            cards=cards,
            terminal_count=2,
            root_pem=Path(issuer.root_certificate_pem_path).read_bytes(),
            grant_amount=10,
            now=now,
        )
    yield BenchCity(url, engine, issuer, cards, city)
    engine.dispose()
