"""The monthly report behind the finance charts: rides and subsidy per month by operator, district, program.

A small city whose sums are known by hand: rides on both sides of a month's end in Japan time, a voided
ride, a ride still on board, a resident with no registered district, and another city's ride.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests import factories as f
from tests.reports_factories import ride_of
from tests.unit.settlement.factories import Fleet, fleet, jst
from voucher_api.models import Entitlement, Program, Ride, StaffRole

DISABILITY_RULES: dict[str, Any] = {
    "eligibility": [{"type": "disability", "certificates": [{"kind": "physical", "grades": ["1", "2"]}]}],
    "subsidy": {"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000},
    "grant": {"unit": "ride", "amount": 36},
    "limits": {},
    "options": {},
}


@dataclass
class Town:
    op1: Fleet
    op2: Fleet
    elderly: Program
    welfare: Program


def _ride(
    session: Session,
    where: Fleet,
    ent: Entitlement,
    program: Program,
    *,
    boarded_at: datetime,
    fare: int | None,
    voided: bool = False,
) -> Ride:
    return ride_of(
        session,
        ent,
        program,
        operator_id=where.operator.id,
        vehicle_id=where.vehicle.id,
        terminal_id=where.terminal_id,
        boarded_at=boarded_at,
        fare=fare,
        voided=voided,
    )


@pytest.fixture
def town(session: Session) -> Town:
    mun = f.municipality(session)
    op1, op2 = fleet(session, mun, "OP01"), fleet(session, mun, "OP02")
    elderly = f.program(session, mun, code="elderly")  # 50 % of the fare, at most 1,000 yen
    welfare = f.program(session, mun, code="welfare", rules=DISABILITY_RULES)  # the rider pays 500
    welfare.name = "障がい者福祉タクシー"
    hana = f.resident(session, mun, district_code="01")
    tome = f.resident(session, mun, district_code="03", given_name="トメ")
    nowhere = f.resident(session, mun, district_code="05", given_name="ナシ")
    nowhere.district_id = None  # registered without a district
    e_hana = f.entitlement(session, hana, elderly)
    e_tome = f.entitlement(session, tome, welfare)
    e_nowhere = f.entitlement(session, nowhere, elderly)
    # August, Japan time: 23:30 on the 31st is still August (14:30 UTC).
    _ride(session, op1, e_hana, elderly, boarded_at=jst(2026, 8, 31, 23, 30), fare=1600)  # 800
    _ride(session, op2, e_tome, welfare, boarded_at=jst(2026, 8, 10), fare=2000)  # 1500
    # September, Japan time: 00:30 on the 1st is 15:30 UTC on 31 August.
    _ride(session, op1, e_hana, elderly, boarded_at=jst(2026, 9, 1, 0, 30), fare=3000)  # 1000 (cap)
    _ride(session, op1, e_tome, welfare, boarded_at=jst(2026, 9, 2), fare=1200)  # 700
    _ride(session, op2, e_nowhere, elderly, boarded_at=jst(2026, 9, 3), fare=1000)  # 500
    _ride(session, op2, e_nowhere, elderly, boarded_at=jst(2026, 9, 4), fare=None)  # on board: 0
    _ride(session, op1, e_hana, elderly, boarded_at=jst(2026, 9, 5), fare=1800, voided=True)
    # October is outside the asked range.
    _ride(session, op1, e_hana, elderly, boarded_at=jst(2026, 10, 1, 0, 5), fare=1000)
    # Another city's ride in September never shows.
    other = f.municipality(session, code="062050", name="村山市")
    other_fleet = fleet(session, other, "OP01")
    other_program = f.program(session, other, code="elderly")
    other_ent = f.entitlement(session, f.resident(session, other), other_program)
    _ride(session, other_fleet, other_ent, other_program, boarded_at=jst(2026, 9, 3), fare=2000)
    f.staff_user(session, mun, StaffRole.FINANCE, username="keiri")
    f.staff_user(session, other, StaffRole.FINANCE, username="murayama")
    session.commit()
    return Town(op1, op2, elderly, welfare)


def get(client: FlaskClient, query: str, username: str = "keiri") -> Any:
    return client.get(f"/api/v1/reports/monthly?{query}", headers=f.bearer(f.staff_token(client, username)))


def rows(response: Any) -> list[tuple[Any, ...]]:
    assert response.status_code == 200, response.get_json()
    return [
        (r["period"], r["key"], r["label"], r["rides"], r["subsidy"]) for r in response.get_json()["rows"]
    ]


def test_by_operator_counts_the_boarding_month_in_japan_time_without_voided_rides(
    client: FlaskClient, town: Town
) -> None:
    r = get(client, "from=2026-08&to=2026-09&by=operator")
    name = "尾花沢タクシー株式会社"
    assert rows(r) == [
        ("2026-08", "OP01", name, 1, 800),
        ("2026-08", "OP02", name, 1, 1500),
        ("2026-09", "OP01", name, 2, 1700),
        ("2026-09", "OP02", name, 2, 500),
    ]
    assert (r.get_json()["from"], r.get_json()["to"], r.get_json()["by"]) == (
        "2026-08",
        "2026-09",
        "operator",
    )


def test_by_district_uses_the_residents_registered_district(client: FlaskClient, town: Town) -> None:
    assert rows(get(client, "from=2026-09&to=2026-09&by=district")) == [
        ("2026-09", "01", "尾花沢", 1, 1000),
        ("2026-09", "03", "玉野", 1, 700),
        ("2026-09", None, "", 2, 500),  # no registered district: last
    ]


def test_by_program(client: FlaskClient, town: Town) -> None:
    assert rows(get(client, "from=2026-08&to=2026-10&by=program")) == [
        ("2026-08", "elderly", "高齢者おもいやりタクシー", 1, 800),
        ("2026-08", "welfare", "障がい者福祉タクシー", 1, 1500),
        ("2026-09", "elderly", "高齢者おもいやりタクシー", 3, 1500),
        ("2026-09", "welfare", "障がい者福祉タクシー", 1, 700),
        ("2026-10", "elderly", "高齢者おもいやりタクシー", 1, 500),
    ]


def test_by_defaults_to_operator_and_a_month_without_rides_has_no_rows(
    client: FlaskClient, town: Town
) -> None:
    assert rows(get(client, "from=2026-04&to=2026-07")) == []
    assert [row[1] for row in rows(get(client, "from=2026-08&to=2026-08"))] == ["OP01", "OP02"]


def test_another_city_sees_only_its_own_rides(client: FlaskClient, town: Town) -> None:
    assert rows(get(client, "from=2026-09&to=2026-09", "murayama")) == [
        ("2026-09", "OP01", "尾花沢タクシー株式会社", 1, 1000)
    ]


def test_the_report_is_one_sql_statement(client: FlaskClient, town: Town, session: Session) -> None:
    token = f.staff_token(client, "keiri")
    statements: list[str] = []
    bind = session.get_bind()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "rides" in statement:
            statements.append(statement)

    event.listen(bind, "before_cursor_execute", count)
    try:
        r = client.get("/api/v1/reports/monthly?from=2026-01&to=2026-12&by=district", headers=f.bearer(token))
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert r.status_code == 200
    assert len(statements) == 1, statements
    assert "GROUP BY" in statements[0]


@pytest.mark.parametrize(
    ("username", "roles", "status"),
    [
        ("kaikei", (StaffRole.FINANCE,), 200),
        ("shonin", (StaffRole.FINANCE_APPROVER,), 200),
        ("kansa", (StaffRole.AUDITOR,), 200),
        ("kanri", (StaffRole.ADMIN,), 200),
        ("madoguchi", (StaffRole.COUNTER,), 403),
        ("idou", (StaffRole.MOBILE_OFFICE,), 403),
    ],
)
def test_roles_that_may_read_the_report(
    client: FlaskClient,
    town: Town,
    session: Session,
    username: str,
    roles: tuple[StaffRole, ...],
    status: int,
) -> None:
    f.staff_user(session, f.municipality(session), *roles, username=username)
    session.commit()
    r = get(client, "from=2026-09&to=2026-09", username)
    assert r.status_code == status
    if status == 200:
        assert (r.get_json()["from"], r.get_json()["to"]) == ("2026-09", "2026-09")
        assert r.get_json()["rows"], "the town's September rides are in the report"
    if status == 403:
        assert (r.mimetype, r.get_json()["code"]) == ("application/problem+json", "auth.forbidden")


def test_operator_admins_and_terminals_cannot_read_the_report(
    client: FlaskClient, town: Town, session: Session, clock: Any
) -> None:
    f.staff_user(
        session,
        f.municipality(session),
        StaffRole.OPERATOR_ADMIN,
        username="jigyosha",
        operator_id=town.op1.operator.id,
    )
    device = f.enrolled_terminal(session, f.municipality(session), town.op1.vehicle)
    session.commit()
    assert get(client, "from=2026-09&to=2026-09", "jigyosha").status_code == 403
    r = client.get(
        "/api/v1/reports/monthly?from=2026-09&to=2026-09",
        headers=f.bearer(device.token(client, clock.now())),
    )
    assert r.status_code == 403


def test_without_a_token_the_report_is_refused(client: FlaskClient, town: Town) -> None:
    r = client.get("/api/v1/reports/monthly?from=2026-09&to=2026-09")
    assert (r.status_code, r.get_json()["code"]) == (401, "auth.required")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("to=2026-09", "from"),
        ("from=2026-09", "to"),
        ("from=2026-9&to=2026-09", "from"),
        ("from=2026-09&to=2026-13", "to"),
        ("from=09/2026&to=2026-09", "from"),
        ("from=2026-09&to=2026-09&by=driver", "by"),
        ("from=1999-12&to=2026-09", "from"),
        ("from=%00&to=2026-09", "from"),
    ],
)
def test_malformed_queries_are_field_errors(client: FlaskClient, town: Town, query: str, field: str) -> None:
    r = get(client, query)
    body = r.get_json()
    assert (r.status_code, r.mimetype, body["code"]) == (422, "application/problem+json", "validation")
    assert field in body["errors"], body


def test_a_range_that_ends_before_it_starts_is_refused(client: FlaskClient, town: Town) -> None:
    r = get(client, "from=2026-09&to=2026-08")
    assert (r.status_code, r.get_json()["code"]) == (422, "report.range_reversed")
    assert "to" in r.get_json()["errors"]


def test_more_than_36_months_is_refused_in_plain_words(client: FlaskClient, town: Town) -> None:
    assert get(client, "from=2023-10&to=2026-09").status_code == 200  # exactly 36 months
    r = get(client, "from=2023-09&to=2026-09")
    body = r.get_json()
    assert (r.status_code, body["code"]) == (422, "report.range_too_long")
    assert body["title"] == "集計できる期間は最長36か月です。期間を短くしてください。"


def test_the_report_is_in_the_openapi_document(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/reports/monthly" in spec["paths"]
