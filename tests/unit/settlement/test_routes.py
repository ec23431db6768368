"""The settlement HTTP resources: starting a run, reading and exporting statements, signing them off."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from settlement.tasks import run_period_now
from tests import factories as f
from tests.conftest import RecordingTaskSender
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.clock import FixedClock
from voucher_api.demo import REMITTER
from voucher_api.models import RunStatus, SettlementRun, StaffRole, StaffUser, Statement


@dataclass
class Office:
    town: City
    finance: str
    approver: str


@pytest.fixture
def office(session: Session) -> Office:
    town = city(session, operators=2)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 4), fare=2600)
    f.staff_user(session, town.mun, StaffRole.FINANCE, username="keiri")
    f.staff_user(session, town.mun, StaffRole.FINANCE_APPROVER, username="shonin")
    session.commit()
    return Office(town, "keiri", "shonin")


def staff(session: Session, office: Office, username: str, *roles: StaffRole, **kw: Any) -> str:
    """One more staff account (password hashing is slow, so only tests that need one make it)."""
    f.staff_user(session, office.town.mun, *roles, username=username, **kw)
    session.commit()
    return username


def auth(client: FlaskClient, username: str, **extra: str) -> dict[str, str]:
    return f.bearer(f.staff_token(client, username), **extra)


def closed_september(session_factory: sessionmaker[Session], clock: FixedClock) -> None:
    run_period_now(session_factory, "062120", "2026-09", "cli:test", clock=clock)


def statement_id(session: Session, office: Office, fleet_index: int = 0) -> int:
    found = session.scalar(
        select(Statement.id).where(Statement.operator_id == office.town.fleets[fleet_index].operator.id)
    )
    assert found is not None
    return found


# --- runs ----------------------------------------------------------------------------------------


def test_finance_starts_a_run_and_the_worker_is_asked_to_close_it(
    client: FlaskClient, office: Office, task_sender: RecordingTaskSender, session: Session
) -> None:
    r = client.post(
        "/api/v1/settlement-runs", json={"period": "2026-09"}, headers=auth(client, office.finance)
    )
    body = r.get_json()
    assert r.status_code == 202, body
    assert (body["period"], body["status"], body["trigger"]) == ("2026-09", "queued", "api")
    assert task_sender.sent == [("settlement.close_period", [str(body["run_id"])])]
    assert session.get(SettlementRun, body["run_id"]) is not None


def test_run_of_the_current_month_is_refused_with_a_problem(client: FlaskClient, office: Office) -> None:
    r = client.post(
        "/api/v1/settlement-runs", json={"period": "2026-10"}, headers=auth(client, office.finance)
    )
    assert r.status_code == 422
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "settlement.period_open"


def test_second_run_while_one_is_queued_is_a_conflict(client: FlaskClient, office: Office) -> None:
    headers = auth(client, office.finance)
    client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=headers)
    r = client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (409, "settlement.already_running")


def test_counter_staff_cannot_start_a_run(client: FlaskClient, office: Office, session: Session) -> None:
    counter = staff(session, office, "madoguchi", StaffRole.COUNTER)
    r = client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=auth(client, counter))
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body", [{"period": "2026-9"}, {"period": "09/2026"}, {}, {"period": "2026-09", "x": 1}]
)
def test_malformed_run_request_is_a_field_error(
    client: FlaskClient, office: Office, body: dict[str, Any]
) -> None:
    r = client.post("/api/v1/settlement-runs", json=body, headers=auth(client, office.finance))
    assert r.status_code == 422
    assert r.get_json()["code"] == "validation"


def test_retry_with_the_same_idempotency_key_returns_the_first_run(
    client: FlaskClient, office: Office, task_sender: RecordingTaskSender
) -> None:
    headers = auth(client, office.finance, **{"Idempotency-Key": "close-2026-09"})
    first = client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=headers)
    again = client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=headers)
    assert (again.status_code, again.get_json()["run_id"]) == (202, first.get_json()["run_id"])
    assert len(task_sender.sent) == 1


class BrokenSender(RecordingTaskSender):
    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        raise ConnectionError("broker down")


def test_broker_failure_is_reported_and_does_not_lock_the_period(
    client: FlaskClient, office: Office, session: Session
) -> None:
    client.application.extensions["voucher"]["tasks"] = BrokenSender()
    r = client.post(
        "/api/v1/settlement-runs", json={"period": "2026-09"}, headers=auth(client, office.finance)
    )
    assert (r.status_code, r.get_json()["code"]) == (503, "unavailable")
    statuses = session.scalars(select(SettlementRun.status).execution_options(populate_existing=True)).all()
    assert statuses == [RunStatus.FAILED]


def test_run_shows_its_progress_and_is_listed_by_month(
    client: FlaskClient, office: Office, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed_september(session_factory, clock)
    headers = auth(client, office.finance)
    runs = client.get("/api/v1/settlement-runs?period=2026-09", headers=headers).get_json()
    one = client.get(f"/api/v1/settlement-runs/{runs[0]['run_id']}", headers=headers).get_json()
    assert (one["status"], one["operators_done"], one["operators_total"]) == ("succeeded", 2, 2)


def test_run_of_another_city_is_not_found(client: FlaskClient, office: Office, session: Session) -> None:
    other = city(session, operators=1, code="062138", name="大石田町")
    f.staff_user(session, other.mun, StaffRole.FINANCE, username="oishida")
    session.commit()
    r = client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=auth(client, "oishida"))
    theirs = r.get_json()["run_id"]
    assert (
        client.get(f"/api/v1/settlement-runs/{theirs}", headers=auth(client, office.finance)).status_code
        == 404
    )


# --- statements ----------------------------------------------------------------------------------


def test_statements_of_a_month_are_listed_and_read_with_their_lines(
    client: FlaskClient, office: Office, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed_september(session_factory, clock)
    headers = auth(client, office.finance)
    listed = client.get("/api/v1/statements?period=2026-09", headers=headers).get_json()
    assert [(s["number"], s["status"], s["ride_count"]) for s in listed] == [
        ("062120-202609-OP01", "draft", 2),
        ("062120-202609-OP02", "draft", 0),
    ]
    detail = client.get(f"/api/v1/statements/{listed[0]['statement_id']}", headers=headers).get_json()
    assert [(line["line_no"], line["kind"], line["subsidy_amount"]) for line in detail["lines"]] == [
        (1, "ride", 900),
        (2, "ride", 1000),
    ]
    assert detail["amount_due"] == 1900


def test_statement_csv_is_a_utf8_bom_attachment_for_excel(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    r = client.get(
        f"/api/v1/statements/{statement_id(session, office)}/csv", headers=auth(client, office.finance)
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="statement-062120-202609-OP01.csv"'
    assert r.data.startswith(b"\xef\xbb\xbf")
    assert "助成額" in r.data.decode("utf-8-sig")


def test_statement_pdf_is_served_as_an_attachment(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    r = client.get(
        f"/api/v1/statements/{statement_id(session, office)}/pdf", headers=auth(client, office.finance)
    )
    assert (r.status_code, r.mimetype) == (200, "application/pdf")
    assert r.data.startswith(b"%PDF")


def test_operator_admin_sees_only_their_own_operators_statements(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    operator_admin = staff(
        session, office, "jigyosha", StaffRole.OPERATOR_ADMIN, operator_id=office.town.fleets[1].operator.id
    )
    closed_september(session_factory, clock)
    headers = auth(client, operator_admin)
    listed = client.get("/api/v1/statements?period=2026-09", headers=headers).get_json()
    assert [s["operator_code"] for s in listed] == ["OP02"]
    assert (
        client.get(f"/api/v1/statements/{statement_id(session, office, 0)}", headers=headers).status_code
        == 404
    )


def test_statement_of_another_city_is_not_found(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    other = city(session, operators=1, code="062138", name="大石田町")
    f.staff_user(session, other.mun, StaffRole.FINANCE, username="oishida")
    session.commit()
    closed_september(session_factory, clock)
    r = client.get(f"/api/v1/statements/{statement_id(session, office)}", headers=auth(client, "oishida"))
    assert (r.status_code, r.get_json()["code"]) == (404, "statement.not_found")


def test_statement_is_confirmed_approved_by_another_person_and_paid(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    confirm = client.post(f"/api/v1/statements/{sid}/confirm", headers=auth(client, office.finance))
    approve = client.post(f"/api/v1/statements/{sid}/approve", headers=auth(client, office.approver))
    pay = client.post(f"/api/v1/statements/{sid}/pay", headers=auth(client, office.finance))
    assert [r.get_json()["status"] for r in (confirm, approve, pay)] == ["confirmed", "approved", "paid"]
    shown = client.get(f"/api/v1/statements/{sid}", headers=auth(client, office.finance)).get_json()
    people = {staff.username: staff for staff in session.scalars(select(StaffUser))}
    assert shown["paid_by_id"] == people[office.finance].id
    assert (shown["confirmed_by_name"], shown["approved_by_name"], shown["paid_by_name"]) == (
        people[office.finance].display_name,
        people[office.approver].display_name,
        people[office.finance].display_name,
    )


def test_the_person_who_confirmed_cannot_approve(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    headers = auth(client, staff(session, office, "kenmu", StaffRole.FINANCE, StaffRole.FINANCE_APPROVER))
    client.post(f"/api/v1/statements/{sid}/confirm", headers=headers)
    r = client.post(f"/api/v1/statements/{sid}/approve", headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (422, "statement.same_person")


def test_finance_clerk_cannot_approve(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    client.post(f"/api/v1/statements/{sid}/confirm", headers=auth(client, office.finance))
    assert (
        client.post(f"/api/v1/statements/{sid}/approve", headers=auth(client, office.finance)).status_code
        == 403
    )


def test_confirming_twice_is_a_bad_transition(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    headers = auth(client, office.finance)
    client.post(f"/api/v1/statements/{sid}/confirm", headers=headers)
    r = client.post(f"/api/v1/statements/{sid}/confirm", headers=headers)
    assert (r.status_code, r.get_json()["code"]) == (409, "statement.bad_transition")


# --- month exports and the payment file ----------------------------------------------------------


def test_month_lines_csv_has_one_row_per_line_of_every_statement(
    client: FlaskClient, office: Office, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed_september(session_factory, clock)
    r = client.get("/api/v1/statements/export/lines.csv?period=2026-09", headers=auth(client, office.finance))
    rows = r.data.decode("utf-8-sig").strip().split("\r\n")
    assert (r.status_code, r.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert len(rows) == 1 + 2  # the header and the two rides


def test_month_summary_csv_lists_every_operator_and_a_total(
    client: FlaskClient, office: Office, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed_september(session_factory, clock)
    r = client.get(
        "/api/v1/statements/export/summary.csv?period=2026-09", headers=auth(client, office.finance)
    )
    rows = r.data.decode("utf-8-sig").strip().split("\r\n")
    assert [row.split(",")[0] for row in rows[1:]] == ["2026/09", "2026/09", "合計"]


def approved_september(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> int:
    """September closed with the city's account and the operator's branch set, its statement confirmed and
    approved by two people; returns the statement's id."""
    office.town.mun.remitter = dict(REMITTER)  # the demo city's account at 山形銀行 尾花沢支店
    office.town.fleets[0].operator.branch_code = "451"
    session.commit()
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    for action, who in (("confirm", office.finance), ("approve", office.approver)):
        done = client.post(f"/api/v1/statements/{sid}/{action}", headers=auth(client, who))
        assert done.status_code == 200, done.get_json()
    return sid


