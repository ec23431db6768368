"""The HTTP side of disputes: operators acknowledge or dispute their statements, finance adjusts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from settlement.tasks import run_period_now
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.clock import FixedClock
from voucher_api.models import (
    AuditEntry,
    StaffRole,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementStatus,
)

FINANCE, APPROVER, OP01_ADMIN, OP02_ADMIN = "keiri", "shonin", "op01-kanri", "op02-kanri"


@dataclass
class Office:
    town: City
    september_id: int


def auth(client: FlaskClient, username: str, **extra: str) -> dict[str, str]:
    return f.bearer(f.staff_token(client, username), **extra)


def writes(session: Session) -> tuple[int, ...]:
    """What a refused request must leave as it was."""
    session.expire_all()
    return (
        int(session.scalar(select(func.count()).select_from(StatementAdjustment)) or 0),
        int(session.scalar(select(func.count()).select_from(StatementLine)) or 0),
        int(session.scalar(select(func.count()).select_from(Statement)) or 0),
        int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0),
    )


@pytest.fixture
def office(
    client: FlaskClient, session: Session, session_factory: sessionmaker[Session], clock: FixedClock
) -> Office:
    """September closed for both operators; OP01's statement (¥1,900 due) confirmed by finance."""
    town = city(session, operators=2)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 4), fare=2600)
    f.staff_user(session, town.mun, StaffRole.FINANCE, username=FINANCE)
    f.staff_user(session, town.mun, StaffRole.FINANCE_APPROVER, username=APPROVER)
    for username, fleet in ((OP01_ADMIN, town.fleets[0]), (OP02_ADMIN, town.fleets[1])):
        f.staff_user(
            session, town.mun, StaffRole.OPERATOR_ADMIN, username=username, operator_id=fleet.operator.id
        )
    session.commit()
    run_period_now(session_factory, "062120", "2026-09", "cli:test", clock=clock)
    september_id = session.scalar(
        select(Statement.id).where(Statement.operator_id == town.fleets[0].operator.id)
    )
    assert september_id is not None
    r = client.post(f"/api/v1/statements/{september_id}/confirm", headers=auth(client, FINANCE))
    assert r.status_code == 200, r.get_json()
    return Office(town, september_id)


def adjust(
    client: FlaskClient, office: Office, body: Any, *, key: str | None = "adj-1", who: str = FINANCE
) -> Any:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.post(
        f"/api/v1/statements/{office.september_id}/adjustments", json=body, headers=auth(client, who, **extra)
    )


def dispute(
    client: FlaskClient, office: Office, reason: str = "9月3日の運賃が違います", who: str = OP01_ADMIN
) -> Any:
    return client.post(
        f"/api/v1/statements/{office.september_id}/dispute",
        json={"reason": reason},
        headers=auth(client, who),
    )


# --- acknowledge and dispute ---------------------------------------------------------------------


def test_operator_admin_acknowledges_their_confirmed_statement(client: FlaskClient, office: Office) -> None:
    r = client.post(f"/api/v1/statements/{office.september_id}/acknowledge", headers=auth(client, OP01_ADMIN))
    body = r.get_json()
    assert r.status_code == 200, body
    assert (body["operator_response"], body["status"], body["amount_due"], body["dispute_answered"]) == (
        "acknowledged",
        "confirmed",
        1900,
        False,
    )
    assert body["operator_response_at"] == "2026-10-15T01:00:00+00:00"


def test_acknowledge_accepts_an_empty_object_but_not_unknown_fields(
    client: FlaskClient, office: Office
) -> None:
    url = f"/api/v1/statements/{office.september_id}/acknowledge"
    headers = auth(client, OP01_ADMIN)
    unknown = client.post(url, json={"amount_due": 0}, headers=headers)
    empty = client.post(url, json={}, headers=headers)
    assert (unknown.status_code, unknown.get_json()["code"], empty.status_code) == (422, "validation", 200)


def test_operator_admin_disputes_with_a_reason(client: FlaskClient, office: Office) -> None:
    r = dispute(client, office)
    body = r.get_json()
    assert r.status_code == 200, body
    assert (body["operator_response"], body["dispute_reason"], body["dispute_answered"]) == (
        "disputed",
        "9月3日の運賃が違います",
        False,
    )


