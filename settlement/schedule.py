"""The beat schedule, in Asia/Tokyo (the Celery app's timezone).

Beat closes the previous month early each month: 02:00 Japan time on the 1st, when nobody rides and the
month has just ended. Rides synced after that go to the next statement as prior-period lines.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

CLOSE_PREVIOUS_MONTH = "settlement.close_previous_month"


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The periodic tasks, for `app.conf.beat_schedule`."""
    return {
        "close-previous-month": {
            "task": CLOSE_PREVIOUS_MONTH,
            "schedule": crontab(minute="0", hour="2", day_of_month="1"),
            # A beat message still queued half a day later is stale; the next month's beat or staff redo it.
            "options": {"expires": 12 * 3600},
        },
        "follow-registry": {
            "task": "registry.follow_changes",
            "schedule": crontab(minute="*/5"),
            "options": {"expires": 4 * 60},  # the next one is due soon anyway
        },
        "prune-spent-challenges": {
            "task": "upkeep.prune_spent_challenges",
            "schedule": crontab(minute="17"),
            "options": {"expires": 3600},
        },
    }
