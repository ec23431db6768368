"""The Celery app's configuration and beat schedule (no broker needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from celery.schedules import crontab

from settlement.celery_app import celery_config, create_celery, result_backend_url, settings_from_env
from voucher_api.clock import JST
from voucher_api.config import Settings


def settings_for(tmp_path: Path, **env: str) -> Settings:
    base = {"VOUCHER_VAR_DIR": str(tmp_path / "var"), "JWT_SECRET": "s" * 64}
    return Settings.from_env({**base, **env})


def test_messages_are_json_only_and_acknowledged_after_the_work(tmp_path: Path) -> None:
    conf = celery_config(settings_for(tmp_path))
    assert (conf["task_serializer"], conf["result_serializer"], conf["accept_content"]) == (
        "json",
        "json",
        ["json"],
    )
    assert (
        conf["task_acks_late"],
        conf["task_reject_on_worker_lost"],
        conf["worker_prefetch_multiplier"],
    ) == (
        True,
        True,
        1,
    )
    assert (conf["timezone"], conf["enable_utc"]) == ("Asia/Tokyo", True)


def test_embedded_default_keeps_chord_results_in_a_sqlite_file_of_their_own(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    assert settings.celery_broker_url.startswith("sqla+sqlite:///")
    assert (
        result_backend_url(settings)
        == f"db+sqlite:///{(tmp_path / 'var' / 'celery-results.sqlite3').resolve()}"
    )


def test_redis_broker_keeps_chord_results_in_redis(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/3")
    assert result_backend_url(settings) == "redis://127.0.0.1:6379/3"


def test_postgresql_database_keeps_chord_results_through_psycopg(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, DATABASE_URL="postgresql://u@db:5432/vouchers", CELERY_BROKER_URL="amqp://guest@mq//"
    )
    assert result_backend_url(settings) == "db+postgresql+psycopg://u@db:5432/vouchers"


def test_environment_can_name_the_queue_and_the_result_backend(tmp_path: Path) -> None:
    settings = settings_from_env(
        {
            "VOUCHER_VAR_DIR": str(tmp_path / "var"),
            "JWT_SECRET": "s" * 64,
            "CELERY_QUEUE": "obanazawa",
            "CELERY_RESULT_BACKEND": "redis://cache:6379/2",
        }
    )
    conf = celery_config(settings)
    assert (conf["task_default_queue"], conf["result_backend"]) == ("obanazawa", "redis://cache:6379/2")


def test_making_the_app_reads_no_settings_until_celery_needs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    var = tmp_path / "lazy-var"
    monkeypatch.setenv("VOUCHER_VAR_DIR", str(var))
    monkeypatch.delenv("JWT_SECRET", raising=False)
    app = create_celery()
    assert not var.exists()  # nothing read, nothing written at import/creation time
    assert app.conf.broker_url == f"sqla+sqlite:///{(var / 'broker.sqlite3').resolve()}"


def test_app_knows_the_settlement_tasks_by_name(tmp_path: Path) -> None:
    app = create_celery(settings_for(tmp_path))
    app.loader.import_default_modules()
    assert {
        "settlement.close_period",
        "settlement.close_operator",
        "settlement.finish_run",
        "settlement.close_previous_month",
    } <= set(app.tasks)


def test_beat_closes_the_previous_month_at_two_in_the_morning_japan_time_on_the_first(tmp_path: Path) -> None:
    app = create_celery(settings_for(tmp_path))
    entry = app.conf.beat_schedule["close-previous-month"]
    schedule: crontab = entry["schedule"]
    schedule.app = app
    assert entry["task"] == "settlement.close_previous_month"
    assert (schedule.minute, schedule.hour, schedule.day_of_month) == ({0}, {2}, {1})
    # From mid-October (Japan time), the next firing is 1 November 02:00 in Japan.
    last_run = datetime(2026, 10, 15, 12, 0, tzinfo=JST)
    schedule.nowfun = lambda: last_run
    due_in = schedule.remaining_estimate(last_run)
    assert (last_run + due_in).astimezone(UTC) == datetime(2026, 11, 1, 2, 0, tzinfo=JST).astimezone(UTC)