def test_another_operators_admin_cannot_answer_the_statement(
    client: FlaskClient, office: Office, session: Session
) -> None:
    before = writes(session)
    r = dispute(client, office, who=OP02_ADMIN)
    ack = client.post(
        f"/api/v1/statements/{office.september_id}/acknowledge", headers=auth(client, OP02_ADMIN)
    )
    assert [(x.status_code, x.get_json()["code"]) for x in (r, ack)] == [(404, "statement.not_found")] * 2
    assert writes(session) == before


@pytest.mark.parametrize("username", [FINANCE, APPROVER])
def test_city_staff_cannot_answer_for_the_operator(
    client: FlaskClient, office: Office, username: str
) -> None:
    assert dispute(client, office, who=username).status_code == 403


def test_operator_admin_without_an_operator_is_forbidden(
    client: FlaskClient, office: Office, session: Session
) -> None:
    f.staff_user(session, office.town.mun, StaffRole.OPERATOR_ADMIN, username="no-operator")
    session.commit()
    r = dispute(client, office, who="no-operator")
    assert (r.status_code, r.get_json()["code"]) == (403, "auth.forbidden")


def test_a_draft_cannot_be_disputed(client: FlaskClient, office: Office, session: Session) -> None:
    draft = session.scalar(
        select(Statement.id).where(Statement.operator_id == office.town.fleets[1].operator.id)
    )
    r = client.post(
        f"/api/v1/statements/{draft}/dispute", json={"reason": "x"}, headers=auth(client, OP02_ADMIN)
    )
    assert (r.status_code, r.get_json()["code"]) == (422, "statement.not_confirmed")


def test_an_acknowledged_statement_cannot_be_disputed(client: FlaskClient, office: Office) -> None:
    client.post(f"/api/v1/statements/{office.september_id}/acknowledge", headers=auth(client, OP01_ADMIN))
    r = dispute(client, office)
    assert (r.status_code, r.get_json()["code"]) == (409, "statement.already_acknowledged")


BAD_DISPUTES: list[tuple[str, Any]] = [
    ("missing reason", {}),
    ("empty reason", {"reason": ""}),
    ("blank reason", {"reason": "   "}),
    ("too long", {"reason": "あ" * 501}),
    ("number", {"reason": 123}),
    ("null", {"reason": None}),
    ("unknown field", {"reason": "x", "amount_due": 0}),
    ("a list", ["x"]),
    ("my number", {"reason": "個人番号は123456789012です"}),
]


@pytest.mark.parametrize(("label", "body"), BAD_DISPUTES, ids=[b[0] for b in BAD_DISPUTES])
def test_a_bad_dispute_is_a_field_error_and_writes_nothing(
    client: FlaskClient, office: Office, session: Session, label: str, body: Any
) -> None:
    before = writes(session)
    r = client.post(
        f"/api/v1/statements/{office.september_id}/dispute", json=body, headers=auth(client, OP01_ADMIN)
    )
    assert (r.status_code, r.mimetype, r.get_json()["code"]) == (
        422,
        "application/problem+json",
        "validation",
    )
    assert writes(session) == before
    assert session.get(Statement, office.september_id).operator_response.value == "none"  # type: ignore[union-attr]


# --- adjustments ---------------------------------------------------------------------------------


def test_finance_answers_a_dispute_with_an_adjustment_on_next_months_draft(
    client: FlaskClient, office: Office
) -> None:
    dispute(client, office)
    r = adjust(client, office, {"amount": 500, "note": "運賃の誤りを訂正"})
    body = r.get_json()
    assert r.status_code == 201, body
    adjustment, target = body["adjustment"], body["target_statement"]
    assert (adjustment["disputed_statement_id"], adjustment["amount"], adjustment["note"]) == (
        office.september_id,
        500,
        "運賃の誤りを訂正",
    )
    assert adjustment["target_statement_id"] == target["statement_id"]
    assert (target["number"], target["status"], target["adjustment_total"], target["amount_due"]) == (
        "062120-202610-OP01",
        "draft",
        500,
        500,
    )


