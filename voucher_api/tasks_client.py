"""How the API hands work to Celery without importing the worker's code: tasks are sent by name."""

from __future__ import annotations

from typing import Any, Protocol

from celery import Celery


class TaskSender(Protocol):
    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str: ...

    def ping(self) -> bool: ...


class CeleryTaskSender:
    """Sends tasks by name to the configured broker; built once per process, connects lazily."""

    def __init__(self, broker_url: str, queue: str = "celery") -> None:
        self._app = Celery("voucher_api-client", broker=broker_url, set_as_current=False)
        self._app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=False,
            task_default_queue=queue,
        )

    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        result = self._app.send_task(name, args=args, kwargs=kwargs or {})
        return str(result.id)

    def ping(self) -> bool:
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
