"""What the finance pages read besides the reports: a statement's lines a page at a time, and where a
settlement run stands for each operator."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from settlement import service
from settlement.tasks import run_period_now
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.clock import FixedClock
from voucher_api.models import StaffRole, Statement
from voucher_api.services.reports import OperatorProgress, run_progress


@pytest.fixture
def town(session: Session) -> City:
    made = city(session, operators=3)
    for day in range(1, 8):
        ride(session, made, made.fleets[0], boarded_at=jst(2026, 9, day), fare=1000 + day * 100)
    ride(session, made, made.fleets[1], boarded_at=jst(2026, 9, 9), fare=1500)
    f.staff_user(session, made.mun, StaffRole.FINANCE, username="keiri")
    f.staff_user(session, made.mun, StaffRole.FINANCE_APPROVER, username="shonin")
    session.commit()
    return made


def auth(client: FlaskClient) -> dict[str, str]:
    return f.bearer(f.staff_token(client, "keiri"))


def closed(session_factory: sessionmaker[Session], clock: FixedClock) -> None:
    run_period_now(session_factory, "062120", "2026-09", "cli:test", clock=clock)


def first_statement(session: Session, town: City) -> int:
    found = session.scalar(select(Statement.id).where(Statement.operator_id == town.fleets[0].operator.id))
    assert found is not None
    return found


def test_a_statement_is_read_a_page_of_lines_at_a_time(
    client: FlaskClient,
    town: City,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
) -> None:
    closed(session_factory, clock)
    headers = auth(client)
    sid = first_statement(session, town)
    page = client.get(f"/api/v1/statements/{sid}?limit=3&offset=2", headers=headers).get_json()
    assert [line["line_no"] for line in page["lines"]] == [3, 4, 5]
    assert (page["lines_total"], page["lines_offset"], page["lines_limit"]) == (7, 2, 3)
    assert page["ride_count"] == 7  # the totals are the whole statement's, whatever the page
    last = client.get(f"/api/v1/statements/{sid}?limit=3&offset=6", headers=headers).get_json()
    assert [line["line_no"] for line in last["lines"]] == [7]
    whole = client.get(f"/api/v1/statements/{sid}", headers=headers).get_json()
    assert (len(whole["lines"]), whole["lines_limit"]) == (7, 500)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "offset=-1", "offset=1.5"])
def test_a_bad_page_is_a_field_error(
    client: FlaskClient,
    town: City,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    query: str,
) -> None:
    closed(session_factory, clock)
    r = client.get(f"/api/v1/statements/{first_statement(session, town)}?{query}", headers=auth(client))
    assert (r.status_code, r.get_json()["code"]) == (422, "validation")
    assert set(r.get_json()["errors"]) <= {"limit", "offset"}


def test_a_run_shows_each_operator_generated_after_it_succeeded(
    client: FlaskClient, town: City, session_factory: sessionmaker[Session], clock: FixedClock
) -> None:
    closed(session_factory, clock)
    headers = auth(client)
    run_id = client.get("/api/v1/settlement-runs?period=2026-09", headers=headers).get_json()[0]["run_id"]
    body = client.get(f"/api/v1/settlement-runs/{run_id}", headers=headers).get_json()
    assert [(o["operator_code"], o["state"], o["statement_status"]) for o in body["operators"]] == [
        ("OP01", "generated", "draft"),
        ("OP02", "generated", "draft"),
        ("OP03", "generated", "draft"),
    ]
    assert all(o["statement_id"] for o in body["operators"])


def test_a_run_part_way_shows_who_is_done_and_who_is_waiting(
    town: City, session: Session, clock: FixedClock
) -> None:
    run = service.start_run(
        session,
        municipality_id=town.mun.id,
        period=date(2026, 9, 1),
        trigger="api",
        requested_by="staff:1",
        now=clock.now(),
    )
    assert {p.state for p in run_progress(session, run)} == {OperatorProgress.WAITING}
    plan = service.begin_run(session, run_id=run.id, now=clock.now())
    service.close_operator(session, run_id=run.id, operator_id=plan.operator_ids[0], now=clock.now())
    states = [(p.operator_code, p.state) for p in run_progress(session, run)]
    assert states == [
        ("OP01", OperatorProgress.GENERATED),
        ("OP02", OperatorProgress.WAITING),
        ("OP03", OperatorProgress.WAITING),
    ]


def test_a_rerun_keeps_a_confirmed_statement_and_says_so(
    town: City,
    session: Session,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    client: FlaskClient,
) -> None:
    closed(session_factory, clock)
    headers = auth(client)
    sid = first_statement(session, town)
    assert client.post(f"/api/v1/statements/{sid}/confirm", headers=headers).status_code == 200
    closed(session_factory, clock)  # re-run the month
    runs: list[dict[str, Any]] = client.get(
        "/api/v1/settlement-runs?period=2026-09", headers=headers
    ).get_json()
    body = client.get(f"/api/v1/settlement-runs/{runs[0]['run_id']}", headers=headers).get_json()
    assert [(o["operator_code"], o["state"]) for o in body["operators"]] == [
        ("OP01", "kept"),
        ("OP02", "generated"),
        ("OP03", "generated"),
    ]
    assert body["operators"][0]["statement_status"] == "confirmed"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/staff/finance", 200),
        ("/staff/finance/2026-09", 200),
        ("/staff/finance/statements/1", 200),
        ("/staff/finance/charts", 200),
        ("/staff/finance/2026-13", 404),
        ("/staff/finance/09-2026", 404),
        ("/staff/finance/statements/x", 404),
    ],
)
def test_finance_pages_are_served_japanese_first_with_local_scripts_only(
    client: FlaskClient, path: str, status: int
) -> None:
    r = client.get(path)
    assert r.status_code == status
    if status == 200:
        assert '<html lang="ja">' in r.get_data(as_text=True)
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "https://" not in r.get_data(as_text=True)  # no CDN: every script and style is served here


def test_the_charts_page_and_its_script_use_no_inline_style_the_csp_would_refuse(client: FlaskClient) -> None:
    """style-src 'self': a style="..." attribute, in the page or set by its script, is refused."""
    r = client.get("/staff/finance/charts")
    assert r.status_code == 200
    assert "style-src 'self'" in r.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in r.headers["Content-Security-Policy"]
    html = r.get_data(as_text=True)
    assert "style=" not in html
    assert 'id="charts" class="finance-charts"' in html  # the charts page's own CSS rules hang on this
    script = client.get("/staff/static/charts.js")
    assert script.status_code == 200
    source = script.get_data(as_text=True)
    script.close()
    assert "style:" not in source
    assert '"style"' not in source
    assert ".style." not in source
