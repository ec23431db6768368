"""POST /terminals/<id>/revoke: an operator admin stops a lost or stolen terminal of their own."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests import factories as f
from tests.api.conftest import City
from voucher_api.models import AuditEntry, StaffRole, Terminal, TerminalStatus


def revoke(client: FlaskClient, username: str, terminal_id: int, reason: str = "車両盗難") -> TestResponse:
    return client.post(
        f"/api/v1/terminals/{terminal_id}/revoke",
        json={"reason": reason},
        headers=f.bearer(f.staff_token(client, username)),
    )


def status_of(session: Session, terminal_id: int) -> TerminalStatus:
    session.expire_all()
    terminal = session.get(Terminal, terminal_id)
    assert terminal is not None
    return terminal.status


def test_the_operator_admin_revokes_a_lost_terminal_which_then_cannot_sign_in(
    client: FlaskClient, session: Session, city: City
) -> None:
    terminal_id = city.terminal.terminal_id
    city.terminal.token(client, f.NOW)  # it signs in before
    r = revoke(client, "jigyosha", terminal_id)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {"terminal_id": terminal_id, "status": "revoked"}
    refused = client.post("/api/v1/auth/terminal-token", json={"assertion": city.terminal.assertion(f.NOW)})
    assert (refused.status_code, refused.get_json()["code"]) == (401, "terminal.not_active")
    assert revoke(client, "jigyosha", terminal_id, "二度目").status_code == 200  # nothing more changes
    assert status_of(session, terminal_id) is TerminalStatus.REVOKED
    entries = session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "terminal.revoked", AuditEntry.entity_id == str(terminal_id)
        )
    ).all()
    assert [e.details["reason"] for e in entries] == ["車両盗難"]


def test_another_operators_admin_and_other_roles_cannot_revoke_it(
    client: FlaskClient, session: Session, city: City
) -> None:
    other = f.operator(session, city.mun, code="OP09")
    f.staff_user(session, city.mun, StaffRole.OPERATOR_ADMIN, username="tasha", operator_id=other.id)
    session.commit()
    terminal_id = city.terminal.terminal_id
    r = revoke(client, "tasha", terminal_id)
    assert (r.status_code, r.get_json()["code"]) == (404, "not_found")
    r = revoke(client, "madoguchi", terminal_id)
    assert (r.status_code, r.get_json()["code"]) == (403, "auth.forbidden")
    r = revoke(client, "jigyosha", terminal_id, reason="")
    assert (r.status_code, r.get_json()["code"]) == (422, "validation")
    assert status_of(session, terminal_id) is TerminalStatus.ACTIVE
