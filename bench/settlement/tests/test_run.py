"""The command itself: options that cannot make a run are refused; a short run on PostgreSQL completes,
every statement's ride lines add up to the floor's aggregation, and the database is dropped.

The full run needs PostgreSQL: skipped without TEST_DATABASE_URL, failed instead when CI=true.
No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.settlement.run import parse_args

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "argv",
    [["--rides", "10"], ["--database-url", "sqlite:///x.sqlite3"]],
)
def test_options_that_cannot_make_a_run_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_default_is_a_million_rides() -> None:
    assert parse_args([]).rides == 1_000_000


@pytest.mark.postgres
@pytest.mark.slow
def test_a_short_run_closes_both_months_with_totals_equal_to_the_floor(tmp_path: Path) -> None:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL is required in CI: TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL not available: TEST_DATABASE_URL is not set")
    result_file = tmp_path / "result.json"
    kept = tmp_path / "exports"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.settlement",
            "--rides",
            "3000",
            "--residents",
            "300",
            "--database-url",
            admin_url,
            "--json",
            str(result_file),
            "--keep-files",
            str(kept),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=600)

    assert process.returncode == 0, stdout + stderr
    assert "ratio = total / floor" in stdout
    assert "ride lines equal the floor's aggregation: ok" in stdout
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["problems"] == []
    for size in ("small", "large"):  # both references were written and timed, neither is the floor
        assert result[size]["write_reference_s"] > 0
        assert result[size]["bulk_write_reference_s"] > 0
    assert "reference: the same, fresh table, keys after" in stdout
    statements = result["large"]["statements"]
    assert len(statements) == 5
    assert all(statement["status"] == "approved" for statement in statements)
    names = {path.name for path in kept.iterdir()}
    assert {"zengin-2026-10.txt", "statement-lines-2026-10.csv", "statements-2026-10.csv"} <= names
    assert sum(name.endswith(".pdf") for name in names) == 5
    admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.connect() as conn:
            left = conn.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                {"name": f"bench_settlement_{process.pid}"},
            )
    finally:
        admin.dispose()
    assert left == 0
