"""The counter's reader bridge (auth_mock.bridge): the card through HTTP, errors a clerk can act on."""

from __future__ import annotations

import base64
import logging
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask.testing import FlaskClient

from auth_mock import jpki
from auth_mock.bridge import ReaderSlot, create_bridge_app
from auth_mock.card import VirtualCard
from auth_mock.cli import main as mock_card
from tests.factories import CARD_PASSWORD, CARD_PIN, NOW
from voucher_api.services.identity import challenge_message
from voucher_api.services.jpki_facts import read_four_facts

STAFF_ORIGIN = "http://127.0.0.1:8000"
TEXT_INPUT_ASSIST_AID = bytes.fromhex("D3921000310001010408")
MESSAGE = challenge_message(b"\x01" * 32, "enrol", "staff:1")


@pytest.fixture
def cards(tmp_path: Path, card_factory: Any) -> Path:
    """A directory of card files for this test only (copies: try counters change)."""
    directory = tmp_path / "cards"
    directory.mkdir()
    shutil.copy(card_factory("bridge"), directory / "standard.json")
    shutil.copy(card_factory("bridge-face", kind="face_recognition"), directory / "face.json")
    (directory / "index.json").write_text("{}")
    return directory


@pytest.fixture
def bridge(cards: Path) -> FlaskClient:
    return create_bridge_app(ReaderSlot(cards), allowed_origin=STAFF_ORIGIN).test_client()


def insert(bridge: FlaskClient, card: str = "standard.json") -> None:
    r = bridge.post("/reader/insert", json={"card": card})
    assert r.status_code == 200, r.get_json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sign(bridge: FlaskClient, pin: str = CARD_PIN) -> Any:
    return bridge.post("/card/user-signature", json={"message": b64(MESSAGE), "pin": pin})


def test_reader_lists_the_card_files_and_reports_the_card_put_on_it(bridge: FlaskClient) -> None:
    assert bridge.get("/reader/cards").get_json()["cards"] == ["face.json", "standard.json"]
    assert bridge.get("/reader").get_json()["card_present"] is False
    insert(bridge)
    status = bridge.get("/reader").get_json()
    assert status == {
        "card_present": True,
        "card": "standard.json",
        "has_user_pin": True,
        "user_pin_tries_left": 3,
    }
    bridge.post("/reader/eject")
    assert bridge.get("/reader").get_json()["card_present"] is False


def test_without_a_card_the_clerk_is_told_to_place_it(bridge: FlaskClient) -> None:
    r = bridge.get("/card/user-certificate")
    assert r.status_code == 409
    assert r.mimetype == "application/problem+json"
    assert r.get_json()["code"] == "card.absent"
    assert "カードをリーダーに置いてください" in r.get_json()["title"]


def test_user_certificate_and_its_ca_are_read_without_the_pin(bridge: FlaskClient, verifier: Any) -> None:
    insert(bridge)
    body = bridge.get("/card/user-certificate").get_json()
    card = verifier.verify_certificate(
        base64.b64decode(body["certificate"]), [base64.b64decode(c) for c in body["chain"]], NOW
    )
    assert card.subject_serial


def test_challenge_signed_with_the_pin_verifies_with_the_user_certificate(bridge: FlaskClient) -> None:
    insert(bridge)
    signature = base64.b64decode(sign(bridge).get_json()["signature"])
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(bridge.get("/card/user-certificate").get_json()["certificate"])
    )
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_wrong_pin_reports_tries_left(bridge: FlaskClient) -> None:
    insert(bridge)
    r = sign(bridge, "0000")
    assert r.status_code == 422
    assert r.get_json()["code"] == "pin.wrong"
    assert r.get_json()["tries_left"] == 2
    assert "あと2回" in r.get_json()["title"]
    assert bridge.get("/card/pin-status").get_json() == {"has_user_pin": True, "tries_left": 2}


def test_a_pin_that_is_not_four_digits_spends_no_try(bridge: FlaskClient) -> None:
    insert(bridge)
    r = sign(bridge, "12a4")
    assert r.status_code == 400
    assert r.get_json()["code"] == "pin.malformed"
    assert bridge.get("/card/pin-status").get_json()["tries_left"] == 3


def test_third_wrong_pin_locks_it_and_the_counter_resets_it_with_a_new_pin(bridge: FlaskClient) -> None:
    insert(bridge)
    codes = [sign(bridge, "0000").get_json()["code"] for _ in range(3)]
    assert codes == ["pin.wrong", "pin.wrong", "pin.locked"]
    locked = sign(bridge)
    assert locked.status_code == 423
    assert "再設定" in locked.get_json()["title"]
    reset = bridge.post("/card/reset-pin", json={"new_pin": "2580"})
    assert reset.get_json() == {"has_user_pin": True, "tries_left": 3}
    assert sign(bridge, CARD_PIN).get_json()["code"] == "pin.wrong"
    assert sign(bridge, "2580").status_code == 200