def test_the_answered_statement_shows_the_answer_and_keeps_its_amounts(
    client: FlaskClient, office: Office
) -> None:
    dispute(client, office)
    adjust(client, office, {"amount": 500, "note": "運賃の誤りを訂正"})
    seen = client.get(
        f"/api/v1/statements/{office.september_id}", headers=auth(client, OP01_ADMIN)
    ).get_json()
    assert (seen["dispute_answered"], seen["adjustment_total"], seen["amount_due"]) == (True, 0, 1900)
    assert [line["kind"] for line in seen["lines"]] == ["ride", "ride"]


def test_the_target_draft_shows_the_adjustment_line(client: FlaskClient, office: Office) -> None:
    target = adjust(client, office, {"amount": 500, "note": "訂正"}).get_json()["target_statement"]
    seen = client.get(
        f"/api/v1/statements/{target['statement_id']}", headers=auth(client, OP01_ADMIN)
    ).get_json()
    assert [(line["kind"], line["ride_id"], line["subsidy_amount"]) for line in seen["lines"]] == [
        ("adjustment", None, 500)
    ]


def test_adjustment_needs_an_idempotency_key(client: FlaskClient, office: Office, session: Session) -> None:
    before = writes(session)
    r = adjust(client, office, {"amount": 500, "note": "訂正"}, key=None)
    assert (r.status_code, r.get_json()["code"]) == (400, "idempotency.key_required")
    assert writes(session) == before


