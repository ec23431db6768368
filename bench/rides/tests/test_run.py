"""The command itself. The full run needs PostgreSQL and is skipped without TEST_DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.rides.run import parse_args

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "argv",
    [
        ["--clients", "0"],
        ["--seconds", "0"],
        ["--rounds", "0"],
        ["--database-url", "sqlite:///x.sqlite3"],
    ],
)
def test_options_that_cannot_make_a_run_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_defaults_follow_the_brief() -> None:
    args = parse_args([])
    assert (args.clients, args.seconds, args.processes) == (16, 20.0, 2)


@pytest.mark.postgres
@pytest.mark.slow
def test_benchmark_prints_the_ratio_and_drops_its_database(tmp_path: Path) -> None:
    admin_url = os.environ.get("TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("PostgreSQL not available: TEST_DATABASE_URL is not set")
    result_file = tmp_path / "result.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.rides",
            "--clients",
            "2",
            "--cards",
            "1",
            "--seconds",
            "1",
            "--warmup",
            "0.2",
            "--rounds",
            "1",
            "--database-url",
            admin_url,
            "--json",
            str(result_file),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=300)

    assert process.returncode == 0, stderr
    assert "ratio = api_rides_per_s / floor_rides_per_s" in stdout
    assert '"ratio"' in result_file.read_text(encoding="utf-8")
    admin = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with admin.connect() as conn:
            left = conn.scalar(
                text("SELECT count(*) FROM pg_database WHERE datname = :name"),
                {"name": f"bench_rides_{process.pid}"},
            )
    finally:
        admin.dispose()
    assert left == 0