def test_signature_certificate_needs_the_password_and_carries_the_four_facts(bridge: FlaskClient) -> None:
    insert(bridge)
    r = bridge.post("/card/signature-certificate", json={"password": CARD_PASSWORD})
    assert r.status_code == 200
    facts = read_four_facts(x509.load_der_x509_certificate(base64.b64decode(r.get_json()["certificate"])))
    assert facts.birth_date == date(1945, 6, 1)
    assert facts.name.replace("\u3000", "") == "尾花沢花子bridge"


def test_wrong_password_reports_its_own_tries_left(bridge: FlaskClient) -> None:
    insert(bridge)
    r = bridge.post("/card/signature", json={"message": b64(MESSAGE), "password": "WRONG123"})
    assert r.get_json()["code"] == "password.wrong"
    assert r.get_json()["tries_left"] == 4
    assert "署名用パスワード" in r.get_json()["title"]


def test_signature_by_the_signature_key_verifies(bridge: FlaskClient) -> None:
    insert(bridge)
    signed = bridge.post("/card/signature", json={"message": b64(MESSAGE), "password": CARD_PASSWORD})
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(
            bridge.post("/card/signature-certificate", json={"password": CARD_PASSWORD}).get_json()[
                "certificate"
            ]
        )
    )
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    key.verify(base64.b64decode(signed.get_json()["signature"]), MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_face_recognition_card_has_no_pin_and_says_so(bridge: FlaskClient) -> None:
    insert(bridge, "face.json")
    assert bridge.get("/reader").get_json()["has_user_pin"] is False
    assert bridge.get("/card/user-certificate").status_code == 200
    r = sign(bridge)
    assert r.get_json()["code"] == "card.no_pin"
    assert "顔認証" in r.get_json()["title"]


def test_only_card_files_of_the_card_directory_can_be_put_on_the_reader(bridge: FlaskClient) -> None:
    for name in ("../standard.json", "/etc/passwd", "index.json", "missing.json"):
        r = bridge.post("/reader/insert", json={"card": name})
        assert r.get_json()["code"] == "card.unknown", name


def test_the_staff_page_origin_gets_cors_and_any_other_origin_is_refused(bridge: FlaskClient) -> None:
    preflight = bridge.options(
        "/card/user-signature",
        headers={"Origin": STAFF_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == STAFF_ORIGIN
    insert(bridge)
    evil = bridge.post(
        "/card/user-signature",
        json={"message": b64(MESSAGE), "pin": CARD_PIN},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403
    assert evil.get_json()["code"] == "origin.forbidden"
    assert "Access-Control-Allow-Origin" not in evil.headers
    assert bridge.get("/card/pin-status").get_json()["tries_left"] == 3


def test_titles_are_english_when_the_page_asks_for_english(bridge: FlaskClient) -> None:
    r = bridge.get("/card/user-certificate", headers={"Accept-Language": "en"})
    assert r.get_json()["title"].startswith("No card on the reader")


def test_pin_and_password_never_leave_the_card_path(
    bridge: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    insert(bridge)
    answers = [
        sign(bridge),
        sign(bridge, "0000"),
        bridge.post("/card/signature", json={"message": b64(MESSAGE), "password": CARD_PASSWORD}),
        bridge.post("/card/signature-certificate", json={"password": "WRONG123"}),
    ]
    for answer in answers:
        assert CARD_PIN.encode() not in answer.data
        assert CARD_PASSWORD.encode() not in answer.data
    assert CARD_PIN not in caplog.text
    assert CARD_PASSWORD not in caplog.text


def test_only_the_jpki_applet_is_ever_selected(bridge: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []
    original = VirtualCard.transmit

    def recording(self: VirtualCard, apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return original(self, apdu)

    monkeypatch.setattr(VirtualCard, "transmit", recording)
    insert(bridge)
    bridge.get("/reader")
    bridge.get("/card/user-certificate")
    sign(bridge)
    bridge.post("/card/signature-certificate", json={"password": CARD_PASSWORD})
    bridge.post("/card/signature", json={"message": b64(MESSAGE), "password": CARD_PASSWORD})
    assert sent
    for apdu in sent:
        assert TEXT_INPUT_ASSIST_AID not in apdu
        if apdu[:3] == b"\x00\xa4\x04":
            assert apdu[5:] == jpki.JPKI_AID


def test_mock_card_cli_has_the_bridge_command() -> None:
    result = CliRunner().invoke(mock_card, ["bridge", "--help"])
    assert result.exit_code == 0
    assert "--origin" in result.output
