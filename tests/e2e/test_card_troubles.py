"""Card troubles at the counter, in a real browser: each one shows plain Japanese guidance and the way on."""

from __future__ import annotations

import re
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
    press_pad,
    sign_in,
    wait_for_form,
)
from voucher_api.models import CardBinding, Entitlement

pytestmark = pytest.mark.e2e

# What a stable machine code looks like (pin.locked, card.revoked, challenge.expired): never on a screen.
MACHINE_CODE = re.compile(r"\b[a-z_]+\.[a-z_]+\b")


def start(page: Any, world: World, card: str) -> None:
    sign_in(page)
    page.goto("/staff/apply")
    page.get_by_text("マイナンバーカードをカードリーダーに置いてください").wait_for()
    world.insert_card(card)


def trouble_text(page: Any) -> str:
    notice = page.locator("[data-trouble]")
    notice.wait_for()
    assert_no_machine_code(page)
    return str(notice.inner_text())


def assert_no_machine_code(page: Any) -> None:
    """The screen speaks plain words: no error code anywhere in it (nor in what screen readers hear)."""
    shown = page.locator("#main").inner_text()
    assert MACHINE_CODE.findall(shown) == [], shown
    labels = page.locator("#main [aria-label]").evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('aria-label'))"
    )
    assert MACHINE_CODE.findall(" ".join(labels)) == [], labels


def test_wrong_pin_reports_tries_left_and_the_right_pin_goes_on(
    page: Any, world: World, screens_dir: Path
) -> None:
    start(page, world, "tadashi")
    enter_pin(page, "0000")
    page.get_by_text("あと2回まちがえるとロックされます").wait_for()
    assert_no_machine_code(page)
    check_screen(page, screens_dir, "10-trouble-wrong-pin")
    enter_pin(page)
    enter_password(page)
    wait_for_form(page)
    assert "伊藤 正" in page.locator("#resident-facts").inner_text()


def test_locked_pin_is_explained_and_reset_at_the_counter_with_a_new_pin(
    page: Any, world: World, screens_dir: Path
) -> None:
    start(page, world, "sachi")
    page.get_by_role("heading", name="暗証番号がロックされています").wait_for()
    assert "新しい暗証番号を設定して解除できます" in page.locator("#flow").inner_text()
    assert_no_machine_code(page)
    check_screen(page, screens_dir, "11-trouble-pin-locked")
    page.get_by_role("button", name="暗証番号を再設定する").click()
    page.get_by_text("新しい暗証番号(数字4桁)を入力してください").wait_for()
    assert_no_machine_code(page)
    check_screen(page, screens_dir, "17-pin-reset-pad")
    press_pad(page, "2580")
    page.get_by_text("確認のため、もう一度入力してください").wait_for()
    press_pad(page, "2580")
    page.get_by_text("暗証番号を再設定しました").wait_for()
    assert_no_machine_code(page)
    enter_pin(page, "2580")
    enter_password(page)
    wait_for_form(page)
    assert "中村 サチ" in page.locator("#resident-facts").inner_text()
    assert counts(page)["keys"] == 0


def test_revoked_card_is_explained_in_plain_words(page: Any, world: World, screens_dir: Path) -> None:
    start(page, world, "shigeru")
    enter_pin(page)
    enter_password(page)
    text = trouble_text(page)
    assert "失効しています" in text
    assert "再発行" in text
    assert "card." not in text
    check_screen(page, screens_dir, "12-trouble-card-revoked")


def test_expired_card_is_explained_in_plain_words(page: Any, world: World, screens_dir: Path) -> None:
    start(page, world, "mitsu")
    enter_pin(page)
    enter_password(page)
    text = trouble_text(page)
    assert "有効期限が切れています" in text
    assert "更新" in text
    check_screen(page, screens_dir, "18-trouble-card-expired")


def test_card_of_someone_not_in_the_registry_is_explained(page: Any, world: World, screens_dir: Path) -> None:
    start(page, world, "tabito")
    enter_pin(page)
    enter_password(page)
    text = trouble_text(page)
    assert "住民基本台帳に見つかりません" in text
    assert "転入" in text
    check_screen(page, screens_dir, "13-trouble-not-in-registry")


