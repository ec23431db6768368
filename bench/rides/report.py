"""Figures from the samples of a run, and the table the benchmark prints."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between closest ranks; NaN when empty.

    Raises ValueError for q outside 0–100.
    """
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Latency:
    """p50 and p99 of a set of durations, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        return cls(len(seconds), percentile(seconds, 50) * 1000, percentile(seconds, 99) * 1000)


@dataclass(frozen=True)
class RideSample:
    """One ride as a client saw it: when it ended (monotonic seconds) and how long each request took."""

    ended_at: float
    total: float
    steps: tuple[float, ...] = ()


@dataclass
class ClientOutcome:
    """What one client thread did in a phase."""

    rides: list[RideSample] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    reached_max_rides: bool = False

    def count_error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


@dataclass(frozen=True)
class PhaseFigures:
    """A phase's throughput and latencies over the measurement window."""

    name: str
    rides: int
    seconds: float
    ride_latency: Latency
    step_names: tuple[str, ...]
    step_latency: tuple[Latency, ...]
    errors: dict[str, int]

    @property
    def rides_per_second(self) -> float:
        return self.rides / self.seconds if self.seconds > 0 else math.nan


@dataclass(frozen=True)
class PhaseResult:
    """Samples of every client of one run of a phase, and its measurement window (monotonic seconds)."""

    outcomes: list[ClientOutcome]
    window_start: float
    window_end: float
    client_cpu_seconds: float = 0.0  # CPU the load generator itself used while driving
    driven_seconds: float = 0.0  # wall time from start to the last client's end


def client_cores(runs: Sequence[PhaseResult]) -> float:
    """How many cores the load generator kept busy on average while driving (NaN without timing)."""
    driven = sum(run.driven_seconds for run in runs)
    return sum(run.client_cpu_seconds for run in runs) / driven if driven > 0 else math.nan


def summarise(name: str, runs: Sequence[PhaseResult], *, step_names: Sequence[str] = ()) -> PhaseFigures:
    """Pool the runs of one phase: the rides that ended inside each run's window, over their total time.

    Rides of the warm-up and those still running when a window closed are left out, so every client
    counts over the same interval. Errors are counted over the whole phase.
    Raises ValueError for an empty or inverted window.
    """
    inside: list[RideSample] = []
    errors: dict[str, int] = {}
    seconds = 0.0
    for run in runs:
        if run.window_end <= run.window_start:
            raise ValueError("the measurement window is empty")
        seconds += run.window_end - run.window_start
        for outcome in run.outcomes:
            inside.extend(r for r in outcome.rides if run.window_start <= r.ended_at < run.window_end)
            for what, n in outcome.errors.items():
                errors[what] = errors.get(what, 0) + n
    steps = tuple(
        Latency.of([r.steps[i] for r in inside if len(r.steps) > i]) for i in range(len(step_names))
    )
    return PhaseFigures(
        name=name,
        rides=len(inside),
        seconds=seconds,
        ride_latency=Latency.of([r.total for r in inside]),
        step_names=tuple(step_names),
        step_latency=steps,
        errors=errors,
    )


def ratio(api: PhaseFigures, floor: PhaseFigures) -> float:
    """api_rides_per_s / floor_rides_per_s; NaN when the floor did nothing."""
    if floor.rides == 0:
        return math.nan
    return api.rides_per_second / floor.rides_per_second


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _left(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _right(text: str, width: int) -> str:
    return " " * max(0, width - _width(text)) + text


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def format_table(api: PhaseFigures, floor: PhaseFigures, *, heading: str) -> str:
    """The closing table: rides/s, p50, p99 for the API (per ride and per request) and the floor."""
    columns = ("乗車数", "rides/s", "p50 ms", "p99 ms", "エラー")
    label_width = 34
    widths = (8, 9, 8, 8, 7)

    def row(label: str, cells: Sequence[str]) -> str:
        return _left(label, label_width) + "".join(_right(c, w) for c, w in zip(cells, widths, strict=True))

    def phase_row(label: str, figures: PhaseFigures) -> str:
        return row(
            label,
            (
                str(figures.rides),
                f"{figures.rides_per_second:.1f}",
                _ms(figures.ride_latency.p50_ms),
                _ms(figures.ride_latency.p99_ms),
                str(sum(figures.errors.values())),
            ),
        )

    lines = [heading, "", row("", columns), "-" * (label_width + sum(widths))]
    lines.append(phase_row(f"API: {api.name}", api))
    for i, (step, latency) in enumerate(zip(api.step_names, api.step_latency, strict=True)):
        branch = "└" if i == len(api.step_names) - 1 else "├"
        requests_per_s = latency.count / api.seconds if api.seconds > 0 else math.nan
        lines.append(
            row(
                f"  {branch} {step}",
                (str(latency.count), f"{requests_per_s:.1f}", _ms(latency.p50_ms), _ms(latency.p99_ms), ""),
            )
        )
    lines.append(phase_row(f"フロア: {floor.name}", floor))
    lines.append("")
    value = ratio(api, floor)
    shown = "-" if math.isnan(value) else f"{value:.2f}"
    lines.append(
        f"ratio = api_rides_per_s / floor_rides_per_s = "
        f"{api.rides_per_second:.1f} / {floor.rides_per_second:.1f} = {shown}"
    )
    for figures in (api, floor):
        if figures.errors:
            detail = ", ".join(f"{what} × {n}" for what, n in sorted(figures.errors.items()))
            lines.append(f"エラー（{figures.name}）: {detail}")
    return "\n".join(lines)