def test_payment_file_pays_the_approved_statements_from_the_citys_account(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    approved_september(client, office, session, session_factory, clock)
    r = client.get("/api/v1/payment-files/zengin?period=2026-09", headers=auth(client, office.finance))
    records = r.data.split(b"\r\n")[:-1]
    assert r.status_code == 200, r.get_json()
    assert [record[:1] for record in records] == [
        b"1",
        b"2",
        b"8",
        b"9",
    ]  # header, one transfer, trailer, end
    assert records[1][80:90] == b"0000001900"  # the amount due, in yen


def test_payment_file_with_nothing_approved_is_refused_with_the_reason(
    client: FlaskClient, office: Office, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed_september(session_factory, clock)
    r = client.get("/api/v1/payment-files/zengin?period=2026-09", headers=auth(client, office.finance))
    assert (r.status_code, r.get_json()["code"]) == (422, "payment_file.nothing_to_pay")
    assert "承認済みで未払い" in r.get_json()["title"]


def test_payment_file_leaves_out_a_statement_already_recorded_paid(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    sid = approved_september(client, office, session, session_factory, clock)
    approved = client.get("/api/v1/payment-files/zengin?period=2026-09", headers=auth(client, office.finance))
    assert approved.status_code == 200  # approved and not yet paid: it is in the file
    paid = client.post(f"/api/v1/statements/{sid}/pay", headers=auth(client, office.finance))
    assert (paid.status_code, paid.get_json()["status"]) == (200, "paid")
    r = client.get("/api/v1/payment-files/zengin?period=2026-09", headers=auth(client, office.finance))
    assert (r.status_code, r.get_json()["code"]) == (422, "payment_file.nothing_to_pay")


def test_payment_file_with_a_bad_bank_code_is_refused_with_the_reason(
    client: FlaskClient,
    office: Office,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    office.town.mun.remitter = dict(REMITTER)  # the demo city's account at 山形銀行 尾花沢支店
    office.town.fleets[0].operator.branch_code = "999"  # no such branch of the operator's bank
    session.commit()
    closed_september(session_factory, clock)
    sid = statement_id(session, office)
    client.post(f"/api/v1/statements/{sid}/confirm", headers=auth(client, office.finance))
    client.post(f"/api/v1/statements/{sid}/approve", headers=auth(client, office.approver))
    r = client.get("/api/v1/payment-files/zengin?period=2026-09", headers=auth(client, office.finance))
    assert (r.status_code, r.get_json()["code"]) == (422, "payment_file.refused")
    assert "999" in r.get_json()["errors"]["payment_file"][0]  # names the branch it does not know
