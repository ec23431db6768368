from __future__ import annotations

import math

import pytest

from bench.rides.report import (
    ClientOutcome,
    PhaseFigures,
    PhaseResult,
    RideSample,
    format_table,
    percentile,
    ratio,
    summarise,
)


def outcome(*ended_at: float, total: float = 0.01, steps: tuple[float, ...] = ()) -> ClientOutcome:
    return ClientOutcome(rides=[RideSample(ended_at=t, total=total, steps=steps) for t in ended_at])


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert (percentile(values, 50), percentile(values, 0), percentile(values, 100)) == (3.0, 1.0, 5.0)
    assert percentile([1.0, 2.0], 50) == pytest.approx(1.5)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 99))


def test_percentile_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1.0], 101)


def test_rides_outside_the_measurement_window_are_not_counted() -> None:
    # 9.5 ends in the warm-up, 20.0 after the window closed.
    run = PhaseResult([outcome(9.5, 10.0, 15.0), outcome(19.9, 20.0)], window_start=10.0, window_end=20.0)

    figures = summarise("floor", [run])

    assert figures.rides == 3
    assert figures.rides_per_second == pytest.approx(0.3)


def test_runs_of_a_phase_are_pooled_over_their_total_time() -> None:
    first = PhaseResult([outcome(1.0, 2.0)], window_start=0.0, window_end=10.0)
    second = PhaseResult([outcome(51.0)], window_start=50.0, window_end=60.0)

    figures = summarise("api", [first, second])

    assert (figures.rides, figures.seconds) == (3, 20.0)


def test_errors_are_added_up_over_clients() -> None:
    a, b = outcome(), outcome()
    a.count_error("POST /rides → 409 ride.sequence_reused")
    b.count_error("POST /rides → 409 ride.sequence_reused")

    figures = summarise("api", [PhaseResult([a, b], 0.0, 1.0)])

    assert figures.errors == {"POST /rides → 409 ride.sequence_reused": 2}


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarise("api", [PhaseResult([], window_start=5.0, window_end=5.0)])


def test_step_latencies_are_reported_per_request_kind() -> None:
    run = PhaseResult([outcome(1.0, 2.0, steps=(0.001, 0.002, 0.003))], 0.0, 10.0)

    figures = summarise("api", [run], step_names=("challenge", "board", "fare"))

    assert [round(s.p50_ms, 3) for s in figures.step_latency] == [1.0, 2.0, 3.0]


def figures(name: str, rides: int, seconds: float) -> PhaseFigures:
    run = PhaseResult([outcome(*[0.5] * rides)], 0.0, seconds)
    return summarise(name, [run], step_names=("POST /rides",) if name == "api" else ())


def test_ratio_is_api_rides_per_second_over_the_floors() -> None:
    assert ratio(figures("api", 50, 10.0), figures("floor", 100, 10.0)) == pytest.approx(0.5)


def test_ratio_without_floor_rides_is_nan() -> None:
    assert math.isnan(ratio(figures("api", 5, 1.0), figures("floor", 0, 1.0)))


def test_table_shows_rides_per_second_latencies_and_the_ratio() -> None:
    table = format_table(figures("api", 50, 10.0), figures("floor", 100, 10.0), heading="乗車ベンチマーク")

    assert "rides/s" in table
    assert "p50 ms" in table
    assert "p99 ms" in table
    assert "ratio = api_rides_per_s / floor_rides_per_s = 5.0 / 10.0 = 0.50" in table
