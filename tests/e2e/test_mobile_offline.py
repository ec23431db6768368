"""The mobile office losing its network in the middle of an application, in a real browser.

What the resident already did at the card (the PIN- and password-signed enrolment request) is kept in the
tablet's outbox with its Idempotency-Key, survives a reload or a restart of the tablet, and is sent once
when the network returns; a card check that expired meanwhile is explained and redone, never duplicated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.e2e.conftest import (
    World,
    check_screen,
    enter_password,
    enter_pin,
    sign_in,
    wait_for_form,
)
from voucher_api.config import Settings
from voucher_api.models import Application, CardBinding

pytestmark = pytest.mark.e2e

KEPT = "送信待ち(カードでの確認は保存済み)"
EXPIRED = "カードでの確認をやり直してください"


@dataclass(frozen=True)
class Stop:
    id: int
    code: str
    place: str


@pytest.fixture(scope="module")
def stop(world: World) -> Iterator[Stop]:
    """An open stop of its own round, on another day than the round test's (so today's lists ignore it)."""
    headers = {"Authorization": f"Bearer {world.staff_token('idou')}"}
    api = f"{world.base_url}/api/v1/mobile-office"
    with httpx.Client(headers=headers, timeout=20) as client:
        made = client.post(f"{api}/rounds", json={"name": "令和8年10月 移動市役所 電波の届かない地区"})
        assert made.status_code == 201, made.text
        districts = {d["code"]: d["id"] for d in client.get(f"{api}/districts").json()}
        added = client.post(
            f"{api}/rounds/{made.json()['id']}/stops",
            json={
                "place": "常盤地区 山あいの集会所",
                "district_id": districts["04"],
                "starts_at": "2026-10-16T13:00:00+09:00",
                "ends_at": "2026-10-16T14:00:00+09:00",
            },
        )
        assert added.status_code == 201, added.text
        body = added.json()
        opened = client.post(f"{api}/stops/{body['id']}/open")
        assert opened.status_code == 200, opened.text
        yield Stop(body["id"], body["code"], body["place"])
        client.post(f"{api}/stops/{body['id']}/close")


class Network:
    """The vehicle's mobile network to the city's servers (the counter PC's card reader stays local).

    While down, every request to the API server's origin fails as with no signal; `lose_next_answer`
    lets one enrolment reach the server and loses its answer on the way back.
    """

    def __init__(self, context: Any, world: World) -> None:
        self.world = world
        self.down = False
        self.lose_next_answer = False
        self.lost: list[int] = []
        self.enrolment_keys: list[str] = []
        context.route(f"{world.base_url}/**", self._route)

    def _route(self, route: Any) -> None:
        request = route.request
        if request.method == "POST" and request.url == f"{self.world.base_url}/api/v1/enrolments":
            self.enrolment_keys.append(request.header_value("idempotency-key") or "")
        if self.down:
            route.abort("internetdisconnected")
        elif self.lose_next_answer and request.url.endswith("/api/v1/enrolments"):
            self.lose_next_answer = False
            self.lost.append(route.fetch().status)
            route.abort("connectionreset")
        else:
            route.continue_()


@pytest.fixture
def network(context: Any, world: World) -> Network:
    return Network(context, world)


def bindings_of(world: World, key: str) -> int:
    with world.sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(CardBinding)
                .where(CardBinding.resident_id == world.residents[key])
            )
            or 0
        )


def applications_of(world: World, key: str) -> list[Application]:
    with world.sessions() as session:
        return list(
            session.scalars(select(Application).where(Application.resident_id == world.residents[key]))
        )


def read_card_then_lose_the_network(page: Any, network: Network, world: World, stop: Stop, card: str) -> None:
    """The resident's PIN goes through; the network drops just before the password is sent."""
    sign_in(page, "idou")
    page.goto(f"/staff/apply?stop={stop.id}")
    page.get_by_text("マイナンバーカードをカードリーダーに置いてください").wait_for()
    world.insert_card(card)
    enter_pin(page)
    page.get_by_role("heading", name="署名用パスワードの入力").wait_for()
    network.down = True
    enter_password(page)
    page.get_by_role("heading", name=KEPT).wait_for()


def grant_elderly(page: Any) -> None:
    page.locator("[data-grant='elderly']").click()
    page.get_by_role("heading", name="交付しました").wait_for()


def test_network_lost_during_enrolment_is_kept_and_sent_once_when_it_returns(
    page: Any, network: Network, world: World, stop: Stop, screens_dir: Path
) -> None:
    read_card_then_lose_the_network(page, network, world, stop, "fumi")
    flow = page.locator("#flow").inner_text()
    assert "もう一度入力する必要はありません" in flow
    assert page.locator("#outbox").inner_text().startswith("送信待ち 1件")
    assert bindings_of(world, "fumi") == 0
    check_screen(page, screens_dir, "24-offline-card-check-kept")

    # The network comes back, but the first answer is lost on the way: the outbox sends again with the
    # same key and the API replays its first answer (the card's challenge is already used by then).
    network.lose_next_answer = True
    network.down = False
    wait_for_form(page)
    assert "斎藤 フミ" in page.locator("#resident-facts").inner_text()
    assert stop.place in page.locator("#resident-facts").inner_text()
    assert page.locator("#outbox").inner_text() == ""
    assert network.lost == [201]  # the first send that got through enrolled; its answer was lost
    keys = network.enrolment_keys
    assert len(keys) >= 3, keys  # tried while offline, the lost answer, the replay ...
    assert len(set(keys)) == 1, keys  # ... always with one Idempotency-Key

    grant_elderly(page)
    assert bindings_of(world, "fumi") == 1
    [application] = applications_of(world, "fumi")
    assert application.mobile_stop == stop.code


def test_a_reload_while_offline_keeps_the_application_and_it_goes_on_after_sign_in(
    page: Any, context: Any, network: Network, world: World, stop: Stop
) -> None:
    read_card_then_lose_the_network(page, network, world, stop, "sumi")
    kept = page.evaluate("localStorage.getItem('voucher.outbox')")

    # The tablet is reloaded while still offline: the page cannot load, but nothing kept is lost.
    with pytest.raises(Exception, match="ERR_INTERNET_DISCONNECTED"):
        page.reload()
    # ... and then restarted altogether: the tab (with its sign-in) is gone; only the tablet's storage stays.
    page.close()
    network.down = False
    tablet = context.new_page()
    tablet.goto("/staff/sign-in")
    assert tablet.evaluate("localStorage.getItem('voucher.outbox')") == kept
    assert bindings_of(world, "sumi") == 0

    # The same clerk signs in again and opens the application page: it goes on where it stopped.
    sign_in(tablet, "idou", next_path="/staff/apply")
    wait_for_form(tablet)
    assert "池田 スミ" in tablet.locator("#resident-facts").inner_text()
    assert stop.place in tablet.locator("#apply-context").inner_text()
    grant_elderly(tablet)
    assert bindings_of(world, "sumi") == 1
    [application] = applications_of(world, "sumi")
    assert application.mobile_stop == stop.code
    keys = network.enrolment_keys
    assert len(keys) >= 2, keys
    assert len(set(keys)) == 1, keys
    assert tablet.evaluate("localStorage.getItem('voucher.apply.kept')") is None


def test_a_card_check_that_expired_while_offline_is_explained_and_redone_once(
    page: Any, network: Network, world: World, stop: Stop, settings: Settings, screens_dir: Path
) -> None:
    read_card_then_lose_the_network(page, network, world, stop, "nobu")
    assert world.clock is not None
    world.clock.advance(settings.challenge_ttl_seconds + 5)  # the network stays down past the TTL
    network.down = False

    page.get_by_role("heading", name=EXPIRED).wait_for()
    text = page.locator("[data-trouble]").inner_text()
    assert "有効時間を過ぎました" in text
    assert "登録も申請もされていません" in text
    assert "challenge" not in page.locator("#flow").inner_text()
    assert page.locator("#outbox").inner_text() == ""
    assert bindings_of(world, "nobu") == 0
    check_screen(page, screens_dir, "25-offline-card-check-expired")

    # A quick redo: the card is still on the reader; the resident enters the PIN and password again.
    page.get_by_role("button", name="暗証番号からやり直す").click()
    enter_pin(page)
    enter_password(page)
    wait_for_form(page)
    grant_elderly(page)
    assert bindings_of(world, "nobu") == 1
    assert len(applications_of(world, "nobu")) == 1
