"""A full mobile-office round in a real browser: the route, numbers handed out, the residents' display,
several residents served without typing, a lost network and a lost answer, and the figures after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.conftest import (
    World,
    check_screen,
    counts,
    enter_password,
    enter_pin,
    sign_in,
    wait_for_form,
)
from voucher_api.models import Application, QueueTicket, TicketStatus

pytestmark = pytest.mark.e2e

ROUND = "令和8年10月 移動市役所 第2回"
DAY = "2026-10-15"  # the city's today in the e2e world


def add_stop(page: Any, place: str, district: str, start: str, end: str) -> None:
    page.get_by_text(f"停車場所を追加({ROUND})").click()
    form = page.locator("details[open] form")
    form.get_by_label("場所").fill(place)
    form.get_by_label("地区").select_option(label=district)
    form.get_by_label("日付").fill(DAY)
    form.get_by_label("開始時刻").fill(start)
    form.get_by_label("終了時刻").fill(end)
    form.get_by_role("button", name="追加する").click()
    page.get_by_role("cell", name=place, exact=True).wait_for()


def applications_of(world: World, key: str) -> list[Application]:
    with world.sessions() as session:
        return list(
            session.scalars(select(Application).where(Application.resident_id == world.residents[key]))
        )


def call_and_read_card(page: Any, world: World, card: str, number: int) -> None:
    """The clerk calls the next number; the resident puts the card down and enters PIN and password."""
    world.eject_card()  # the previous resident took their card back
    page.bring_to_front()
    page.goto("/staff/queue")
    page.evaluate("sessionStorage.removeItem('__e2e_counts')")
    page.get_by_role("button", name="次の方を呼ぶ").click()
    page.get_by_text(f"番号札 {number}番の方").wait_for()
    page.get_by_text("マイナンバーカードをカードリーダーに置いてください").wait_for()
    world.insert_card(card)
    enter_pin(page)
    enter_password(page)
    wait_for_form(page)


def assert_clerk_typed_nothing(page: Any, taps: int) -> None:
    typed = counts(page)
    assert typed["keys"] == 0, typed
    assert typed["typed"] == 0, typed
    assert typed["taps"] == taps, typed


def test_a_mobile_office_round_with_several_residents(
    page: Any, context: Any, world: World, screens_dir: Path
) -> None:
    sign_in(page, "idou")

    # The route: two stops in two districts, each with its time window.
    page.goto("/staff/mobile-office")
    page.get_by_label("ルートの名前").fill(ROUND)
    page.get_by_role("button", name="作成する").click()
    page.get_by_role("heading", name=ROUND).wait_for()
    add_stop(page, "玉野地区公民館", "玉野", "09:30", "10:15")
    add_stop(page, "宮沢地区公民館", "宮沢", "10:45", "11:30")
    check_screen(page, screens_dir, "20-mobile-office-route")

    # First stop: open it and hand out numbers to the three people waiting.
    page.goto("/staff/queue")
    page.get_by_role("button", name="受付を始める(玉野地区公民館)").click()
    page.get_by_role("heading", name="受付場所: 玉野地区公民館(玉野)").wait_for()
    for number in (1, 2, 3):
        page.get_by_role("button", name="番号札を渡す").click()
        page.get_by_text(f"{number}番の番号札をお渡しください").wait_for()
    check_screen(page, screens_dir, "21-queue-at-a-stop")
    stop_id = page.locator("#stops li", has_text="玉野地区公民館").get_attribute("data-stop")

    display = context.new_page()
    display.goto(f"/display/stops/{stop_id}")
    display.locator("#display-waiting", has_text="3人").wait_for()
    assert display.locator("#display-wait").inner_text() == "約12分"
    check_screen(display, screens_dir, "22-residents-display")

    # 1番 佐藤 トメ: the answer to the grant is lost on the way back; the page resends, the API replays.
    call_and_read_card(page, world, "tome", 1)
    # The display polls; number 1 is shown while it is being served (waiting here costs the clerk nothing).
    display.locator("#display-calling", has_text="1番").wait_for()
    keys: list[str] = []

    def lose_the_first_answer(route: Any) -> None:
        keys.append(route.request.header_value("idempotency-key"))
        if len(keys) == 1:
            route.fetch()
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(f"{world.base_url}/api/v1/applications", lose_the_first_answer)
    page.locator("[data-grant='bus_abolished']").click()
    page.get_by_role("heading", name="交付しました").wait_for()
    page.unroute(f"{world.base_url}/api/v1/applications")
    assert len(keys) == 2
    assert keys[0] == keys[1]
    [tome] = applications_of(world, "tome")
    assert str(tome.mobile_stop).endswith("-01")
    page.get_by_role("button", name="次の方へ").click()
    page.wait_for_url("**/staff/queue")
    # Once served, the number leaves the display.
    display.locator("#display-calling", has_text="ー").wait_for()

    # 2番 鈴木 一郎: the vehicle loses the network just as the clerk grants; it is sent when it returns.
    call_and_read_card(page, world, "ichiro", 2)
    context.set_offline(True)
    page.locator("[data-grant='elderly']").click()
    page.get_by_text("この申請は送信待ちです").wait_for()
    assert page.locator("#outbox").inner_text().startswith("送信待ち 1件")
    assert applications_of(world, "ichiro") == []
    context.set_offline(False)
    page.get_by_role("heading", name="交付しました").wait_for()
    assert len(applications_of(world, "ichiro")) == 1
    assert_clerk_typed_nothing(page, taps=2)
    page.get_by_role("button", name="次の方へ").click()
    page.wait_for_url("**/staff/queue")

    # 3番 高橋 健: eligible for nothing; the reasons are shown and nothing is granted.
    call_and_read_card(page, world, "ken", 3)
    assert page.locator("[data-grant]").count() == 0
    assert "対象外です" in page.locator("[data-program='elderly']").inner_text()
    page.get_by_role("button", name="次の方へ").click()
    page.wait_for_url("**/staff/queue")
    assert_clerk_typed_nothing(page, taps=2)
    page.locator("#waiting-count", has_text="0人").wait_for()

    # Move on: close the first stop, open the second, serve 渡辺 キヨ.
    page.goto("/staff/mobile-office")
    page.get_by_role("button", name="受付を終える(玉野地区公民館)").click()
    page.get_by_role("button", name="受付を始める(宮沢地区公民館)").click()
    page.get_by_role("button", name="受付を終える(宮沢地区公民館)").wait_for()
    page.goto("/staff/queue")
    page.get_by_role("heading", name="受付場所: 宮沢地区公民館(宮沢)").wait_for()
    page.get_by_role("button", name="番号札を渡す").click()
    page.get_by_text("1番の番号札をお渡しください").wait_for()
    call_and_read_card(page, world, "kiyo", 1)
    page.locator("[data-grant='disability']").click()
    page.get_by_role("heading", name="交付しました").wait_for()
    page.get_by_role("button", name="次の方へ").click()
    page.wait_for_url("**/staff/queue")
    page.goto("/staff/mobile-office")
    page.get_by_role("button", name="受付を終える(宮沢地区公民館)").click()
    page.get_by_role("button", name="受付を終える(宮沢地区公民館)").wait_for(state="detached")

    with world.sessions() as session:
        tickets = list(session.scalars(select(QueueTicket).where(QueueTicket.status == TicketStatus.DONE)))
    assert len([t for t in tickets if t.resident_id is not None]) >= 4

    # After the round: figures per stop and per district.
    page.get_by_role("link", name=f"集計を見る({ROUND})").click()
    page.get_by_role("heading", name=f"移動市役所の集計: {ROUND}").wait_for()
    tamano = page.locator("tr", has=page.get_by_role("rowheader", name="玉野地区公民館")).locator("td")
    assert tamano.all_inner_texts()[:6] == ["玉野", "3", "3", "2", "2", "0"]
    miyazawa = page.locator("tr", has=page.get_by_role("rowheader", name="宮沢地区公民館")).locator("td")
    assert miyazawa.all_inner_texts()[:5] == ["宮沢", "1", "1", "1", "1"]
    total = page.locator("tr[data-total] td")
    assert total.all_inner_texts()[:4] == ["4", "4", "3", "3"]
    check_screen(page, screens_dir, "23-round-figures")
