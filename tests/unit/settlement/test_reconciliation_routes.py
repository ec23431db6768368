"""POST /statements/<id>/reconciliation: the operator's ride log against the statement, over HTTP."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from settlement import reconciliation
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from tests.unit.settlement.logs import log_csv, statement_of, when
from voucher_api.db import Base
from voucher_api.models import AuditEntry, Ride, StaffRole, Statement, StatementLineKind


@dataclass
class Month:
    town: City
    statement: Statement
    rides: list[Ride]
    log: list[list[str]]


def row_counts(session: Session) -> dict[str, int]:
    session.expire_all()
    return {
        table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
        for table in Base.metadata.sorted_tables
    }


def url(statement_id: int, query: str = "") -> str:
    return f"/api/v1/statements/{statement_id}/reconciliation{query}"


def auth(client: FlaskClient, username: str, **extra: str) -> dict[str, str]:
    return f.bearer(f.staff_token(client, username), **extra)


@pytest.fixture
def month(session: Session) -> Month:
    """September for OP01: four rides on the statement (one fareless), a fifth voided; and the company's
    log with one ride by number, one by car and time with a higher fare, one voided ride, one car we do not
    know and one row without a time."""
    town = city(session, operators=2)
    op = town.fleets[0]
    plate = op.vehicle.registration
    a = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 0), fare=1800)  # subsidy 900
    b = ride(session, town, op, boarded_at=jst(2026, 9, 4, 14, 30), fare=2600)  # subsidy 1000
    c = ride(session, town, op, boarded_at=jst(2026, 9, 5, 9, 0), fare=1200)  # subsidy 600
    d = ride(session, town, op, boarded_at=jst(2026, 9, 6, 9, 0), fare=None)
    voided = ride(session, town, op, boarded_at=jst(2026, 9, 7, 18, 0), voided=True)
    statement = statement_of(session, town, op, [a, b, c, (d, StatementLineKind.FARELESS)], adjustments=[300])
    f.staff_user(session, town.mun, StaffRole.FINANCE, username="keiri")
    f.staff_user(session, town.mun, StaffRole.OPERATOR_ADMIN, username="jigyosha", operator_id=op.operator.id)
    session.commit()
    log = [
        [when(a.boarded_at), plate, "1,800", "900", str(a.id)],
        [when(b.boarded_at + timedelta(minutes=1)), plate, "2,900", "1,000", ""],
        [when(voided.boarded_at), plate, "2,000", "1,000", ""],
        ["2026/09/08 08:00", "宮城 300 か 99-99", "1,500", "750", ""],
        ["", plate, "1,500", "750", ""],
    ]
    return Month(town, statement, [a, b, c, d, voided], log)


def test_a_shift_jis_log_shows_matched_missing_and_extra_rides_with_sums(
    client: FlaskClient, month: Month, session: Session
) -> None:
    a, b, c, d, voided = month.rides
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log, encoding="cp932"),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv"}),
    )
    body = r.get_json()
    assert r.status_code == 200, body
    assert (body["statement_id"], body["number"], body["encoding"]) == (
        month.statement.id,
        "062120-202609-OP01",
        "cp932",
    )
    assert [(m["row"], m["ride_id"], m["matched_by"], m["differences"]) for m in body["matched"]] == [
        (2, a.id, "ride_id", []),
        (3, b.id, "vehicle_time", ["meter_fare"]),
    ]
    assert body["matched"][1]["their_boarded_at"] == "2026-09-04T14:31:00+09:00"
    assert body["matched"][1]["meter_fare_difference"] == 300
    assert [(m["ride_id"], m["kind"], m["our_subsidy"]) for m in body["missing"]] == [
        (c.id, "ride", 600),
        (d.id, "fareless", 0),
    ]
    assert [(x["row"], x["code"], x["ride_id"]) for x in body["extra"]] == [
        (4, "reconciliation.extra.voided", voided.id),
        (5, "reconciliation.extra.unknown_vehicle", None),
    ]
    assert body["errors"] == [
        {"row": 6, "code": "reconciliation.row.missing_boarded_at", "reason": "乗車日時がありません。"}
    ]
    totals = body["totals"]
    assert (totals["matched"], totals["missing"], totals["extra"], totals["errors"]) == (2, 2, 2, 1)
    assert (totals["our_subsidy"], totals["their_subsidy"], totals["difference"]) == (2500, 3650, 1150)
    assert (totals["our_meter_fare"], totals["their_meter_fare"]) == (5600, 8200)


def test_a_reconciliation_is_recorded_in_the_audit_log_and_changes_nothing_else(
    client: FlaskClient, month: Month, session: Session
) -> None:
    before = row_counts(session)
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv"}),
    )
    assert r.status_code == 200, r.get_json()
    after = row_counts(session)
    assert after.pop("audit_entries") == before.pop("audit_entries") + 1  # the reconciliation itself
    assert after == before
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "statement.reconciled")).one()
    assert (entry.entity_id, entry.details["matched"], entry.details["extra"]) == (
        str(month.statement.id),
        2,
        2,
    )
    assert len(entry.details["file_sha256"]) == 64
    session.refresh(month.statement)
    assert (month.statement.status.value, month.statement.subsidy_total) == ("draft", 2500)


def test_the_finance_page_uploads_a_file_with_a_bom_as_a_form_field(
    client: FlaskClient, month: Month
) -> None:
    upload = (io.BytesIO(log_csv(month.log, bom=True)), "乗車記録.csv", "application/vnd.ms-excel")
    r = client.post(
        url(month.statement.id),
        data={"file": upload},
        content_type="multipart/form-data",
        headers=auth(client, "keiri"),
    )
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["encoding"], r.get_json()["totals"]["matched"]) == ("utf-8-sig", 2)


def test_the_result_as_csv_is_an_excel_attachment(client: FlaskClient, month: Month) -> None:
    r = client.post(
        url(month.statement.id, "?format=csv"),
        data=log_csv(month.log),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv; charset=utf-8"}),
    )
    assert (r.status_code, r.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    assert r.headers["Content-Disposition"] == 'attachment; filename="reconciliation-062120-202609-OP01.csv"'
    assert r.data.startswith(b"\xef\xbb\xbf")
    groups = [row.split(",")[0] for row in r.data.decode("utf-8-sig").split("\r\n")[1:8]]
    assert groups == [
        "一致",
        "差異あり",
        "ログになし",
        "ログになし",
        "精算書になし",
        "精算書になし",
        "読めない行",
    ]


def test_a_log_without_subsidies_compares_fares_and_leaves_the_subsidy_difference_open(
    client: FlaskClient, month: Month
) -> None:
    fares_only = [row[:3] for row in month.log]
    r = client.post(
        url(month.statement.id),
        data=log_csv(fares_only, header=("乗車日時", "車両番号", "メーター料金")),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv"}),
    )
    totals = r.get_json()["totals"]
    assert (totals["their_subsidy"], totals["difference"], totals["meter_fare_difference"]) == (
        None,
        None,
        2600,
    )
    assert r.get_json()["matched"][0]["their_subsidy"] is None


def test_reasons_are_in_english_when_the_reader_prefers_it(client: FlaskClient, month: Month) -> None:
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv", "Accept-Language": "en"}),
    )
    assert r.get_json()["extra"][0]["reason"] == "This ride was voided."


def test_the_operator_admin_reconciles_their_own_statement(client: FlaskClient, month: Month) -> None:
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log),
        headers=auth(client, "jigyosha", **{"Content-Type": "text/csv"}),
    )
    assert (r.status_code, r.get_json()["totals"]["matched"]) == (200, 2)


def test_another_operators_statement_is_not_found_for_an_operator_admin(
    client: FlaskClient, month: Month, session: Session
) -> None:
    other = month.town.fleets[1]
    theirs = statement_of(
        session, month.town, other, [ride(session, month.town, other, boarded_at=jst(2026, 9, 3))]
    )
    session.commit()
    r = client.post(
        url(theirs.id), data=b"not even csv", headers=auth(client, "jigyosha", **{"Content-Type": "text/csv"})
    )
    assert (r.status_code, r.get_json()["code"]) == (404, "statement.not_found")


def test_a_statement_of_another_city_is_not_found(
    client: FlaskClient, month: Month, session: Session
) -> None:
    other = city(session, operators=1, code="062138", name="大石田町")
    f.staff_user(session, other.mun, StaffRole.FINANCE, username="oishida")
    session.commit()
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log),
        headers=auth(client, "oishida", **{"Content-Type": "text/csv"}),
    )
    assert (r.status_code, r.get_json()["code"]) == (404, "statement.not_found")


@pytest.mark.parametrize(
    ("role", "status"),
    [(StaffRole.AUDITOR, 200), (StaffRole.FINANCE_APPROVER, 200), (StaffRole.COUNTER, 403)],
)
def test_who_may_reconcile(
    client: FlaskClient, month: Month, session: Session, role: StaffRole, status: int
) -> None:
    f.staff_user(session, month.town.mun, role, username="someone")
    session.commit()
    r = client.post(
        url(month.statement.id),
        data=log_csv(month.log),
        headers=auth(client, "someone", **{"Content-Type": "text/csv"}),
    )
    assert r.status_code == status


def test_without_a_token_it_is_refused(client: FlaskClient, month: Month) -> None:
    r = client.post(url(month.statement.id), data=log_csv(month.log), content_type="text/csv")
    assert (r.status_code, r.get_json()["code"]) == (401, "auth.required")


def test_a_file_over_five_megabytes_is_too_large(client: FlaskClient, month: Month) -> None:
    data = log_csv(month.log) + b"\r\n" * (reconciliation.MAX_LOG_BYTES // 2)
    r = client.post(
        url(month.statement.id), data=data, headers=auth(client, "keiri", **{"Content-Type": "text/csv"})
    )
    assert (r.status_code, r.mimetype, r.get_json()["code"]) == (
        413,
        "application/problem+json",
        "reconciliation.too_large",
    )


def test_a_large_log_under_the_cap_is_accepted_although_the_api_caps_json_bodies_lower(
    client: FlaskClient, month: Month
) -> None:
    data = log_csv(month.log + [month.log[3]] * 8_000)  # about 400 KB, above the 256 KB JSON cap
    r = client.post(
        url(month.statement.id), data=data, headers=auth(client, "keiri", **{"Content-Type": "text/csv"})
    )
    assert (r.status_code, r.get_json()["totals"]["extra"]) == (200, 8_002)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("日付,金額\r\n2026/09/03,1800\r\n".encode(), "reconciliation.no_header"),
        (b"\x81\x00\xff\xfe\xa0\x80", "reconciliation.bad_encoding"),
        (b"", "reconciliation.empty"),
    ],
)
def test_a_file_that_is_not_a_readable_log_is_a_problem_not_an_error(
    client: FlaskClient, month: Month, data: bytes, code: str
) -> None:
    r = client.post(
        url(month.statement.id), data=data, headers=auth(client, "keiri", **{"Content-Type": "text/csv"})
    )
    assert (r.status_code, r.mimetype, r.get_json()["code"]) == (422, "application/problem+json", code)


def test_json_is_not_a_log(client: FlaskClient, month: Month) -> None:
    r = client.post(url(month.statement.id), json={"rows": []}, headers=auth(client, "keiri"))
    assert (r.status_code, r.get_json()["code"]) == (415, "reconciliation.unsupported_media_type")


def test_a_form_without_the_file_is_refused(client: FlaskClient, month: Month) -> None:
    r = client.post(
        url(month.statement.id),
        data={"other": "x"},
        content_type="multipart/form-data",
        headers=auth(client, "keiri"),
    )
    assert (r.status_code, r.get_json()["code"]) == (422, "reconciliation.empty")


@pytest.mark.parametrize("query", ["?tolerance_minutes=99", "?format=xlsx", "?tolerance_minutes=three"])
def test_bad_query_parameters_are_field_errors(client: FlaskClient, month: Month, query: str) -> None:
    r = client.post(
        url(month.statement.id, query),
        data=log_csv(month.log),
        headers=auth(client, "keiri", **{"Content-Type": "text/csv"}),
    )
    assert (r.status_code, r.get_json()["code"]) == (422, "validation")


def test_a_wider_tolerance_matches_a_ride_logged_further_off(client: FlaskClient, month: Month) -> None:
    c = month.rides[2]
    log = [
        [
            when(c.boarded_at + timedelta(minutes=7)),
            month.town.fleets[0].vehicle.registration,
            "1200",
            "600",
            "",
        ]
    ]
    headers = auth(client, "keiri", **{"Content-Type": "text/csv"})
    narrow = client.post(url(month.statement.id), data=log_csv(log), headers=headers).get_json()
    wide = client.post(
        url(month.statement.id, "?tolerance_minutes=10"), data=log_csv(log), headers=headers
    ).get_json()
    assert (narrow["totals"]["matched"], wide["totals"]["matched"]) == (0, 1)


def test_the_endpoint_is_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/statements/{statement_id}/reconciliation"]["post"]
    assert set(operation["requestBody"]["content"]) == {"text/csv", "multipart/form-data"}
