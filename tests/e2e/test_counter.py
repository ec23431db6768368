"""The no-writing counter in a real browser: a standard application with no typing by the clerk."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pypdf
import pytest
from sqlalchemy import func, select

from tests import factories as f
from tests.e2e.conftest import (
    CITY_CONTACT,
    World,
    check_screen,
    counts,
    enter_password,
    enter_pin,
    press_pad,
    sign_in,
    slip_png,
    wait_for_form,
)
from voucher_api.models import Application, BindingMethod, CardBinding

pytestmark = pytest.mark.e2e


def test_standard_application_is_completed_without_the_clerk_typing_a_character(
    page: Any, world: World, screens_dir: Path
) -> None:
    sent_to_api: list[str] = []
    page.on(
        "request",
        lambda request: (
            sent_to_api.append(request.post_data or "") if request.url.startswith(world.base_url) else None
        ),
    )
    sign_in(page)
    page.goto("/staff/apply")
    page.get_by_text("マイナンバーカードをカードリーダーに置いてください").wait_for()
    check_screen(page, screens_dir, "03-apply-card")

    world.insert_card("hana")
    page.get_by_role("heading", name="暗証番号の入力").wait_for()
    check_screen(page, screens_dir, "04-apply-pin-pad")
    press_pad(page, f.CARD_PIN)
    page.get_by_role("heading", name="署名用パスワードの入力").wait_for()
    check_screen(page, screens_dir, "05-apply-password-pad")
    press_pad(page, f.CARD_PASSWORD)

    wait_for_form(page)
    facts = page.locator("#resident-facts")
    assert "山田 ハナ" in facts.inner_text()
    assert "尾花沢" in facts.inner_text()
    elderly = page.locator("[data-program='elderly']")
    assert "対象です" in elderly.inner_text()
    disability = page.locator("[data-program='disability']")
    assert "対象外です" in disability.inner_text()
    assert "✗" not in disability.inner_text()  # the mark is drawn by CSS; the words say "not met"
    assert "満たしていません" in disability.inner_text()
    check_screen(page, screens_dir, "06-apply-form-and-eligibility")

    page.locator("[data-grant='elderly']").click()
    page.get_by_role("heading", name="交付しました").wait_for()
    assert "山田 ハナ 様" in page.locator("#flow").inner_text()
    assert "利用券 24枚" in page.locator("#flow").inner_text()
    check_screen(page, screens_dir, "07-apply-granted")

    typed = counts(page)
    assert typed["keys"] == 0, typed
    assert typed["typed"] == 0, typed
    assert typed["pad"] == len(f.CARD_PIN) + 1 + len(f.CARD_PASSWORD) + 1, typed
    assert typed["taps"] == 1, typed  # the one tap that grants
    assert not any(f.CARD_PIN in body or f.CARD_PASSWORD in body for body in sent_to_api)

    application_id = int(page.locator("#flow").get_attribute("data-application-id") or 0)
    page.wait_for_function(
        "id => document.getElementById('slip-frame') && "
        "document.getElementById('slip-frame').dataset.applicationId === String(id)",
        arg=application_id,
    )
    token = world.staff_token("madoguchi")
    slip = httpx.get(
        f"{world.base_url}/api/v1/applications/{application_id}/slip.pdf",
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    text = "".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(slip.content)).pages)
    assert "山田 ハナ" in text
    assert "500円券 24枚" in text
    assert CITY_CONTACT.split("(")[0] in text
    slip_png(slip.content, screens_dir / "08-hand-over-slip.png")
    with world.sessions() as session:
        resident_id = world.residents["hana"]
        assert (
            session.scalar(
                select(func.count()).select_from(Application).where(Application.resident_id == resident_id)
            )
            == 1
        )
        assert (
            session.scalar(select(CardBinding.method).where(CardBinding.resident_id == resident_id))
            == BindingMethod.SIGNATURE_CERTIFICATE
        )


def test_pin_and_password_are_taken_only_on_the_residents_pads(page: Any, world: World) -> None:
    sign_in(page)
    page.goto("/staff/apply")
    world.insert_card("yoshi")
    enter_pin(page)
    assert page.locator("input").count() == 0
    enter_password(page, "WRONG1")
    page.get_by_text("あと4回まちがえるとロックされます").wait_for()
    assert page.locator("input").count() == 0
