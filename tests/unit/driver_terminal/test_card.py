"""Reading a real virtual card through auth_mock's reader: proofs that verify, PIN errors the rider can
act on, and nothing but the JPKI applet ever selected."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from auth_mock import jpki
from auth_mock.card import VirtualCard
from auth_mock.reader import JPKIReader, VirtualCardTransport
from driver_terminal.card import (
    CardHasNoPin,
    CardUnreadable,
    PinLocked,
    PinMalformed,
    WrongPin,
    open_virtual_card,
    prove_by_tap,
    prove_with_pin,
)
from driver_terminal.client import Challenge, ChallengePurpose
from tests.factories import CARD_PIN
from tests.unit.driver_terminal.fakes import NOW

TEXT_INPUT_ASSIST_AID = bytes.fromhex("D3921000310001010408")


def challenge(message: bytes = b"nonce|board|terminal:7", purpose: str = "board") -> Challenge:
    return Challenge(
        nonce="cd" * 32,
        purpose=ChallengePurpose(purpose),
        context="terminal:7",
        expires_at=NOW + timedelta(minutes=2),
        message=message,
    )


def wrong(pin: str) -> str:
    return "0000" if pin != "0000" else "1111"


@pytest.fixture
def card(card_factory: Any, tmp_path: Path) -> Path:
    """The test's own copy of a card: its PIN try counter lives in the file."""
    own = tmp_path / "card.json"
    shutil.copyfile(card_factory("terminal-unit"), own)
    return own


def tries_left(card: Path) -> int:
    return JPKIReader(VirtualCardTransport(card)).user_pin_tries_left()


def test_proof_signature_verifies_with_the_cards_certificate(card: Path) -> None:
    message = b"exact bytes from the API"
    proof = prove_with_pin(open_virtual_card(card), challenge(message), CARD_PIN)
    public_key = x509.load_der_x509_certificate(proof.certificate).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert proof.signature is not None
    public_key.verify(proof.signature, message, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong
    assert proof.nonce == "cd" * 32
    assert len(proof.chain) == 1


def test_wrong_pin_reports_tries_left(card: Path) -> None:
    with pytest.raises(WrongPin) as raised:
        prove_with_pin(open_virtual_card(card), challenge(), wrong(CARD_PIN))
    assert raised.value.tries_left == 2
    assert raised.value.message() == "暗証番号が違います。あと2回間違えるとロックされます。"
    assert raised.value.message("en") == "Wrong PIN. 2 more wrong tries will lock it."


def test_third_wrong_pin_locks_the_card_and_sends_the_rider_to_the_counter(card: Path) -> None:
    for _ in range(2):
        with pytest.raises(WrongPin):
            prove_with_pin(open_virtual_card(card), challenge(), wrong(CARD_PIN))
    with pytest.raises(PinLocked) as raised:
        prove_with_pin(open_virtual_card(card), challenge(), wrong(CARD_PIN))
    assert "窓口" in raised.value.message()
    with pytest.raises(PinLocked):
        prove_with_pin(open_virtual_card(card), challenge(), CARD_PIN)


def test_right_pin_after_a_wrong_one_resets_the_count(card: Path) -> None:
    with pytest.raises(WrongPin):
        prove_with_pin(open_virtual_card(card), challenge(), wrong(CARD_PIN))
    prove_with_pin(open_virtual_card(card), challenge(), CARD_PIN)
    assert tries_left(card) == 3


@pytest.mark.parametrize("pin", ["123", "12345", "abcd", "１２３４", ""])
def test_malformed_pin_is_refused_without_spending_a_try(card: Path, pin: str) -> None:
    with pytest.raises(PinMalformed):
        prove_with_pin(open_virtual_card(card), challenge(), pin)
    assert tries_left(card) == 3


def test_face_recognition_card_cannot_sign_a_boarding(card_factory: Any) -> None:
    face = card_factory("terminal-face", kind="face_recognition")
    with pytest.raises(CardHasNoPin) as raised:
        prove_with_pin(open_virtual_card(face), challenge(), CARD_PIN)
    assert "顔認証" in raised.value.message()


def test_card_not_on_the_reader_asks_to_hold_it_again(tmp_path: Path) -> None:
    with pytest.raises(CardUnreadable) as raised:
        prove_by_tap(open_virtual_card(tmp_path / "no-card.json"))
    assert "かざして" in raised.value.message()


def test_tap_proof_carries_the_certificate_without_a_signature(card: Path) -> None:
    proof = prove_by_tap(open_virtual_card(card))
    assert proof.certificate.startswith(b"\x30")
    assert (proof.nonce, proof.signature) == (None, None)
    assert proof.as_json()["signature"] is None


def test_terminal_signs_boarding_challenges_only(card: Path) -> None:
    with pytest.raises(ValueError, match="boarding"):
        prove_with_pin(open_virtual_card(card), challenge(purpose="bind"), CARD_PIN)


def test_only_the_jpki_applet_is_ever_selected(card: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []
    original = VirtualCard.transmit

    def recording(self: VirtualCard, apdu: bytes) -> bytes:
        sent.append(bytes(apdu))
        return original(self, apdu)

    monkeypatch.setattr(VirtualCard, "transmit", recording)
    prove_with_pin(open_virtual_card(card), challenge(), CARD_PIN)
    prove_by_tap(open_virtual_card(card))
    with pytest.raises(WrongPin):
        prove_with_pin(open_virtual_card(card), challenge(), wrong(CARD_PIN))
    selects = [apdu for apdu in sent if apdu[:3] == b"\x00\xa4\x04"]
    assert selects
    assert all(apdu[5:] == jpki.JPKI_AID for apdu in selects)
    assert not any(TEXT_INPUT_ASSIST_AID in apdu for apdu in sent)
