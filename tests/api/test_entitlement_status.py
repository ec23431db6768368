"""An entitlement suspended or ended by staff, with a reason, stops boarding at once; resuming restores it."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider, board
from voucher_api.models import AuditEntry, Entitlement, Ride


def set_status(client: FlaskClient, entitlement_id: int, status: str, reason: str, key: str) -> None:
    headers = f.bearer(f.staff_token(client, "madoguchi"), **{"Idempotency-Key": key})
    r = client.post(
        f"/api/v1/entitlements/{entitlement_id}/status",
        json={"status": status, "reason": reason},
        headers=headers,
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == status


def test_suspended_entitlement_is_refused_at_boarding_and_nothing_is_consumed(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    set_status(client, rider.entitlement.id, "suspended", "長期入院のため", "suspend-1")

    r = board(client, city, rider.card, key="while-suspended")

    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "entitlement.suspended"
    assert r.get_json()["title"]  # words for the driver to tell the passenger, not the code
    assert session.scalar(select(func.count()).select_from(Ride)) == 0
    assert session.scalar(select(Entitlement.balance).where(Entitlement.id == rider.entitlement.id)) == 24
    audited = session.scalar(
        select(AuditEntry).where(
            AuditEntry.action == "entitlement.status_changed",
            AuditEntry.entity_id == str(rider.entitlement.id),
        )
    )
    assert audited is not None
    assert audited.details["reason"] == "長期入院のため"
    assert audited.actor == f"staff:{city.counter.id}"


def test_resumed_entitlement_boards_again(client: FlaskClient, city: City, rider: Rider) -> None:
    set_status(client, rider.entitlement.id, "suspended", "長期入院のため", "suspend-1")
    set_status(client, rider.entitlement.id, "active", "退院されたため", "resume-1")

    r = board(client, city, rider.card, key="after-resume")

    assert r.status_code == 201, r.get_json()


def test_ended_entitlement_is_refused_at_boarding(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    set_status(client, rider.entitlement.id, "ended", "転出のため", "end-1")

    r = board(client, city, rider.card, key="after-end")

    assert r.status_code == 422, r.get_json()
    assert r.get_json()["code"] == "entitlement.none"
    assert session.scalar(select(func.count()).select_from(Ride)) == 0
