from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_mock.registry import Registry


@pytest.fixture(scope="session")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The full model city (14,000 people, default seed), shared read-only by the tests that only look."""
    registry = Registry.generate(tmp_path_factory.mktemp("city") / "registry.sqlite3")
    yield registry
    registry.close()


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Registry]:
    """A small registry of its own for a test that records changes."""
    registry = Registry.generate(tmp_path / "registry.sqlite3", size=400, seed=7)
    yield registry
    registry.close()
