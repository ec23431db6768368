"""The other staff screens in a real browser: sign-in, today's queue, the resident look-up (suspend or end
an entitlement with a reason, audited), the English switch; each screen accessible and usable at 200 %."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.e2e.conftest import START, World, check_screen, sign_in
from voucher_api.models import AuditEntry, Entitlement, EntitlementStatus, Program, StaffUser
from voucher_api.services import entitlements

pytestmark = pytest.mark.e2e


def test_sign_in_screen_is_japanese_first_and_refuses_a_wrong_password(
    page: Any, world: World, screens_dir: Path
) -> None:
    page.goto("/staff/sign-in")
    assert page.locator("html").get_attribute("lang") == "ja"
    check_screen(page, screens_dir, "01-sign-in")
    page.get_by_label("ユーザー名").fill("madoguchi")
    page.get_by_label("パスワード").fill("wrong")
    page.get_by_role("button", name="サインイン").click()
    page.get_by_text("ユーザー名またはパスワードが違います").wait_for()


def test_pages_send_a_signed_out_person_to_sign_in(page: Any, world: World) -> None:
    page.goto("/staff/apply")
    page.wait_for_url("**/staff/sign-in?next=*")


def test_todays_queue_at_the_counter_offers_to_start_an_application(
    page: Any, world: World, screens_dir: Path
) -> None:
    sign_in(page)
    page.goto("/staff/queue")
    page.get_by_role("heading", name="本日の受付").wait_for()
    page.get_by_role("link", name="申請受付を始める").first.wait_for()
    check_screen(page, screens_dir, "02-todays-queue")


def test_resident_look_up_shows_the_record_and_suspends_with_a_reason(
    page: Any, world: World, screens_dir: Path
) -> None:
    sign_in(page)
    page.goto("/staff/residents")
    page.get_by_label("ふりがな(カタカナ・ひらがな、姓から)").fill("やまもと")
    page.get_by_role("button", name="検索する").click()
    page.get_by_role("button", name="この方を選ぶ:山本 勝").click()
    page.get_by_role("heading", name="山本 勝(ヤマモト マサル)").wait_for()
    assert "利用券 24枚" in page.locator("[data-entitlement]").inner_text()
    assert "差し替え済み" not in page.locator("#record").inner_text()
    check_screen(page, screens_dir, "30-resident-record")
    page.get_by_role("button", name="停止する(高齢者おもいやりタクシー)").click()
    page.get_by_label("長期入院のため").check()
    check_screen(page, screens_dir, "31-suspend-with-reason")
    page.get_by_role("button", name="この理由で実行する").click()
    page.get_by_text("状態を変更しました").wait_for()
    assert "停止中(長期入院のため)" in page.locator("[data-entitlement]").inner_text()
    with world.sessions() as session:
        entitlement = session.scalar(
            select(Entitlement).where(Entitlement.resident_id == world.residents["masaru"])
        )
        assert entitlement is not None
        assert entitlement.status is EntitlementStatus.SUSPENDED
        audited = session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "entitlement.status_changed",
                AuditEntry.entity_id == str(entitlement.id),
            )
        )
        assert audited is not None
        assert audited.details["reason"] == "長期入院のため"
    page.get_by_role("button", name="再開する(高齢者おもいやりタクシー)").click()
    page.get_by_label("本人の申し出").check()
    page.get_by_role("button", name="この理由で実行する").click()
    page.get_by_text("利用中(本人の申し出)").wait_for()


def test_resident_look_up_ends_an_entitlement_with_a_reason_for_good(
    page: Any, world: World, screens_dir: Path
) -> None:
    with world.sessions() as session:
        program = session.get(Program, world.programs["elderly"])
        assert program is not None
        granted = entitlements.grant(
            session,
            resident_id=world.residents["kazuo"],
            program=program,
            application_id=None,
            actor="test",
            now=START,
        )
        session.commit()
        entitlement_id = granted.id
    sign_in(page)
    page.goto("/staff/residents")
    page.get_by_label("ふりがな(カタカナ・ひらがな、姓から)").fill("しみず")
    page.get_by_role("button", name="検索する").click()
    page.get_by_role("button", name="この方を選ぶ:清水 和夫").click()
    page.get_by_role("heading", name="清水 和夫(シミズ カズオ)").wait_for()
    page.get_by_role("button", name="終了する(高齢者おもいやりタクシー)").click()
    page.get_by_label("転出のため").check()
    check_screen(page, screens_dir, "32-end-with-reason")
    page.get_by_role("button", name="この理由で実行する").click()
    page.get_by_text("状態を変更しました").wait_for()
    row = page.locator(f"[data-entitlement='{entitlement_id}']")
    assert "終了(転出のため)" in row.inner_text()
    assert row.get_by_role("button").count() == 0  # ended is final: nothing more to offer
    with world.sessions() as session:
        ended = session.get(Entitlement, entitlement_id)
        assert ended is not None
        assert ended.status is EntitlementStatus.ENDED
        clerk = session.scalar(select(StaffUser).where(StaffUser.username == "madoguchi"))
        assert clerk is not None
        audited = session.scalar(
            select(AuditEntry).where(
                AuditEntry.action == "entitlement.status_changed",
                AuditEntry.entity_id == str(entitlement_id),
            )
        )
        assert audited is not None
        assert audited.details["reason"] == "転出のため"
        assert audited.details["to"] == "ended"
        assert audited.actor == f"staff:{clerk.id}"


def test_the_english_switch_changes_the_words_and_keeps_the_page(
    page: Any, world: World, screens_dir: Path
) -> None:
    sign_in(page)
    page.goto("/staff/queue")
    page.get_by_role("link", name="English").click()
    page.get_by_role("heading", name="Today's queue").wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("link", name="Start an application").first.wait_for()
    check_screen(page, screens_dir, "35-english-todays-queue")
    page.goto("/staff/apply")
    page.get_by_text("Please place the My Number card on the card reader").wait_for()
    page.get_by_role("link", name="日本語").click()
    page.get_by_text("マイナンバーカードをカードリーダーに置いてください").wait_for()
