"""The virtual card answers the APDUs of DESIGN §5 like a real My Number card."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_mock.card import CardRemoved, VirtualCard
from auth_mock.issuer import CardKind
from tests.unit.auth_mock.apdu import (
    SELECT_JPKI,
    compute_signature,
    digest_info,
    read_binary,
    select_ef,
    sw,
    verify,
)
from tests.unit.auth_mock.conftest import PASSWORD, PIN, Pki

CardCopy = Callable[[CardKind], Path]

USER_CERT, USER_CA, USER_KEY, USER_PIN = 0x000A, 0x000B, 0x0017, 0x0018
SIGN_CERT, SIGN_CA, SIGN_KEY, SIGN_PASSWORD = 0x0001, 0x0002, 0x001A, 0x001B
TOKEN_INFO = 0x0006


def standard_card(card_copy: CardCopy, kind: CardKind = CardKind.STANDARD) -> VirtualCard:
    card = VirtualCard.load(card_copy(kind))
    assert sw(card.transmit(SELECT_JPKI)) == 0x9000
    return card


def read_whole(card: VirtualCard, fid: int) -> bytes:
    assert sw(card.transmit(select_ef(fid))) == 0x9000
    content = b""
    while True:
        response = card.transmit(read_binary(len(content), 256))
        if sw(response) == 0x6B00:
            return content
        assert sw(response) == 0x9000
        content += response[:-2]
        if len(response) - 2 < 256:
            return content


# -- selection --


def test_selecting_the_jpki_applet_succeeds(card_copy: CardCopy) -> None:
    card = VirtualCard.load(card_copy(CardKind.STANDARD))
    assert card.transmit(SELECT_JPKI) == b"\x90\x00"


def test_selecting_any_other_applet_answers_no_such_file(card_copy: CardCopy) -> None:
    card = VirtualCard.load(card_copy(CardKind.STANDARD))
    other_aid = bytes.fromhex("A0000000030000")
    assert sw(card.transmit(bytes([0x00, 0xA4, 0x04, 0x0C, len(other_aid)]) + other_aid)) == 0x6A82


def test_the_card_has_no_text_input_assist_applet(card_copy: CardCopy) -> None:
    card = VirtualCard.load(card_copy(CardKind.STANDARD))
    text_input_assist_aid = bytes.fromhex("D3921000310001010408")
    apdu = bytes([0x00, 0xA4, 0x04, 0x0C, len(text_input_assist_aid)]) + text_input_assist_aid
    assert card.transmit(apdu) == b"\x6a\x82"


def test_selecting_a_file_before_the_applet_answers_no_such_file(card_copy: CardCopy) -> None:
    card = VirtualCard.load(card_copy(CardKind.STANDARD))
    assert sw(card.transmit(select_ef(USER_CERT))) == 0x6A82


def test_selecting_an_unknown_file_answers_no_such_file(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    assert sw(card.transmit(select_ef(0x1234))) == 0x6A82


# -- READ BINARY --


def test_user_certificate_reads_in_chunks_as_issued(pki: Pki, card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    der = read_whole(card, USER_CERT)
    assert len(der) > 256  # more than one chunk
    assert x509.load_der_x509_certificate(der).serial_number == pki.cards[CardKind.STANDARD].user_cert_serial


def test_read_near_the_end_returns_the_remaining_bytes_with_9000(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    size = len(read_whole(card, USER_CERT))
    response = card.transmit(read_binary(size - 10, 0x40))
    assert len(response) == 12
    assert sw(response) == 0x9000


def test_read_past_the_end_answers_6b00(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    size = len(read_whole(card, USER_CERT))
    assert card.transmit(read_binary(size, 0x10)) == b"\x6b\x00"
    assert card.transmit(read_binary(size + 300, 0x10)) == b"\x6b\x00"


def test_read_without_a_selected_file_is_refused(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    assert sw(card.transmit(read_binary(0, 16))) == 0x6986


def test_pin_and_key_files_cannot_be_read(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    for fid in (USER_PIN, USER_KEY, SIGN_KEY, SIGN_PASSWORD):
        card.transmit(select_ef(fid))
        assert sw(card.transmit(read_binary(0, 16))) == 0x6981


def test_token_info_names_the_jpki_token(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    assert read_whole(card, TOKEN_INFO).strip() == b"JPKIAPICCTOKEN2"


def test_user_and_signature_ca_certificates_need_no_secret(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    for fid in (USER_CA, SIGN_CA):
        assert (
            x509.load_der_x509_certificate(read_whole(card, fid))
            .extensions.get_extension_for_class(x509.BasicConstraints)
            .value.ca
        )


def test_signature_certificate_is_readable_only_after_its_password(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(SIGN_CERT))
    assert sw(card.transmit(read_binary(0, 16))) == 0x6982
    card.transmit(select_ef(SIGN_PASSWORD))
    assert sw(card.transmit(verify(PASSWORD))) == 0x9000
    certificate = x509.load_der_x509_certificate(read_whole(card, SIGN_CERT))
    assert certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_user_pin_does_not_open_the_signature_certificate(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    assert sw(card.transmit(verify(PIN))) == 0x9000
    card.transmit(select_ef(SIGN_CERT))
    assert sw(card.transmit(read_binary(0, 16))) == 0x6982


# -- VERIFY --


def test_wrong_pin_reports_tries_left_then_locks(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    answers = [sw(card.transmit(verify("0000"))) for _ in range(3)]
    assert answers == [0x63C2, 0x63C1, 0x63C0]
    assert sw(card.transmit(verify(PIN))) == 0x6984  # the right PIN no longer opens it


def test_try_counter_query_costs_no_try(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    assert [sw(card.transmit(verify(None))) for _ in range(5)] == [0x63C3] * 5


def test_right_pin_resets_the_try_counter(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify("9999"))
    card.transmit(verify("9998"))
    assert sw(card.transmit(verify(PIN))) == 0x9000
    assert sw(card.transmit(verify(None))) == 0x63C3


def test_signature_password_allows_five_tries(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(SIGN_PASSWORD))
    assert sw(card.transmit(verify(None))) == 0x63C5
    assert sw(card.transmit(verify("WRONG1"))) == 0x63C4


def test_wrong_try_is_in_the_card_file_before_the_answer(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    card = VirtualCard.load(path)
    card.transmit(SELECT_JPKI)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify("0000"))
    assert VirtualCard.load(path).user_pin_tries_left == 2


def test_card_file_is_private_to_its_owner(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    card = VirtualCard.load(path)
    card.transmit(SELECT_JPKI)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify("0000"))  # rewrites the file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_verify_without_a_pin_file_selected_is_refused(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_CERT))
    assert sw(card.transmit(verify(PIN))) == 0x6986


# -- COMPUTE DIGITAL SIGNATURE --


def test_card_pads_the_digest_info_and_signs_with_pkcs1_v15(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    certificate = x509.load_der_x509_certificate(read_whole(card, USER_CERT))
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    card.transmit(select_ef(USER_KEY))
    response = card.transmit(compute_signature(digest_info(b"challenge")))
    assert sw(response) == 0x9000
    signature = response[:-2]
    assert len(signature) == 256
    public_key = certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, b"challenge", padding.PKCS1v15(), SHA256())


def test_signing_without_the_pin_is_refused(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_KEY))
    assert card.transmit(compute_signature(digest_info(b"x"))) == b"\x69\x82"


def test_signature_key_needs_the_signature_password_not_the_pin(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    card.transmit(select_ef(SIGN_KEY))
    assert sw(card.transmit(compute_signature(digest_info(b"x")))) == 0x6982
    card.transmit(select_ef(SIGN_PASSWORD))
    card.transmit(verify(PASSWORD))
    card.transmit(select_ef(SIGN_KEY))
    assert sw(card.transmit(compute_signature(digest_info(b"x")))) == 0x9000


def test_new_applet_selection_forgets_the_verified_pin(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    card.transmit(SELECT_JPKI)
    card.transmit(select_ef(USER_KEY))
    assert sw(card.transmit(compute_signature(digest_info(b"x")))) == 0x6982


def test_fresh_load_forgets_the_verified_pin(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    card = VirtualCard.load(path)
    card.transmit(SELECT_JPKI)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    again = VirtualCard.load(path)
    again.transmit(SELECT_JPKI)
    again.transmit(select_ef(USER_KEY))
    assert sw(again.transmit(compute_signature(digest_info(b"x")))) == 0x6982


def test_data_longer_than_the_key_allows_answers_6700(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    card.transmit(select_ef(USER_KEY))
    assert sw(card.transmit(compute_signature(b"\x01" * 246))) == 0x6700


def test_signing_with_a_certificate_file_selected_is_refused(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    card.transmit(select_ef(USER_CERT))
    assert sw(card.transmit(compute_signature(digest_info(b"x")))) == 0x6986


# -- malformed commands --


@pytest.mark.parametrize(
    ("apdu", "status"),
    [
        (bytes.fromhex("00A4050C020001"), 0x6A86),  # SELECT with an unknown P1
        (bytes.fromhex("00A40200020001"), 0x6A86),  # SELECT asking for FCI, which the applet does not give
        (bytes.fromhex("00B0810010"), 0x6A86),  # READ BINARY with a short EF identifier
        (bytes.fromhex("00200081"), 0x6A86),  # VERIFY with P2 other than 80
        (bytes.fromhex("802A0081020000"), 0x6A86),  # signature with P2 other than 80
        (bytes.fromhex("00A4020C03000A00"), 0x6700),  # a three-byte file identifier
        (bytes.fromhex("00A4"), 0x6700),  # shorter than a header
        (bytes.fromhex("00A4020C050001"), 0x6700),  # Lc says 5, two bytes follow
        (bytes.fromhex("00B00000"), 0x6700),  # READ BINARY without Le
        (bytes.fromhex("00CA000000"), 0x6D00),  # GET DATA: not an instruction of this applet
        (bytes.fromhex("A0A4040C00"), 0x6E00),  # an unknown class byte
    ],
)
def test_malformed_commands_get_their_status_word(card_copy: CardCopy, apdu: bytes, status: int) -> None:
    card = standard_card(card_copy)
    assert card.transmit(apdu) == status.to_bytes(2, "big")


@settings(max_examples=200)
@given(apdu=st.binary(max_size=300))
def test_any_command_gets_a_status_word_and_never_crashes(pki: Pki, apdu: bytes) -> None:
    card = VirtualCard.load(pki.cards[CardKind.STANDARD].path)
    card.transmit(SELECT_JPKI)
    response = card.transmit(apdu)
    assert len(response) >= 2
    assert response[-2] in (0x90, 0x61, 0x63, 0x67, 0x69, 0x6A, 0x6B, 0x6D, 0x6E)


# -- kinds of cards --


def test_face_recognition_card_has_no_pin_and_no_signature_files(card_copy: CardCopy) -> None:
    card = standard_card(card_copy, CardKind.FACE_RECOGNITION)
    for fid in (USER_PIN, SIGN_CERT, SIGN_CA, SIGN_KEY, SIGN_PASSWORD):
        assert sw(card.transmit(select_ef(fid))) == 0x6A82


def test_face_recognition_card_shows_its_user_certificate(card_copy: CardCopy) -> None:
    card = standard_card(card_copy, CardKind.FACE_RECOGNITION)
    assert x509.load_der_x509_certificate(read_whole(card, USER_CERT))


def test_face_recognition_card_refuses_to_sign(card_copy: CardCopy) -> None:
    card = standard_card(card_copy, CardKind.FACE_RECOGNITION)
    card.transmit(select_ef(USER_KEY))
    assert sw(card.transmit(compute_signature(digest_info(b"x")))) == 0x6982


def test_locked_card_counts_zero_and_refuses_the_right_pin(card_copy: CardCopy) -> None:
    card = standard_card(card_copy, CardKind.LOCKED)
    card.transmit(select_ef(USER_PIN))
    assert sw(card.transmit(verify(None))) == 0x63C0
    assert sw(card.transmit(verify(PIN))) == 0x6984


# -- the card as a file --


def test_counter_unlock_by_another_process_reaches_a_loaded_card(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.LOCKED)
    in_reader = VirtualCard.load(path)
    VirtualCard.load(path).reset_user_pin()
    in_reader.transmit(SELECT_JPKI)
    in_reader.transmit(select_ef(USER_PIN))
    assert sw(in_reader.transmit(verify(PIN))) == 0x9000


def test_counter_can_set_a_new_pin(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    VirtualCard.load(path).reset_user_pin("4321")
    card = standard_card(lambda _kind: path)
    card.transmit(select_ef(USER_PIN))
    assert sw(card.transmit(verify(PIN))) == 0x63C2
    assert sw(card.transmit(verify("4321"))) == 0x9000


def test_counter_refuses_a_new_pin_that_is_not_four_digits(card_copy: CardCopy) -> None:
    with pytest.raises(ValueError, match="数字4桁"):
        VirtualCard.load(card_copy(CardKind.STANDARD)).reset_user_pin("12345")


def test_card_taken_out_of_the_reader_raises_card_removed(card_copy: CardCopy) -> None:
    path = card_copy(CardKind.STANDARD)
    card = VirtualCard.load(path)
    path.unlink()
    with pytest.raises(CardRemoved):
        card.transmit(SELECT_JPKI)


def test_reset_clears_the_session(card_copy: CardCopy) -> None:
    card = standard_card(card_copy)
    card.transmit(select_ef(USER_PIN))
    card.transmit(verify(PIN))
    assert card.reset()  # the ATR
    assert sw(card.transmit(select_ef(USER_KEY))) == 0x6A82  # no applet selected any more