def test_already_enrolled_resident_sees_what_was_granted_and_cannot_get_it_twice(
    page: Any, world: World, screens_dir: Path
) -> None:
    start(page, world, "masaru")
    enter_pin(page)
    enter_password(page)
    wait_for_form(page)
    assert "このカードは登録済みです" in page.locator("#flow").inner_text()
    elderly = page.locator("[data-program='elderly']")
    assert "交付済みです" in elderly.inner_text()
    assert page.locator("[data-grant]").count() == 0
    # The programs exclude each other: the others say why, in words, next to their other reasons.
    for other in ("disability", "bus_abolished"):
        reasons = page.locator(f"[data-program='{other}'] .reasons li.unmet").all_inner_texts()
        assert any(
            "「高齢者おもいやりタクシー」を利用中のため、この制度とは併用できません" in r for r in reasons
        ), reasons
    assert_no_machine_code(page)
    check_screen(page, screens_dir, "14-already-enrolled")


def test_lost_card_is_replaced_by_the_reissued_card(page: Any, world: World, screens_dir: Path) -> None:
    start(page, world, "haruko")
    enter_pin(page)
    enter_password(page)
    text = trouble_text(page)
    assert "別のカードが登録されています" in text
    check_screen(page, screens_dir, "15-trouble-lost-card-rebind")
    page.get_by_role("button", name="新しいカードに差し替えて続ける").click()
    enter_pin(page)
    enter_password(page)
    wait_for_form(page)
    with world.sessions() as session:
        statuses = sorted(
            b.status.value
            for b in session.scalars(
                select(CardBinding).where(CardBinding.resident_id == world.residents["haruko"])
            )
        )
    assert statuses == ["active", "replaced"]


def test_face_recognition_card_goes_through_the_staff_attested_path(
    page: Any, world: World, screens_dir: Path
) -> None:
    start(page, world, "toshi")
    page.get_by_role("heading", name="職員による本人確認").wait_for()
    assert "顔認証マイナンバーカード" in page.locator("#flow").inner_text()
    assert_no_machine_code(page)
    page.get_by_label("ふりがな(カタカナ・ひらがな、姓から)").fill("いのうえ")
    page.get_by_label("生年月日").fill("1940-10-01")
    page.get_by_role("button", name="検索する").click()
    page.get_by_role("button", name="この方を選ぶ:井上 トシ").wait_for()
    check_screen(page, screens_dir, "16-attested-search")
    page.get_by_role("button", name="この方を選ぶ:井上 トシ").click()
    page.get_by_role("button", name="カードの顔写真とご本人が同じ方であることを確認しました").click()
    wait_for_form(page)
    assert "職員による本人確認" in page.locator("#resident-facts").inner_text()
    page.locator("[data-grant='elderly']").click()
    page.get_by_role("heading", name="交付しました").wait_for()
    with world.sessions() as session:
        granted = session.scalar(
            select(Entitlement).where(Entitlement.resident_id == world.residents["toshi"])
        )
    assert granted is not None


def test_forgotten_password_goes_through_the_staff_attested_path(page: Any, world: World) -> None:
    start(page, world, "yoshi")
    enter_pin(page)
    page.get_by_role("button", name="パスワードを忘れた").click()
    assert "パスワードを忘れた方" in page.locator("#flow").inner_text()
    page.get_by_label("ふりがな(カタカナ・ひらがな、姓から)").fill("キムラ")
    page.get_by_role("button", name="検索する").click()
    page.get_by_role("button", name="この方を選ぶ:木村 ヨシ").click()
    page.get_by_role("button", name="カードの顔写真とご本人が同じ方であることを確認しました").click()
    wait_for_form(page)
    assert "木村 ヨシ" in page.locator("#resident-facts").inner_text()


def test_no_card_on_the_reader_keeps_waiting_with_guidance(page: Any, world: World) -> None:
    sign_in(page)
    page.goto("/staff/apply")
    page.get_by_text("カードを待っています").wait_for()
    assert page.get_by_role("heading", name="カード").is_visible()
