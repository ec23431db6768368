"""The privacy guard of every test (tests/conftest.py `connection`) really looks: what a test's API
calls commit inside its transaction is scanned before the rollback, and a hit is reported."""

from __future__ import annotations

from typing import Any, cast

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, text

import tests.conftest
from tests import factories as f
from tests.api.conftest import City, Rider
from tests.privacy import DatabaseWatch
from voucher_api.demo import DEMO_CARD_PIN

CONNECTION_FIXTURE: Any = cast(Any, tests.conftest.connection).__wrapped__  # the generator behind it


def test_the_per_test_scan_sees_what_the_api_committed_inside_the_test_transaction(
    connection: Connection, client: FlaskClient, city: City, rider: Rider
) -> None:
    """The guard of every test (tests/conftest.py `connection`): a clerk types the card's PIN into a
    reason field; the API commits it inside the test's transaction and the scan finds it before the
    rollback. The write is undone here (a savepoint), so this test's own teardown passes."""
    watch = connection.info["privacy_watch"]
    assert isinstance(watch, DatabaseWatch)
    assert watch.findings() == []
    planted = connection.begin_nested()
    r = client.post(
        f"/api/v1/entitlements/{rider.entitlement.id}/status",
        json={"status": "suspended", "reason": f"本人から暗証番号 {f.CARD_PIN} を聞いた"},
        headers={**f.bearer(f.staff_token(client, "madoguchi")), "Idempotency-Key": "pin-in-a-reason"},
    )
    assert r.status_code == 200, r.get_json()
    findings = watch.findings()
    assert any(f"a card secret: {f.CARD_PIN}" in line for line in findings), findings
    planted.rollback()
    assert watch.findings() == []


def test_the_per_test_scan_finds_a_planted_individual_number(connection: Connection) -> None:
    watch = connection.info["privacy_watch"]
    planted = connection.begin_nested()
    connection.execute(
        text(
            "INSERT INTO municipalities (code, name, name_kana, prefecture, contact, remitter, created_at) "
            "VALUES ('999998', '番号町', 'バンゴウチョウ', '県', '1234-5678-9018', '{}',"
            " '2026-01-01 00:00:00')"
        )
    )
    assert watch.tables == {"municipalities"}
    assert watch.findings() == [
        "municipalities.contact: a 12-digit number passing the My Number check: 1234-5678-9018"
    ]
    planted.rollback()


@pytest.mark.parametrize(
    ("contact", "remitter"),
    [("", f'{{"pin": "{DEMO_CARD_PIN}"}}'), ("個人番号 123456789018", "{}"), (f.CARD_PASSWORD, "{}")],
    ids=["common-pin-in-json", "individual-number", "card-password"],
)
def test_the_connection_fixture_fails_a_test_that_left_a_secret_in_the_database(
    engine: Engine, contact: str, remitter: str
) -> None:
    """Drive the real `connection` fixture by hand: a write holding a PIN, a password or an individual
    number makes its teardown fail, and the rollback still happens."""
    fixture = CONNECTION_FIXTURE  # the generator behind the fixture
    steps = fixture(engine)
    conn = next(steps)
    conn.execute(
        text(
            "INSERT INTO municipalities (code, name, name_kana, prefecture, contact, remitter, created_at) "
            "VALUES ('999997', '暗証町', 'アンショウ', '県', :contact, :remitter, '2026-01-01 00:00:00')"
        ),
        {"contact": contact, "remitter": remitter},
    )
    with pytest.raises(AssertionError, match="PRIVACY GUARD"):
        next(steps)
    with engine.connect() as other:
        assert other.execute(text("SELECT count(*) FROM municipalities WHERE code = '999997'")).scalar() == 0


def test_the_connection_fixture_passes_a_test_that_wrote_nothing_secret(engine: Engine) -> None:
    steps = CONNECTION_FIXTURE(engine)
    conn = next(steps)
    conn.execute(
        text(
            "INSERT INTO municipalities (code, name, name_kana, prefecture, contact, remitter, created_at) "
            "VALUES ('999996', '平穏町', 'ヘイオンチョウ', '県', '山形県尾花沢市大字玉野1234番地', '{}',"
            " '2026-01-01 00:00:00')"
        )
    )
    with pytest.raises(StopIteration):
        next(steps)
