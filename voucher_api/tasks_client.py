"""How the API hands work to Celery without importing the worker's code: tasks are sent by name."""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

from celery import Celery


class TaskSender(Protocol):
    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str: ...

    def ping(self) -> bool:
        """True when the broker answers; False or an exception when it does not."""
        ...


class CeleryTaskSender:
    """Sends tasks by name to the configured broker; built once per process, connects lazily."""

    def __init__(self, broker_url: str, queue: str = "celery") -> None:
        self._app = Celery("voucher_api-client", broker=broker_url, set_as_current=False)
        self._queue = queue
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=False,
            task_default_queue=queue,
        )

    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        result = self._app.send_task(name, args=args, kwargs=kwargs or {})
        return str(result.id)

    @property
    def queue(self) -> str:
        return self._queue

    def ping(self) -> bool:
        """Reach the broker once, without retrying, and ask it about our queue; raises when it is down.

        Connecting alone proves nothing for kombu's virtual transports (the embedded SQLAlchemy broker
        connects lazily), so a passive declare of the queue makes the broker answer. A queue not
        declared yet (no worker started) is a broker that answers.
        """
        with self._app.connection_for_write(connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0)
            with conn.channel() as channel, contextlib.suppress(*conn.channel_errors):
                channel.queue_declare(queue=self._queue, passive=True)
        return True
