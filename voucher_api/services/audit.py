"""The audit trail: one entry per state change, with who and when, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from voucher_api.models import AuditEntry


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
        insert(AuditEntry).values(
            municipality_id=municipality_id,
            at=at,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            details=details or {},
        )
    )
