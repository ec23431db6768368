from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from flask.testing import FlaskClient

from auth_mock.registry import Registry, change_from_json, person_from_json
from auth_mock.registry_http import create_registry_app


@pytest.fixture
def client(town: Registry) -> Iterator[FlaskClient]:
    app = create_registry_app(town)
    app.testing = True
    with app.test_client() as c:
        yield c


def test_residents_page_in_registry_id_order_until_next_is_null(client: FlaskClient, town: Registry) -> None:
    seen: list[str] = []
    after = ""
    while True:
        body = client.get(f"/residents?after={after}&limit=150").get_json()
        seen += [person_from_json(p).registry_id for p in body["residents"]]
        if body["next"] is None:
            break
        after = body["next"]
    assert seen == [p.registry_id for p in town.iter_people()]


def test_one_resident_is_served_and_an_unknown_one_is_a_404_problem(
    client: FlaskClient, town: Registry
) -> None:
    person = next(town.iter_people())
    response = client.get(f"/residents/{person.registry_id}")
    assert response.status_code == 200
    assert person_from_json(response.get_json()) == person
    missing = client.get("/residents/062120-9999999")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["code"] == "resident.not_found"


def test_the_change_feed_is_followed_by_cursor(client: FlaskClient, town: Registry) -> None:
    town.simulate_changes(count=5, seed=1, start=date(2026, 4, 1), end=date(2026, 4, 30))
    first = client.get("/changes?after=0&limit=3").get_json()
    assert [c["seq"] for c in first["changes"]] == [1, 2, 3]
    rest = client.get(f"/changes?after={first['next']}").get_json()
    assert [change_from_json(c) for c in rest["changes"]] == town.changes_since(3)
    idle = client.get(f"/changes?after={rest['next']}").get_json()
    assert idle == {"changes": [], "next": 5}


def test_search_accepts_hiragana_and_a_birth_date(client: FlaskClient, town: Registry) -> None:
    person = next(town.iter_people())
    hiragana = "".join(chr(ord(ch) - 0x60) for ch in person.family_name_kana)
    body = client.get(
        "/search", query_string={"kana": hiragana, "birth_date": person.birth_date.isoformat()}
    ).get_json()
    assert person_from_json(body["residents"][0]) == person


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/residents?limit=0", "request.invalid_limit"),
        ("/residents?limit=abc", "request.invalid_limit"),
        ("/changes?after=-1", "request.invalid_after"),
        ("/search?kana=", "request.invalid_kana"),
        ("/search?kana=サ&birth_date=1950-13-01", "request.invalid_birth_date"),
    ],
)
def test_bad_queries_get_a_400_problem_with_a_stable_code(client: FlaskClient, url: str, code: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code


def test_the_registry_is_read_only_over_http(client: FlaskClient) -> None:
    response = client.post("/changes", json={})
    assert response.status_code == 405
