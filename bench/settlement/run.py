"""bench/settlement: the monthly close with its exports, next to the bare SQL floor, at N/10 and N rides.

    .venv/bin/python -m bench.settlement [--rides 1000000] [--database-url postgresql://...] [--json FILE]

One run: a fresh database `bench_settlement_<pid>` next to the one the URL names (dropped at the end),
migrated with the project's Alembic migrations and seeded with the demo city (bench.settlement.seed).
Month A (2026-09) gets N/10 rides, month B (2026-10) N rides, loaded with COPY, then VACUUM ANALYZE.

For each month: the floor — the bare SQL aggregation (GROUP BY operator over the month's rides: count and
sums) plus `COPY (SELECT * FROM rides of the month) TO STDOUT (FORMAT csv)` written to a file — then the
full close with its exports in a child process (bench.settlement.child), which reports its peak RSS
(VmHWM, reset after its imports; os.wait4's ru_maxrss is shown too). Between the two months a few
rides of month A are "synced late", so month B's statements carry prior-period lines. Month B's floor
is measured before and after its close; the ratio uses the faster.

Next to the floor, and not part of it, a reference: the bare write of the month's lines (the rides
INSERT … SELECT'ed, numbered, into a table with only the two keys a line needs), the least any design
that keeps lines must spend before applying a single rule; the close's distance from it is the cost of
the rules, the checks and the statement's bookkeeping.

Prints a table (floor, close, sign-off, each export, total, ratio = total / floor, peak RSS at both sizes)
and checks that every statement's ride lines add up to the floor's aggregation of completed rides.
Exit status 0; 1 only on an error (a failed step or totals that do not match), never on a speed target.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select, text

from bench.rides.seed import create_database, drop_database
from bench.settlement.seed import SeededCity, copy_rides, ride_lines, seed_city
from settlement import bulk
from settlement.statements import period_bounds
from voucher_api import migrate
from voucher_api.clock import JST
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import Operator, Statement, StatementLineKind

MONTH_A = date(2026, 9, 1)
MONTH_B = date(2026, 10, 1)
CLOSE_A_AT = datetime(2026, 10, 1, 2, 0, tzinfo=JST).astimezone(UTC)  # beat's moment
CLOSE_B_AT = datetime(2026, 11, 1, 2, 0, tzinfo=JST).astimezone(UTC)
LATE_SYNC_AT = datetime(2026, 10, 12, 9, 30, tzinfo=JST).astimezone(UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.settlement", description=__doc__.split("\n")[0])
    parser.add_argument("--rides", type=int, default=1_000_000, help="rides in the measured month (N)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL admin database; the benchmark creates and drops its own next to it",
    )
    parser.add_argument("--residents", type=int, default=None, help="default: N/25, at least 2,000")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--keep-files", type=Path, default=None, help="copy the exports here")
    args = parser.parse_args(argv)
    if args.rides < 100:
        parser.error("--rides must be at least 100")
    if not args.database_url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        parser.error("--database-url must name a PostgreSQL database")
    return args


@dataclass
class Floor:
    aggregation_s: float
    copy_s: float
    copy_bytes: int
    by_operator: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    write_s: float | None = None
    """Not part of the floor: the bare write of the month's lines into a keyed table (see
    measure_write_reference)."""
    bulk_write_s: float | None = None
    """Not part of the floor: the same lines bulk-written into a fresh table, keys built afterwards."""

    @property
    def total_s(self) -> float:
        return self.aggregation_s + self.copy_s


def _psycopg_url(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def measure_floor(url: str, municipality_id: int, month: date, out: Path) -> Floor:
    """The bare SQL aggregation of the month per operator, and the month's rides COPY'd out as CSV."""
    start, end = period_bounds(month)
    params = {"m": municipality_id, "s": start, "e": end}
    with psycopg.connect(_psycopg_url(url)) as conn:
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT operator_id,"
            " count(*) FILTER (WHERE status = 'completed' AND review_code IS NULL),"
            " coalesce(sum(meter_fare) FILTER (WHERE status = 'completed' AND review_code IS NULL), 0),"
            " coalesce(sum(rider_share) FILTER (WHERE status = 'completed' AND review_code IS NULL), 0),"
            " coalesce(sum(subsidy_amount) FILTER (WHERE status = 'completed' AND review_code IS NULL), 0)"
            " FROM rides WHERE municipality_id = %(m)s AND boarded_at >= %(s)s AND boarded_at < %(e)s"
            " GROUP BY operator_id",
            params,
        ).fetchall()
        aggregation = time.perf_counter() - started
        path = out / "floor-rides.csv"
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            path.open("wb") as sink,
            cursor.copy(
                "COPY (SELECT * FROM rides WHERE municipality_id = %(m)s AND boarded_at >= %(s)s"
                " AND boarded_at < %(e)s) TO STDOUT (FORMAT csv, HEADER)",
                params,
            ) as copy,
        ):
            for chunk in copy:
                sink.write(chunk)
        copied = time.perf_counter() - started
        size = path.stat().st_size
        path.unlink()
    return Floor(
        aggregation,
        copied,
        size,
        {int(row[0]): (int(row[1]), int(row[2]), int(row[3]), int(row[4])) for row in rows},
    )


_LINE_COLUMNS = (
    "statement_id bigint NOT NULL, line_no integer NOT NULL, ride_id bigint, boarded_at timestamptz,"
    " meter_fare integer, rider_share integer, subsidy_amount integer"
)
_LINE_KEYS = ("PRIMARY KEY (statement_id, line_no)", "UNIQUE (ride_id)")
_NUMBERED_LINES = (
    "SELECT operator_id, (row_number() OVER (PARTITION BY operator_id ORDER BY boarded_at, id))::integer,"
    " id, boarded_at, meter_fare, rider_share, subsidy_amount FROM rides"
    " WHERE municipality_id = %(m)s AND boarded_at >= %(s)s AND boarded_at < %(e)s AND status <> 'voided'"
)


def measure_write_reference(url: str, municipality_id: int, month: date) -> tuple[float, float]:
    """Two references next to the floor, not part of it: the month's rides INSERT … SELECT'ed, numbered
    per operator, with no rules and no checks, (1) into a bare table that already has the two keys a line
    needs (its statement and number; its ride, once) — what writing lines into one shared table with a
    key over every ride costs at least — and (2) into a fresh table without keys, the keys built
    afterwards — what a bulk write of the same lines costs, possible only where a month's lines go to
    storage of their own. Both tables are dropped again."""
    start, end = period_bounds(month)
    params = {"m": municipality_id, "s": start, "e": end}
    with psycopg.connect(_psycopg_url(url)) as conn:
        conn.execute(f"SET work_mem = '{bulk.WORK_MEM}'")  # as the close sorts (settlement.bulk)
        conn.execute("SET jit = off")
        conn.execute(f"CREATE TABLE bench_write_reference ({_LINE_COLUMNS}, {', '.join(_LINE_KEYS)})")
        conn.commit()
        started = time.perf_counter()
        conn.execute(f"INSERT INTO bench_write_reference {_NUMBERED_LINES}", params)
        conn.commit()
        incremental = time.perf_counter() - started
        conn.execute("DROP TABLE bench_write_reference")
        conn.commit()
        started = time.perf_counter()
        conn.execute(f"CREATE TABLE bench_bulk_reference ({_LINE_COLUMNS})")
        conn.execute(f"INSERT INTO bench_bulk_reference {_NUMBERED_LINES}", params)
        conn.execute("ALTER TABLE bench_bulk_reference " + ", ".join(f"ADD {key}" for key in _LINE_KEYS))
        conn.commit()
        bulk_written = time.perf_counter() - started
        conn.execute("DROP TABLE bench_bulk_reference")
        conn.commit()
    return incremental, bulk_written


@dataclass
class Measured:
    rides: int
    floor: Floor
    child: dict[str, Any]
    peak_rss_kb: int
    floor_after: Floor | None = None

    @property
    def best_floor_s(self) -> float:
        floors = [self.floor.total_s] + ([self.floor_after.total_s] if self.floor_after else [])
        return min(floors)

    @property
    def work_peak_kb(self) -> int:
        """The peak RSS since the child reset it after its imports (or the process's, if it could not)."""
        if self.child.get("peak_reset"):
            return int(self.child["rss_peak_self_kb"])
        return self.peak_rss_kb

    @property
    def close_s(self) -> float:
        return float(self.child["timings"]["close"])

    @property
    def exports_s(self) -> float:
        return sum(float(v) for k, v in self.child["timings"].items() if k != "close")

    @property
    def total_s(self) -> float:
        return self.close_s + self.exports_s

    @property
    def ratio(self) -> float:
        return self.total_s / self.best_floor_s


def run_child(job: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run bench.settlement.child in a fresh interpreter; its JSON result and its own peak RSS (KiB)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.settlement.child", json.dumps(job)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.stderr.write(stderr.decode(errors="replace"))
        raise RuntimeError(f"the close of {job['period']} failed (exit {process.returncode})")
    return json.loads(stdout), int(usage.ru_maxrss)


def vacuum_analyze(url: str) -> None:
    with psycopg.connect(_psycopg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def check_totals(url: str, municipality_id: int, month: date, floor: Floor) -> list[str]:
    """Every statement's ride lines against the floor's aggregation of completed rides; the problems."""
    problems = []
    engine = make_engine(url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            statements = session.execute(
                select(Statement.id, Statement.operator_id, Statement.number, Statement.ride_count).where(
                    Statement.municipality_id == municipality_id, Statement.period == month
                )
            ).all()
            seen = set()
            for statement_id, operator_id, number, ride_count in statements:
                seen.add(operator_id)
                lines = session.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE kind = :ride),"
                        " coalesce(sum(meter_fare) FILTER (WHERE kind = :ride), 0),"
                        " coalesce(sum(rider_share) FILTER (WHERE kind = :ride), 0),"
                        " coalesce(sum(subsidy_amount) FILTER (WHERE kind = :ride), 0),"
                        " count(ride_id) FROM statement_lines WHERE statement_id = :s"
                    ),
                    {"ride": StatementLineKind.RIDE.value, "s": statement_id},
                ).one()
                expected = floor.by_operator.get(operator_id, (0, 0, 0, 0))
                if tuple(int(v) for v in lines[:4]) != expected:
                    problems.append(f"{number}: ride lines {tuple(lines[:4])} != floor {expected}")
                if int(lines[4]) != ride_count:
                    problems.append(f"{number}: ride_count {ride_count} != lines with a ride {lines[4]}")
            operators = set(
                session.scalars(select(Operator.id).where(Operator.municipality_id == municipality_id))
            )
            if seen != operators:
                problems.append(f"statements for operators {sorted(seen)}, expected {sorted(operators)}")
    finally:
        engine.dispose()
    return problems


def _s(seconds: float) -> str:
    return f"{seconds:8.2f} s"


def _mb(kb: int) -> str:
    return f"{kb / 1024:8.0f} MB"


def format_report(small: Measured, large: Measured, heading: str) -> str:
    rows: list[tuple[str, str, str]] = []

    def add(label: str, a: str, b: str) -> None:
        rows.append((label, a, b))

    add("rides in the month", f"{small.rides:>11,}", f"{large.rides:>11,}")
    add("floor: GROUP BY operator", _s(small.floor.aggregation_s), _s(large.floor.aggregation_s))
    add("floor: COPY rides TO STDOUT csv", _s(small.floor.copy_s), _s(large.floor.copy_s))
    add("floor total", _s(small.floor.total_s), _s(large.floor.total_s))
    if large.floor_after is not None:
        add("floor total, after the close", "", _s(large.floor_after.total_s))
    if small.floor.write_s is not None and large.floor.write_s is not None:
        add(
            "reference (not floor): bare write of the lines", _s(small.floor.write_s), _s(large.floor.write_s)
        )
    if small.floor.bulk_write_s is not None and large.floor.bulk_write_s is not None:
        add(
            "reference: the same, fresh table, keys after",
            _s(small.floor.bulk_write_s),
            _s(large.floor.bulk_write_s),
        )
    add("close (start/begin/5 operators/finish)", _s(small.close_s), _s(large.close_s))
    for key, label in (
        ("sign_off", "sign-off (confirm + approve)"),
        ("statement_csvs", "export: statement CSVs"),
        ("month_csvs", "export: month line + summary CSV"),
        ("pdfs", "export: statement PDFs"),
        ("zengin", "export: Zengin transfer file"),
    ):
        add(label, _s(small.child["timings"][key]), _s(large.child["timings"][key]))
    add("total (close + sign-off + exports)", _s(small.total_s), _s(large.total_s))
    add("ratio = total / floor", f"{small.ratio:10.2f}", f"{large.ratio:10.2f}")
    add(
        "RSS after imports (child)",
        _mb(small.child["rss_after_imports_kb"]),
        _mb(large.child["rss_after_imports_kb"]),
    )
    add(
        "peak RSS, imports only",
        _mb(small.child["rss_import_peak_kb"]),
        _mb(large.child["rss_import_peak_kb"]),
    )
    add("peak RSS during close + exports", _mb(small.work_peak_kb), _mb(large.work_peak_kb))
    add("ru_maxrss by os.wait4 (counts the fork)", _mb(small.peak_rss_kb), _mb(large.peak_rss_kb))
    width = max(len(label) for label, _, _ in rows)
    lines = [heading, f"{'':{width}}   {'N/10':>11}   {'N':>11}"]
    lines += [f"{label:{width}}   {a:>11}   {b:>11}" for label, a, b in rows]
    lines.append(
        f"peak RSS growth during close + exports from N/10 to N:"
        f" {(large.work_peak_kb - small.work_peak_kb) / 1024:+.0f} MB"
        f" for {large.rides - small.rides:,} more rides"
    )
    return "\n".join(lines)


def _as_json(measured: Measured) -> dict[str, Any]:
    return {
        "rides": measured.rides,
        "floor_s": measured.floor.total_s,
        "floor_aggregation_s": measured.floor.aggregation_s,
        "floor_copy_s": measured.floor.copy_s,
        "floor_after_s": measured.floor_after.total_s if measured.floor_after else None,
        "write_reference_s": measured.floor.write_s,
        "bulk_write_reference_s": measured.floor.bulk_write_s,
        "close_s": measured.close_s,
        "timings": measured.child["timings"],
        "total_s": measured.total_s,
        "ratio": measured.ratio,
        "peak_rss_kb": measured.peak_rss_kb,
        "work_peak_rss_kb": measured.work_peak_kb,
        "rss_import_peak_kb": measured.child["rss_import_peak_kb"],
        "rss_after_imports_kb": measured.child["rss_after_imports_kb"],
        "files": measured.child["files"],
        "statements": measured.child["statements"],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    n_large = args.rides
    n_small = max(n_large // 10, 10)
    residents = args.residents or max(2_000, n_large // 25)
    name = f"bench_settlement_{os.getpid()}"
    rng = random.Random(20261001)
    print(f"bench/settlement: database {name}, N = {n_large:,} rides, {residents:,} residents", flush=True)
    url = create_database(args.database_url, name)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-settlement-") as work:
            out = Path(work)
            started = time.perf_counter()
            migrate.upgrade(url)
            engine = make_engine(url, pool_size=1)
            factory = make_session_factory(engine)
            with factory() as session:
                city = seed_city(session, residents=residents, now=datetime(2026, 8, 20, 0, 0, tzinfo=UTC))
            print(f"  seeded the city in {time.perf_counter() - started:.1f} s", flush=True)
            started = time.perf_counter()
            with factory() as session:
                copy_rides(session, ride_lines(city, MONTH_A, n_small, rng=rng))
            vacuum_analyze(url)
            print(
                f"  loaded {n_small:,} rides of {MONTH_A:%Y-%m} in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            small = measure_month(url, city, MONTH_A, CLOSE_A_AT, n_small, out / "a")
            started = time.perf_counter()
            with factory() as session:
                late = max(10, n_large // 10_000)
                copy_rides(session, ride_lines(city, MONTH_A, late, rng=rng, recorded_after=LATE_SYNC_AT))
                copy_rides(session, ride_lines(city, MONTH_B, n_large, rng=rng))
            engine.dispose()
            vacuum_analyze(url)
            print(
                f"  loaded {n_large:,} rides of {MONTH_B:%Y-%m} (and {late} of {MONTH_A:%Y-%m} synced late)"
                f" in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            large = measure_month(url, city, MONTH_B, CLOSE_B_AT, n_large, out / "b")
            large.floor_after = measure_floor(url, city.municipality_id, MONTH_B, out)
            problems = check_totals(url, city.municipality_id, MONTH_A, small.floor)
            problems += check_totals(url, city.municipality_id, MONTH_B, large.floor)
            with psycopg.connect(_psycopg_url(url)) as conn:
                version = conn.execute("SHOW server_version").fetchone()
            heading = (
                f"\nbench/settlement — PostgreSQL {version[0] if version else '?'}, 5 operators,"
                f" close + exports in a child process; floor = GROUP BY + COPY out, same database, same run"
            )
            print(format_report(small, large, heading))
            print(
                "check: every statement's ride lines equal the floor's aggregation: "
                + ("ok" if not problems else "FAILED\n  " + "\n  ".join(problems))
            )
            if args.keep_files is not None:
                args.keep_files.mkdir(parents=True, exist_ok=True)
                for path in (out / "b").iterdir():
                    path.replace(args.keep_files / path.name)
            if args.json is not None:
                args.json.write_text(
                    json.dumps(
                        {"small": _as_json(small), "large": _as_json(large), "problems": problems}, indent=2
                    ),
                    encoding="utf-8",
                )
            return 1 if problems else 0
    finally:
        drop_database(args.database_url, name)


def measure_month(url: str, city: SeededCity, month: date, now: datetime, rides: int, out: Path) -> Measured:
    out.mkdir(parents=True, exist_ok=True)
    floor = measure_floor(url, city.municipality_id, month, out)
    floor.write_s, floor.bulk_write_s = measure_write_reference(url, city.municipality_id, month)
    child, peak = run_child(
        {
            "database_url": url,
            "municipality_code": city.municipality_code,
            "municipality_id": city.municipality_id,
            "finance_id": city.finance_id,
            "approver_id": city.approver_id,
            "period": f"{month:%Y-%m}",
            "now": now.isoformat(),
            "out_dir": str(out),
        }
    )
    if child["run_status"] != "succeeded":
        raise RuntimeError(f"the run of {month:%Y-%m} ended {child['run_status']}")
    print(f"  closed {month:%Y-%m}: {child['timings']['close']:.1f} s", flush=True)
    return Measured(rides, floor, child, peak)
