"""The command itself: options that cannot make a run are refused; a short run prints the three figures
next to each other and every offline record it made is accepted at sync."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.terminal.run import KINDS, Summary, format_report, parse_args

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "argv",
    [["--rounds", "0"], ["--warmup", "-1"], ["--cards", "0"], ["--database-url", "sqlite:///x.sqlite3"]],
)
def test_options_that_cannot_make_a_run_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_the_report_sets_each_figure_against_the_bare_api_round_trip() -> None:
    summaries = {kind: Summary.of(kind, [0.010 * (n + 1)] * 3) for n, kind in enumerate(KINDS)}
    summaries["card"] = Summary.of("card", [0.005])
    report = format_report(summaries, "heading")
    assert [line.split()[-1] for line in report.splitlines()[3:6]] == ["1.00", "2.00", "3.00"]


@pytest.mark.slow
def test_a_short_run_prints_the_figures_and_syncs_every_offline_ride(tmp_path: Path) -> None:
    result_file = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.terminal",
            "--rounds",
            "2",
            "--warmup",
            "0",
            "--cards",
            "1",
            "--json",
            str(result_file),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "タップ→確定（オンライン）" in done.stdout
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["sync"]["accepted"] == result["sync"]["sent"] == 4  # 2 offline boardings, 2 fares
    assert result["ratio_online"] > 0
