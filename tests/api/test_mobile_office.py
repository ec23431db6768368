"""The mobile office through the API: a route of stops, the numbered queue, figures after the round;
and the counter's hand-over slip and resident record the staff pages use."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pypdf
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests import factories as f
from tests.api.conftest import City, Rider, board
from voucher_api.clock import FixedClock
from voucher_api.models import Application, AuditEntry, Program, QueueTicket, StaffRole, StaffUser

WINDOW_START = datetime(2026, 10, 15, 0, 30, tzinfo=UTC)  # 09:30 in Japan


@pytest.fixture
def staff(client: FlaskClient, session: Session, city: City) -> dict[str, str]:
    """A signed-in mobile-office staff member (the city fixture has only counter staff)."""
    f.staff_user(session, city.mun, StaffRole.MOBILE_OFFICE, username="idou")
    session.commit()
    return f.bearer(f.staff_token(client, "idou"))


def plan_round(
    client: FlaskClient, staff: dict[str, str], session: Session, city: City, *, stops: int = 2
) -> dict[str, Any]:
    r = client.post("/api/v1/mobile-office/rounds", json={"name": "10月 第1回"}, headers=staff)
    assert r.status_code == 201, r.get_json()
    round_id = r.get_json()["id"]
    for n in range(stops):
        district = f.district(session, city.mun, f"0{n + 1}")
        start = WINDOW_START + timedelta(hours=n)
        r = client.post(
            f"/api/v1/mobile-office/rounds/{round_id}/stops",
            json={
                "place": f"公民館{n + 1}",
                "district_id": district.id,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(minutes=45)).isoformat(),
            },
            headers=staff,
        )
        assert r.status_code == 201, r.get_json()
    body: dict[str, Any] = client.get(f"/api/v1/mobile-office/rounds/{round_id}", headers=staff).get_json()
    return body


def post(client: FlaskClient, url: str, staff: dict[str, str], **kwargs: Any) -> Any:
    return client.post(
        f"/api/v1/mobile-office{url}", headers={**staff, **kwargs.pop("headers", {})}, **kwargs
    )


def test_stops_are_planned_in_route_order_with_a_code_per_stop(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    planned = plan_round(client, staff, session, city, stops=3)
    stops = planned["stops"]
    assert [s["position"] for s in stops] == [1, 2, 3]
    assert [s["code"] for s in stops] == [f"R{planned['id']}-0{n}" for n in (1, 2, 3)]
    assert stops[1]["district_name"] == "宮沢"
    assert {s["status"] for s in stops} == {"planned"}


def test_a_stop_window_must_end_after_it_starts(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    round_id = plan_round(client, staff, session, city, stops=0)["id"]
    r = post(
        client,
        f"/rounds/{round_id}/stops",
        staff,
        json={
            "place": "集会所",
            "district_id": f.district(session, city.mun, "01").id,
            "starts_at": WINDOW_START.isoformat(),
            "ends_at": WINDOW_START.isoformat(),
        },
    )
    assert r.status_code == 422
    assert "ends_at" in r.get_json()["errors"]


def test_numbers_are_handed_out_only_while_the_stop_is_open(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    before = post(client, f"/stops/{stop['id']}/tickets", staff)
    assert before.status_code == 422
    assert before.get_json()["code"] == "stop.not_open"
    assert "受付" in before.get_json()["title"]
    assert post(client, f"/stops/{stop['id']}/open", staff).get_json()["status"] == "open"
    numbers = [post(client, f"/stops/{stop['id']}/tickets", staff).get_json()["number"] for _ in range(3)]
    assert numbers == [1, 2, 3]
    assert post(client, f"/stops/{stop['id']}/close", staff).get_json()["status"] == "closed"
    after = post(client, f"/stops/{stop['id']}/tickets", staff)
    assert after.status_code == 409
    assert after.get_json()["code"] == "stop.closed"


def test_only_one_stop_of_a_round_is_open_at_a_time(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    first, second = plan_round(client, staff, session, city)["stops"]
    assert post(client, f"/stops/{first['id']}/open", staff).status_code == 200
    r = post(client, f"/stops/{second['id']}/open", staff)
    assert r.status_code == 409
    assert r.get_json()["code"] == "stop.other_open"
    post(client, f"/stops/{first['id']}/close", staff)
    assert post(client, f"/stops/{second['id']}/open", staff).status_code == 200


def test_a_closed_stop_cannot_be_opened_again(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    post(client, f"/stops/{stop['id']}/close", staff)
    r = post(client, f"/stops/{stop['id']}/open", staff)
    assert r.get_json()["code"] == "stop.closed"


def test_opening_and_closing_are_audited(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    post(client, f"/stops/{stop['id']}/close", staff)
    actions = list(
        session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_type == "mobile_stop").order_by(AuditEntry.id)
        )
    )
    assert actions[-2:] == ["mobile_stop.opened", "mobile_stop.closed"]


def test_every_queue_ticket_change_is_audited_with_the_staff_member_and_the_time(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str], clock: FixedClock
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    issued_at = clock.now()
    first = post(client, f"/stops/{stop['id']}/tickets", staff).get_json()
    second = post(client, f"/stops/{stop['id']}/tickets", staff).get_json()
    clock.advance(timedelta(minutes=1))
    called_at = clock.now()
    post(client, f"/stops/{stop['id']}/call-next", staff)
    clock.advance(timedelta(minutes=5))
    done_at = clock.now()
    r = post(
        client,
        f"/tickets/{first['id']}/finish",
        staff,
        json={"outcome": "done", "resident_id": None},
    )
    assert r.status_code == 200, r.get_json()
    post(client, f"/tickets/{second['id']}/finish", staff, json={"outcome": "skipped"})
    post(client, f"/tickets/{second['id']}/finish", staff, json={"outcome": "skipped"})  # changes nothing
    idou = session.scalar(select(StaffUser.id).where(StaffUser.username == "idou"))
    entries = [
        (e.action, e.entity_id, e.actor, e.at, e.municipality_id, e.details.get("number"))
        for e in session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "queue_ticket").order_by(AuditEntry.id)
        )
    ]
    who, mun = f"staff:{idou}", city.mun.id
    assert entries == [
        ("queue_ticket.issued", str(first["id"]), who, issued_at, mun, 1),
        ("queue_ticket.issued", str(second["id"]), who, issued_at, mun, 2),
        ("queue_ticket.called", str(first["id"]), who, called_at, mun, 1),
        ("queue_ticket.done", str(first["id"]), who, done_at, mun, 1),
        ("queue_ticket.skipped", str(second["id"]), who, done_at, mun, 2),
    ]


def test_a_retried_ticket_request_hands_out_one_number(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    first = post(client, f"/stops/{stop['id']}/tickets", staff, headers={"Idempotency-Key": "t-1"})
    again = post(client, f"/stops/{stop['id']}/tickets", staff, headers={"Idempotency-Key": "t-1"})
    assert first.get_json() == again.get_json()
    assert session.scalar(select(func.count()).select_from(QueueTicket)) == 1


def test_call_next_takes_the_lowest_waiting_number_and_says_when_nobody_waits(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    for _ in range(2):
        post(client, f"/stops/{stop['id']}/tickets", staff)
    called = [post(client, f"/stops/{stop['id']}/call-next", staff).get_json()["ticket"] for _ in range(3)]
    assert [t["number"] if t else None for t in called] == [1, 2, None]


def test_display_shows_the_wait_to_residents_without_sign_in_and_without_names(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str], clock: FixedClock
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    for _ in range(4):
        post(client, f"/stops/{stop['id']}/tickets", staff)
    ticket = post(client, f"/stops/{stop['id']}/call-next", staff).get_json()["ticket"]
    clock.advance(timedelta(minutes=6))
    post(client, f"/tickets/{ticket['id']}/finish", staff, json={"outcome": "done"})
    post(client, f"/stops/{stop['id']}/call-next", staff)
    display = client.get(f"/api/v1/mobile-office/stops/{stop['id']}/display")
    assert display.status_code == 200
    body = display.get_json()
    assert body["waiting"] == 2
    assert body["calling"] == [2]
    assert body["minutes_per_person"] == 6.0
    assert body["estimated_wait_minutes"] == 12
    assert set(body) == {
        "stop_id",
        "code",
        "place",
        "status",
        "waiting",
        "calling",
        "last_issued",
        "minutes_per_person",
        "estimated_wait_minutes",
    }


def test_wait_is_estimated_at_a_few_minutes_a_person_before_anyone_is_served(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    for _ in range(5):
        post(client, f"/stops/{stop['id']}/tickets", staff)
    body = client.get(f"/api/v1/mobile-office/stops/{stop['id']}/queue", headers=staff).get_json()
    assert body["estimated_wait_minutes"] == 5 * 4


def test_a_ticket_finished_as_done_cannot_be_skipped_afterwards(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    post(client, f"/stops/{stop['id']}/open", staff)
    ticket = post(client, f"/stops/{stop['id']}/tickets", staff).get_json()
    assert post(client, f"/tickets/{ticket['id']}/finish", staff, json={"outcome": "done"}).status_code == 200
    r = post(client, f"/tickets/{ticket['id']}/finish", staff, json={"outcome": "skipped"})
    assert r.get_json()["code"] == "ticket.finished"


def test_another_citys_stop_is_not_found(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    other = f.municipality(session, code="062031", name="新庄市")
    f.staff_user(session, other, StaffRole.MOBILE_OFFICE, username="shinjo")
    session.commit()
    stranger = f.bearer(f.staff_token(client, "shinjo"))
    r = post(client, f"/stops/{stop['id']}/open", stranger)
    assert r.status_code == 404
    assert r.get_json()["code"] == "stop.not_found"


def apply_at(
    client: FlaskClient,
    staff: dict[str, str],
    resident_id: int,
    program: Program,
    stop: dict[str, Any],
    key: str,
) -> Any:
    return client.post(
        "/api/v1/applications",
        json={
            "resident_id": resident_id,
            "program_id": program.id,
            "channel": "mobile_office",
            "staff_attested": True,
            "mobile_stop": stop["code"],
        },
        headers={**staff, "Idempotency-Key": key},
    )


def test_figures_per_stop_and_per_district_count_what_happened_at_each_stop(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str], clock: FixedClock
) -> None:
    first, second = plan_round(client, staff, session, city)["stops"]
    old = f.resident(session, city.mun, district_code="01")
    older = f.resident(session, city.mun, district_code="01")
    young = f.resident(session, city.mun, district_code="02", birth_date=date(1980, 1, 1))
    session.commit()
    post(client, f"/stops/{first['id']}/open", staff)
    for person in (old, older):
        ticket = post(client, f"/stops/{first['id']}/tickets", staff).get_json()
        post(client, f"/stops/{first['id']}/call-next", staff)
        clock.advance(timedelta(minutes=3))
        assert apply_at(client, staff, person.id, city.program, first, f"a{person.id}").status_code == 201
        post(
            client,
            f"/tickets/{ticket['id']}/finish",
            staff,
            json={"outcome": "done", "resident_id": person.id},
        )
    post(client, f"/stops/{first['id']}/close", staff)
    post(client, f"/stops/{second['id']}/open", staff)
    post(client, f"/stops/{second['id']}/tickets", staff)
    assert apply_at(client, staff, young.id, city.program, second, "young").status_code == 201

    figures = client.get(
        f"/api/v1/mobile-office/rounds/{first['round_id']}/figures", headers=staff
    ).get_json()
    by_stop = {row["code"]: row["figures"] for row in figures["stops"]}
    assert by_stop[first["code"]] == {
        "tickets": 2,
        "served": 2,
        "applications": 2,
        "approved": 2,
        "rejected": 0,
        "residents": 2,
        "service_minutes": 3.0,
    }
    assert by_stop[second["code"]]["rejected"] == 1
    by_district = {row["district_name"]: row["figures"] for row in figures["districts"]}
    assert by_district["尾花沢"]["approved"] == 2
    assert by_district["宮沢"]["tickets"] == 1
    assert figures["total"]["applications"] == 3


def test_an_application_resent_after_the_network_came_back_is_recorded_once(
    client: FlaskClient, session: Session, city: City, staff: dict[str, str]
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    person = f.resident(session, city.mun)
    session.commit()
    post(client, f"/stops/{stop['id']}/open", staff)
    first = apply_at(client, staff, person.id, city.program, stop, "offline-1")
    resent = apply_at(client, staff, person.id, city.program, stop, "offline-1")
    assert resent.status_code == 201
    assert resent.headers.get("Idempotent-Replayed") == "true"
    assert resent.get_json() == first.get_json()
    count = session.scalar(
        select(func.count()).select_from(Application).where(Application.resident_id == person.id)
    )
    assert count == 1


# --- the hand-over slip and the resident record -----------------------------------------------------


def slip_text(pdf: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_slip_is_a_japanese_pdf_with_the_entitlement_how_to_ride_and_the_city_contact(
    client: FlaskClient, session: Session, city: City
) -> None:
    city.mun.contact = "尾花沢市役所 福祉課 0237-22-1111"
    person = f.resident(session, city.mun)
    session.commit()
    headers = f.bearer(f.staff_token(client, "madoguchi"))
    r = client.post(
        "/api/v1/applications",
        json={
            "resident_id": person.id,
            "program_id": city.program.id,
            "channel": "counter",
            "staff_attested": True,
        },
        headers={**headers, "Idempotency-Key": "slip"},
    )
    slip = client.get(f"/api/v1/applications/{r.get_json()['application']['id']}/slip.pdf", headers=headers)
    assert slip.status_code == 200
    assert slip.mimetype == "application/pdf"
    text = slip_text(slip.data)
    assert "交付のお知らせ" in text
    assert "尾花沢 花子" in text
    assert "24回分" in text
    assert "令和8年4月1日" in text
    assert "暗証番号" in text
    assert "50%" in text
    assert "0237-22-1111" in text
    assert "尾花沢タクシー株式会社" in text


def test_slip_of_a_refused_application_gives_the_reasons(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun, car_licence="held")
    session.commit()
    headers = f.bearer(f.staff_token(client, "madoguchi"))
    r = client.post(
        "/api/v1/applications",
        json={
            "resident_id": person.id,
            "program_id": city.program.id,
            "channel": "counter",
            "staff_attested": True,
        },
        headers={**headers, "Idempotency-Key": "refused"},
    )
    text = slip_text(
        client.get(f"/api/v1/applications/{r.get_json()['application']['id']}/slip.pdf", headers=headers).data
    )
    assert "申請結果のお知らせ" in text
    assert "運転免許" in text


def test_slip_of_another_citys_application_is_not_found(
    client: FlaskClient, session: Session, city: City
) -> None:
    person = f.resident(session, city.mun)
    session.commit()
    headers = f.bearer(f.staff_token(client, "madoguchi"))
    r = client.post(
        "/api/v1/applications",
        json={
            "resident_id": person.id,
            "program_id": city.program.id,
            "channel": "counter",
            "staff_attested": True,
        },
        headers={**headers, "Idempotency-Key": "mine"},
    )
    other = f.municipality(session, code="062031", name="新庄市")
    f.staff_user(session, other, StaffRole.COUNTER, username="shinjo-madoguchi")
    session.commit()
    stranger = f.bearer(f.staff_token(client, "shinjo-madoguchi"))
    slip = client.get(f"/api/v1/applications/{r.get_json()['application']['id']}/slip.pdf", headers=stranger)
    assert slip.status_code == 404


def test_record_shows_entitlements_with_balances_rides_and_every_card_binding(
    client: FlaskClient, session: Session, city: City, rider: Rider
) -> None:
    assert board(client, city, rider.card, key="ride-1").status_code == 201
    headers = f.bearer(f.staff_token(client, "madoguchi"))
    r = client.get(f"/api/v1/residents/{rider.resident.id}/record", headers=headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["district_name"] == "尾花沢"
    [entitlement] = body["entitlements"]
    assert entitlement["program_name"] == "高齢者おもいやりタクシー"
    assert entitlement["balance"] == 23
    [ride] = body["rides"]
    assert ride["operator_name"] == "尾花沢タクシー株式会社"
    assert ride["status"] == "boarded"
    assert [b["status"] for b in body["bindings"]] == ["active"]


def test_record_is_for_staff_only(client: FlaskClient, session: Session, city: City, rider: Rider) -> None:
    assert client.get(f"/api/v1/residents/{rider.resident.id}/record").status_code == 401
    jigyosha = f.bearer(f.staff_token(client, "jigyosha"))
    assert client.get(f"/api/v1/residents/{rider.resident.id}/record", headers=jigyosha).status_code == 403


# --- the staff pages themselves (served by the API's web blueprint) -------------------------------------


def test_staff_pages_are_japanese_first_with_a_strict_content_policy(client: FlaskClient) -> None:
    r = client.get("/staff/apply")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<html lang="ja">' in html
    assert "申請受付" in html
    policy = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self' http://127.0.0.1:8765" in policy
    assert "<script>" not in html  # no inline script: the page's settings travel as JSON data


def test_the_english_switch_is_remembered_and_stays_on_the_site(client: FlaskClient) -> None:
    switched = client.get("/staff/lang/en?next=/staff/queue")
    assert switched.status_code == 302
    assert switched.headers["Location"].endswith("/staff/queue")
    assert '<html lang="en">' in client.get("/staff/queue").get_data(as_text=True)
    elsewhere = client.get("/staff/lang/ja?next=//evil.example/")
    assert elsewhere.headers["Location"].endswith("/staff/queue")


def test_the_residents_display_page_is_public(client: FlaskClient) -> None:
    r = client.get("/display/stops/1")
    assert r.status_code == 200
    assert "待ち時間の目安" in r.get_data(as_text=True)
    assert "connect-src 'self';" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"status": "closed"}, 422, "validation"),
        ([1, 2], 422, "validation"),
        ("{not json", 400, "request.malformed"),
    ],
)
def test_a_body_sent_to_an_action_that_takes_none_is_refused_and_changes_nothing(
    client: FlaskClient,
    session: Session,
    city: City,
    staff: dict[str, str],
    body: Any,
    status: int,
    code: str,
) -> None:
    stop = plan_round(client, staff, session, city)["stops"][0]
    sent = body if isinstance(body, str) else json.dumps(body)
    r = post(client, f"/stops/{stop['id']}/open", staff, data=sent, content_type="application/json")
    assert (r.status_code, r.get_json()["code"]) == (status, code)
    after: dict[str, Any] = client.get(f"/api/v1/mobile-office/stops/{stop['id']}", headers=staff).get_json()
    assert after["status"] == "planned"
    # What clients send for "nothing" still works.
    assert post(client, f"/stops/{stop['id']}/open", staff, json={}).get_json()["status"] == "open"