def test_a_retry_with_the_same_key_returns_the_first_answer_and_changes_nothing(
    client: FlaskClient, office: Office, session: Session
) -> None:
    first = adjust(client, office, {"amount": 500, "note": "訂正"})
    after_first = writes(session)
    again = adjust(client, office, {"amount": 500, "note": "訂正"})
    assert (again.status_code, again.get_json()) == (201, first.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert writes(session) == after_first


def test_the_same_key_with_another_body_is_refused(
    client: FlaskClient, office: Office, session: Session
) -> None:
    adjust(client, office, {"amount": 500, "note": "訂正"})
    after_first = writes(session)
    r = adjust(client, office, {"amount": 600, "note": "訂正"})
    assert (r.status_code, r.get_json()["code"]) == (422, "idempotency.key_reused")
    assert writes(session) == after_first


@pytest.mark.parametrize("username", [OP01_ADMIN, APPROVER, "kansa"])
def test_only_finance_adjusts(client: FlaskClient, office: Office, session: Session, username: str) -> None:
    if username == "kansa":
        f.staff_user(session, office.town.mun, StaffRole.AUDITOR, username="kansa")
        session.commit()
    before = writes(session)
    assert adjust(client, office, {"amount": 500, "note": "訂正"}, who=username).status_code == 403
    assert writes(session) == before


def test_adjusting_a_draft_is_refused(client: FlaskClient, office: Office, session: Session) -> None:
    draft = session.scalar(
        select(Statement.id).where(Statement.operator_id == office.town.fleets[1].operator.id)
    )
    r = client.post(
        f"/api/v1/statements/{draft}/adjustments",
        json={"amount": 500, "note": "訂正"},
        headers=auth(client, FINANCE, **{"Idempotency-Key": "adj-draft"}),
    )
    assert (r.status_code, r.get_json()["code"]) == (422, "statement.not_confirmed")


def test_a_deduction_beyond_the_next_claim_is_refused(
    client: FlaskClient, office: Office, session: Session
) -> None:
    before = writes(session)
    r = adjust(client, office, {"amount": -100, "note": "過払いの返還"})
    assert (r.status_code, r.get_json()["code"]) == (422, "adjustment.amount_due_negative")
    assert writes(session) == before


def test_adjusting_another_citys_statement_is_not_found(
    client: FlaskClient, office: Office, session: Session
) -> None:
    other = city(session, operators=1, code="062138", name="大石田町")
    f.staff_user(session, other.mun, StaffRole.FINANCE, username="oishida")
    session.commit()
    before = writes(session)
    r = adjust(client, office, {"amount": 500, "note": "訂正"}, who="oishida")
    assert (r.status_code, r.get_json()["code"]) == (404, "statement.not_found")
    assert writes(session) == before


BAD_ADJUSTMENTS: list[tuple[str, Any]] = [
    ("missing fields", {}),
    ("zero", {"amount": 0, "note": "訂正"}),
    ("too large", {"amount": 10_000_001, "note": "訂正"}),
    ("too small", {"amount": -10_000_001, "note": "訂正"}),
    ("huge number", {"amount": 10**30, "note": "訂正"}),
    ("text amount", {"amount": "500", "note": "訂正"}),
    ("float amount", {"amount": 500.5, "note": "訂正"}),
    ("boolean amount", {"amount": True, "note": "訂正"}),
    ("null amount", {"amount": None, "note": "訂正"}),
    ("empty note", {"amount": 500, "note": ""}),
    ("blank note", {"amount": 500, "note": "   "}),
    ("long note", {"amount": 500, "note": "x" * 201}),
    ("note with a line break", {"amount": 500, "note": "一行目\n二行目"}),
    ("unknown field", {"amount": 500, "note": "訂正", "target_statement_id": 1}),
    ("a list", [500, "訂正"]),
]


@pytest.mark.parametrize(("label", "body"), BAD_ADJUSTMENTS, ids=[b[0] for b in BAD_ADJUSTMENTS])
def test_a_bad_adjustment_is_a_field_error_and_writes_nothing(
    client: FlaskClient, office: Office, session: Session, label: str, body: Any
) -> None:
    before = writes(session)
    r = adjust(client, office, body, key=f"bad-{label}")
    assert (r.status_code, r.mimetype, r.get_json()["code"]) == (
        422,
        "application/problem+json",
        "validation",
    )
    assert writes(session) == before


def test_a_malformed_json_adjustment_is_a_problem(
    client: FlaskClient, office: Office, session: Session
) -> None:
    before = writes(session)
    r = client.post(
        f"/api/v1/statements/{office.september_id}/adjustments",
        data='{"amount": 5',
        content_type="application/json",
        headers=auth(client, FINANCE, **{"Idempotency-Key": "bad-json"}),
    )
    assert (r.status_code, r.mimetype) == (400, "application/problem+json")
    assert writes(session) == before


def test_the_largest_adjustment_is_accepted(client: FlaskClient, office: Office) -> None:
    r = adjust(client, office, {"amount": 10_000_000, "note": "上限"})
    assert (r.status_code, r.get_json()["target_statement"]["amount_due"]) == (201, 10_000_000)


def test_adjustments_answering_a_statement_are_listed(client: FlaskClient, office: Office) -> None:
    adjust(client, office, {"amount": 500, "note": "訂正"}, key="adj-1")
    adjust(client, office, {"amount": -200, "note": "一部取消"}, key="adj-2")
    url = f"/api/v1/statements/{office.september_id}/adjustments"
    mine = client.get(url, headers=auth(client, OP01_ADMIN))
    theirs = client.get(url, headers=auth(client, OP02_ADMIN))
    assert [a["amount"] for a in mine.get_json()] == [500, -200]
    assert (theirs.status_code, theirs.get_json()["code"]) == (404, "statement.not_found")


def test_statement_list_shows_the_operator_response(client: FlaskClient, office: Office) -> None:
    dispute(client, office)
    listed = client.get("/api/v1/statements?period=2026-09", headers=auth(client, FINANCE)).get_json()
    assert [(s["operator_code"], s["operator_response"], s["dispute_reason"]) for s in listed] == [
        ("OP01", "disputed", "9月3日の運賃が違います"),
        ("OP02", "none", ""),
    ]


def test_a_paid_statement_can_still_be_disputed_and_adjusted(
    client: FlaskClient, office: Office, session: Session
) -> None:
    client.post(f"/api/v1/statements/{office.september_id}/approve", headers=auth(client, APPROVER))
    client.post(f"/api/v1/statements/{office.september_id}/pay", headers=auth(client, FINANCE))
    assert session.get(Statement, office.september_id).status is StatementStatus.PAID  # type: ignore[union-attr]
    assert dispute(client, office).status_code == 200
    assert adjust(client, office, {"amount": 500, "note": "訂正"}).status_code == 201


def test_the_new_endpoints_are_in_the_openapi_document(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {
        "/api/v1/statements/{statement_id}/acknowledge",
        "/api/v1/statements/{statement_id}/dispute",
        "/api/v1/statements/{statement_id}/adjustments",
    } <= set(paths)
