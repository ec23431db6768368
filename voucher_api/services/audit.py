"""The audit trail: one entry per state change, with who and when, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from voucher_api.models import AuditEntry

AUDIT = cast(Table, AuditEntry.__table__)  # Core: an audit row is written on every ride


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | str,
    municipality_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry. Never put the individual number, a PIN or a password in `details`."""
    session.execute(
        insert(AUDIT).values(
            municipality_id=municipality_id,
            at=at,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            details=details or {},
        )
    )
