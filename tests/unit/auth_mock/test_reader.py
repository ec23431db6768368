"""The host-side driver does the same thing over the virtual reader and over PC/SC."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from auth_mock.card import VirtualCard
from auth_mock.issuer import CardKind, certified_facts
from auth_mock.reader import (
    CardAbsent,
    JPKIReader,
    NoSignatureCertificate,
    NoUserPin,
    PcscTransport,
    PcscUnavailable,
    PinIncorrect,
    PinLocked,
    ReaderNotFound,
    SecurityStatusNotSatisfied,
    Transport,
    VirtualCardTransport,
)
from tests.unit.auth_mock.conftest import PASSWORD, PIN, FakeReader, Pki

CardCopy = Callable[[CardKind], Path]
Connect = Callable[[Path], Transport]


def reader_for(connect: Connect, card_copy: CardCopy, kind: CardKind = CardKind.STANDARD) -> JPKIReader:
    return JPKIReader(connect(card_copy(kind)))


def verifies(certificate_der: bytes, signature: bytes, message: bytes) -> bool:
    public_key = x509.load_der_x509_certificate(certificate_der).public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, message, padding.PKCS1v15(), SHA256())
    return True


# -- certificates --


def test_user_certificate_is_read_whole(pki: Pki, connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    certificate = x509.load_der_x509_certificate(reader.read_user_certificate())
    assert certificate.serial_number == pki.cards[CardKind.STANDARD].user_cert_serial


def test_user_ca_certificate_is_the_issuing_ca(pki: Pki, connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    assert (
        x509.load_der_x509_certificate(reader.read_user_ca_certificate())
        == pki.issuer.intermediate_certificate
    )


def test_token_info_is_read(connect: Connect, card_copy: CardCopy) -> None:
    assert reader_for(connect, card_copy).read_token_info() == "JPKIAPICCTOKEN2"


def test_signature_certificate_carries_the_four_facts(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    facts = certified_facts(x509.load_der_x509_certificate(reader.read_signature_certificate(PASSWORD)))
    assert facts.name == "尾花沢\u3000花子"


def test_signature_password_in_lower_case_is_taken_as_upper_case(
    connect: Connect, card_copy: CardCopy
) -> None:
    reader = reader_for(connect, card_copy)
    assert reader.read_signature_certificate(PASSWORD.lower())


def test_signature_ca_certificate_needs_no_password(pki: Pki, connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    ca = x509.load_der_x509_certificate(reader.read_signature_ca_certificate())
    assert ca == pki.issuer.intermediate_certificate


# -- PIN --


def test_card_with_pin_says_so(connect: Connect, card_copy: CardCopy) -> None:
    assert reader_for(connect, card_copy).has_user_pin()


def test_fresh_card_has_three_pin_tries(connect: Connect, card_copy: CardCopy) -> None:
    assert reader_for(connect, card_copy).user_pin_tries_left() == 3


def test_wrong_pin_reports_tries_left(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    with pytest.raises(PinIncorrect) as wrong:
        reader.verify_user_pin("0000")
    assert wrong.value.tries_left == 2
    assert wrong.value.credential == "user_pin"
    assert reader.user_pin_tries_left() == 2


def test_third_wrong_pin_locks_and_says_so(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    for _ in range(2):
        with pytest.raises(PinIncorrect):
            reader.verify_user_pin("0000")
    with pytest.raises(PinLocked) as locking:
        reader.verify_user_pin("0000")
    assert locking.value.sw == 0x63C0
    with pytest.raises(PinLocked) as locked:
        reader.verify_user_pin(PIN)
    assert locked.value.sw == 0x6984
    assert reader.user_pin_tries_left() == 0


def test_pin_that_is_not_four_digits_costs_no_try(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    for malformed in ("123", "12345", "12a4", "１２３４"):
        with pytest.raises(ValueError, match="数字4桁"):
            reader.verify_user_pin(malformed)
    assert reader.user_pin_tries_left() == 3


def test_locked_card_reports_zero_tries(connect: Connect, card_copy: CardCopy) -> None:
    assert reader_for(connect, card_copy, CardKind.LOCKED).user_pin_tries_left() == 0


def test_wrong_signature_password_reports_tries_left(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    with pytest.raises(PinIncorrect) as wrong:
        reader.read_signature_certificate("WRONG99")
    assert wrong.value.tries_left == 4
    assert wrong.value.credential == "signature_password"
    assert reader.signature_password_tries_left() == 4


def test_malformed_signature_password_costs_no_try(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    with pytest.raises(ValueError, match="6〜16"):
        reader.verify_signature_password("ABC")
    assert reader.signature_password_tries_left() == 5


# -- signatures --


def test_user_key_signature_verifies_with_the_user_certificate(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    signature = reader.sign_with_user_key(b"nonce|boarding|062120", pin=PIN)
    assert verifies(reader.read_user_certificate(), signature, b"nonce|boarding|062120")


def test_pin_verified_earlier_in_the_session_allows_signing(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    reader.verify_user_pin(PIN)
    assert len(reader.sign_with_user_key(b"challenge")) == 256


def test_signing_without_pin_is_refused(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    with pytest.raises(SecurityStatusNotSatisfied):
        reader.sign_with_user_key(b"challenge")


def test_new_session_needs_the_pin_again(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy)
    reader.verify_user_pin(PIN)
    reader.select_applet()
    with pytest.raises(SecurityStatusNotSatisfied):
        reader.sign_with_user_key(b"challenge")


def test_signature_key_signature_verifies_with_the_signature_certificate(
    connect: Connect, card_copy: CardCopy
) -> None:
    reader = reader_for(connect, card_copy)
    signature = reader.sign_with_signature_key(b"application", PASSWORD)
    assert verifies(reader.read_signature_certificate(PASSWORD), signature, b"application")


# -- face-recognition cards --


def test_face_recognition_card_has_no_pin(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy, CardKind.FACE_RECOGNITION)
    assert not reader.has_user_pin()
    with pytest.raises(NoUserPin):
        reader.user_pin_tries_left()
    with pytest.raises(NoUserPin):
        reader.verify_user_pin(PIN)


def test_face_recognition_card_still_shows_its_user_certificate(
    connect: Connect, card_copy: CardCopy
) -> None:
    assert reader_for(connect, card_copy, CardKind.FACE_RECOGNITION).read_user_certificate()


def test_face_recognition_card_refuses_to_sign(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy, CardKind.FACE_RECOGNITION)
    with pytest.raises(SecurityStatusNotSatisfied):
        reader.sign_with_user_key(b"challenge")


def test_face_recognition_card_has_no_signature_certificate(connect: Connect, card_copy: CardCopy) -> None:
    reader = reader_for(connect, card_copy, CardKind.FACE_RECOGNITION)
    with pytest.raises(NoSignatureCertificate):
        reader.read_signature_certificate(PASSWORD)
    with pytest.raises(NoSignatureCertificate):
        reader.read_signature_ca_certificate()
    with pytest.raises(NoSignatureCertificate):
        reader.signature_password_tries_left()


# -- one code path for both transports --


class Recording:
    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        return self.inner.transmit(apdu)


def full_session(reader: JPKIReader) -> None:
    reader.read_user_certificate()
    reader.read_user_ca_certificate()
    reader.user_pin_tries_left()
    reader.sign_with_user_key(b"challenge", pin=PIN)
    reader.read_signature_certificate(PASSWORD)
    reader.sign_with_signature_key(b"application", PASSWORD)


def test_pcsc_and_virtual_readers_send_the_same_commands(
    card_copy: CardCopy, fake_pcsc: Callable[..., list[FakeReader]]
) -> None:
    virtual = Recording(VirtualCardTransport(card_copy(CardKind.STANDARD)))
    full_session(JPKIReader(virtual))
    readers = fake_pcsc(card_copy(CardKind.STANDARD))
    pcsc = Recording(PcscTransport())
    full_session(JPKIReader(pcsc))
    assert pcsc.sent == virtual.sent
    assert readers[0].connections[0].sent == virtual.sent


# -- transport errors --


def test_virtual_reader_without_card_file_reports_card_absent(tmp_path: Path) -> None:
    with pytest.raises(CardAbsent):
        JPKIReader(VirtualCardTransport(tmp_path / "none.card")).read_user_certificate()


def test_card_taken_out_mid_session_reports_card_absent(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    reader = JPKIReader(VirtualCardTransport(path))
    reader.read_user_certificate()
    path.unlink()
    with pytest.raises(CardAbsent):
        reader.read_user_certificate()


def test_pcsc_without_pyscard_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "smartcard", None)
    monkeypatch.setitem(sys.modules, "smartcard.System", None)
    with pytest.raises(PcscUnavailable, match="pyscard"):
        PcscTransport()


def test_pcsc_without_readers_reports_reader_not_found(fake_pcsc: Callable[..., list[FakeReader]]) -> None:
    fake_pcsc()
    with pytest.raises(ReaderNotFound):
        JPKIReader(PcscTransport()).read_user_certificate()


def test_pcsc_picks_the_reader_by_name(
    card_copy: CardCopy, fake_pcsc: Callable[..., list[FakeReader]], pki: Pki
) -> None:
    readers = fake_pcsc(card_copy(CardKind.FACE_RECOGNITION), card_copy(CardKind.STANDARD))
    reader = JPKIReader(PcscTransport(reader_name="Reader 1"))
    assert reader.has_user_pin()
    assert readers[1].connections
    with pytest.raises(ReaderNotFound):
        JPKIReader(PcscTransport(reader_name="no such reader")).has_user_pin()


def test_pcsc_reader_without_card_reports_card_absent(
    tmp_path: Path, fake_pcsc: Callable[..., list[FakeReader]]
) -> None:
    fake_pcsc(tmp_path / "none.card")
    with pytest.raises(CardAbsent):
        JPKIReader(PcscTransport()).read_user_certificate()


def test_virtual_card_answers_match_what_the_reader_sees(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    reader = JPKIReader(VirtualCardTransport(path))
    assert reader.read_user_certificate() == VirtualCard.load(path).user_certificate_der
