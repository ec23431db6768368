"""The mock issuer: certificate profiles, expiry, revocation, CRL and OCSP."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from auth_mock.card import VirtualCard
from auth_mock.issuer import (
    OID_SEX,
    CardKind,
    IssuedCard,
    Issuer,
    IssuerNotInitialised,
    UnknownCard,
    certificate_not_after,
    certified_facts,
    fifth_birthday_after,
)
from auth_mock.reader import JPKIReader, VirtualCardTransport
from tests.unit.auth_mock.conftest import BASE_URL, NOW, PASSWORD, PIN, Pki, make_holder

JAPAN = ZoneInfo("Asia/Tokyo")
# RFC 5019 OCSP clients identify certificates by SHA-1 hashes; the hash identifies, it protects nothing.
CERT_ID_HASH = hashes.SHA1()  # noqa: S303


def user_certificate(card: IssuedCard) -> x509.Certificate:
    return x509.load_der_x509_certificate(VirtualCard.load(card.path).user_certificate_der)


def signature_certificate(card: IssuedCard) -> x509.Certificate:
    der = VirtualCard.load(card.path).signature_certificate_der
    assert der is not None
    return x509.load_der_x509_certificate(der)


def relying_party_verifier(issuer: Issuer, at: datetime) -> PolicyBuilder:
    # JPKI end-entity certificates have no SAN (user) or only otherName entries (signature), which
    # the web PKI defaults would demand; relying parties relax exactly that.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    return (
        PolicyBuilder()
        .store(Store([issuer.root_certificate]))
        .time(at)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
    )


def ocsp_request(issuer: Issuer, certificate: x509.Certificate, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer.intermediate_certificate, CERT_ID_HASH
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def ocsp_status(issuer: Issuer, certificate: x509.Certificate, at: datetime) -> ocsp.OCSPCertStatus:
    response = ocsp.load_der_ocsp_response(issuer.ocsp_response_der(ocsp_request(issuer, certificate), at))
    assert response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return response.certificate_status


def crl_serials(
    issuer: Issuer, municipality_code: str, at: datetime, lag: timedelta = timedelta(0)
) -> set[int]:
    crl = x509.load_der_x509_crl(issuer.crl_der(municipality_code, at, lag=lag))
    return {entry.serial_number for entry in crl}


# -- profiles --


def test_user_certificate_names_only_an_opaque_serial(pki: Pki) -> None:
    certificate = user_certificate(pki.cards[CardKind.STANDARD])
    attributes = {attribute.oid for attribute in certificate.subject}
    assert attributes == {NameOID.COUNTRY_NAME, NameOID.COMMON_NAME}
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert "R-" not in str(common_name)
    assert "尾花沢" not in str(common_name)
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_user_certificate_is_for_client_authentication(pki: Pki) -> None:
    certificate = user_certificate(pki.cards[CardKind.STANDARD])
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature


def test_certificates_point_to_their_municipality_crl_and_the_ocsp_responder(pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    for certificate in (user_certificate(card), signature_certificate(card)):
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [name.value for point in points for name in point.full_name or []] == [
            f"{BASE_URL}/crl/062120.crl"
        ]
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        ocsp_urls = [d.access_location.value for d in access if d.access_method == x509.OID_OCSP]
        assert ocsp_urls == [f"{BASE_URL}/ocsp"]


def test_signature_certificate_carries_the_four_facts_as_other_names(pki: Pki) -> None:
    facts = certified_facts(signature_certificate(pki.cards[CardKind.STANDARD]))
    assert facts.name == facts.name_alternative == "尾花沢\u3000花子"
    assert facts.sex == "female"
    assert facts.birth_date == date(1948, 9, 10)
    assert facts.address == facts.address_alternative == "山形県尾花沢市若葉町一丁目1番1号"


def test_sex_is_coded_as_iso_5218_in_a_utf8_string(pki: Pki) -> None:
    names = signature_certificate(pki.cards[CardKind.STANDARD]).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    sex = next(other for other in names.value.get_values_for_type(x509.OtherName) if other.type_id == OID_SEX)
    assert sex.value == b"\x0c\x012"  # UTF8String "2": female


def test_user_certificate_has_no_four_facts(pki: Pki) -> None:
    with pytest.raises(ValueError, match="署名用"):
        certified_facts(user_certificate(pki.cards[CardKind.STANDARD]))


def test_both_certificates_chain_to_the_root(pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    verifier = relying_party_verifier(pki.issuer, NOW).build_client_verifier()
    for certificate in (user_certificate(card), signature_certificate(card)):
        chain = verifier.verify(certificate, [pki.issuer.intermediate_certificate])
        assert chain.chain[-1] == pki.issuer.root_certificate


def test_issuer_key_files_are_private(pki: Pki) -> None:
    for name in (Issuer.ROOT_KEY, Issuer.INTERMEDIATE_KEY):
        assert stat.S_IMODE((pki.issuer.directory / name).stat().st_mode) == 0o600


def test_root_certificate_path_is_the_trust_anchor(pki: Pki) -> None:
    anchor = x509.load_pem_x509_certificate(pki.issuer.root_certificate_pem_path.read_bytes())
    assert anchor == pki.issuer.root_certificate


def test_loaded_issuer_knows_the_issued_cards(pki: Pki) -> None:
    again = Issuer.load(pki.issuer.directory)
    assert again.list_cards() == pki.issuer.list_cards()
    card = pki.cards[CardKind.STANDARD]
    assert again.get_card(card.card_id) == card


def test_creating_an_issuer_twice_is_refused(pki: Pki) -> None:
    with pytest.raises(FileExistsError):
        Issuer.create(pki.issuer.directory, base_url=BASE_URL, now=NOW)


def test_loading_an_empty_directory_says_there_is_no_issuer(tmp_path: Path) -> None:
    with pytest.raises(IssuerNotInitialised):
        Issuer.load(tmp_path)


# -- expiry --


@pytest.mark.parametrize(
    ("birth", "issued", "expected"),
    [
        (date(1950, 9, 10), date(2025, 6, 2), date(2029, 9, 10)),  # birthday later this year counts
        (date(1950, 3, 1), date(2025, 6, 2), date(2030, 3, 1)),  # birthday already past this year
        (date(1950, 6, 2), date(2025, 6, 2), date(2030, 6, 2)),  # a birthday on the issue day does not count
        (date(1948, 2, 29), date(2025, 6, 2), date(2030, 2, 28)),  # common year: 28 February
        (date(1948, 2, 29), date(2023, 6, 2), date(2028, 2, 29)),
    ],
)
def test_certificate_expires_on_the_fifth_birthday_after_issue(
    birth: date, issued: date, expected: date
) -> None:
    assert fifth_birthday_after(birth, issued) == expected


def test_expiry_is_the_end_of_the_birthday_in_japan() -> None:
    not_after = certificate_not_after(date(1950, 9, 10), NOW)
    assert not_after.astimezone(JAPAN) == datetime(2029, 9, 10, 23, 59, 59, tzinfo=JAPAN)
    assert not_after.tzinfo is UTC


def test_issued_card_expiry_matches_its_certificates(pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    assert user_certificate(card).not_valid_after_utc == card.not_after
    assert signature_certificate(card).not_valid_after_utc == card.not_after


def test_expired_kind_has_certificates_already_out_of_date(pki: Pki) -> None:
    card = pki.cards[CardKind.EXPIRED]
    assert user_certificate(card).not_valid_after_utc < NOW
    assert card.status(NOW) == "expired"
    with pytest.raises(VerificationError):
        relying_party_verifier(pki.issuer, NOW).build_client_verifier().verify(
            user_certificate(card), [pki.issuer.intermediate_certificate]
        )


def test_expire_re_signs_the_same_certificates_out_of_date(own_issuer: Issuer, tmp_path: Path) -> None:
    card = own_issuer.issue_card(
        make_holder(), pin=None, password=None, kind="face-recognition", out=tmp_path / "f.card", now=NOW
    )
    expired = own_issuer.expire_card(card.card_id, now=NOW)
    certificate = x509.load_der_x509_certificate(
        JPKIReader(VirtualCardTransport(card.path)).read_user_certificate()
    )
    assert certificate.serial_number == card.user_cert_serial
    assert certificate.not_valid_after_utc == expired.not_after < NOW
    assert fifth_birthday_after(date(1948, 9, 10), expired.issued_at.astimezone(JAPAN).date()) == (
        expired.not_after.astimezone(JAPAN).date()
    )


# -- kinds --


def test_face_recognition_kind_has_no_signature_certificate(pki: Pki) -> None:
    card = pki.cards[CardKind.FACE_RECOGNITION]
    assert card.sign_cert_serial is None
    assert VirtualCard.load(card.path).signature_certificate_der is None
    assert VirtualCard.load(card.path).user_pin_tries_left is None


def test_locked_kind_has_no_pin_tries_left(pki: Pki) -> None:
    assert VirtualCard.load(pki.cards[CardKind.LOCKED].path).user_pin_tries_left == 0


def test_revoked_kind_is_revoked_in_ocsp_and_crl(pki: Pki) -> None:
    card = pki.cards[CardKind.REVOKED]
    assert card.status(NOW) == "revoked"
    assert ocsp_status(pki.issuer, user_certificate(card), NOW) is ocsp.OCSPCertStatus.REVOKED
    assert card.user_cert_serial in crl_serials(pki.issuer, "062120", NOW)


# -- issuance errors --


@pytest.mark.parametrize(
    ("pin", "password", "message"),
    [
        ("123", PASSWORD, "数字4桁"),
        ("12a4", PASSWORD, "数字4桁"),
        (PIN, "short", "6〜16"),
        (PIN, None, "必要"),
    ],
)
def test_issue_refuses_bad_secrets(
    own_issuer: Issuer, tmp_path: Path, pin: str, password: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        own_issuer.issue_card(make_holder(), pin=pin, password=password, out=tmp_path / "x.card", now=NOW)
    assert not (tmp_path / "x.card").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"municipality_code": "06212"}, "6桁"),
        ({"sex": "unknown"}, "性別"),
        ({"birth_date": date(2030, 1, 1)}, "生年月日"),
        ({"address": ""}, "住所"),
    ],
)
def test_issue_refuses_impossible_holders(
    own_issuer: Issuer, tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        own_issuer.issue_card(
            make_holder(**overrides), pin=PIN, password=PASSWORD, out=tmp_path / "x.card", now=NOW
        )


def test_issue_refuses_an_unknown_kind(own_issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="種類"):
        own_issuer.issue_card(
            make_holder(), pin=PIN, password=PASSWORD, kind="gold", out=tmp_path / "x", now=NOW
        )


def test_issue_never_overwrites_a_card_file(own_issuer: Issuer, pki: Pki) -> None:
    with pytest.raises(FileExistsError):
        own_issuer.issue_card(
            make_holder(), pin=PIN, password=PASSWORD, out=pki.cards[CardKind.STANDARD].path, now=NOW
        )


def test_issue_needs_an_aware_time(own_issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="タイムゾーン"):
        own_issuer.issue_card(
            make_holder(),
            pin=PIN,
            password=PASSWORD,
            out=tmp_path / "x",
            now=datetime(2025, 6, 2),  # noqa: DTZ001
        )


# -- revocation --


def test_loss_revokes_both_certificates(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    revocations = own_issuer.revoke(card.card_id, "loss", NOW)
    assert {r.serial for r in revocations} == {card.user_cert_serial, card.sign_cert_serial}
    assert ocsp_status(own_issuer, user_certificate(card), NOW) is ocsp.OCSPCertStatus.REVOKED


def test_fact_change_revokes_only_the_signature_certificate(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke_signature_on_fact_change(card.registry_id, now=NOW)
    assert ocsp_status(own_issuer, signature_certificate(card), NOW) is ocsp.OCSPCertStatus.REVOKED
    assert ocsp_status(own_issuer, user_certificate(card), NOW) is ocsp.OCSPCertStatus.GOOD


def test_fact_change_cannot_revoke_a_user_certificate(own_issuer: Issuer, pki: Pki) -> None:
    with pytest.raises(ValueError, match="署名用"):
        own_issuer.revoke(pki.cards[CardKind.STANDARD].user_cert_serial, "fact_change", NOW)


def test_fact_change_on_a_face_recognition_card_is_refused(own_issuer: Issuer, pki: Pki) -> None:
    with pytest.raises(ValueError, match="署名用"):
        own_issuer.revoke(pki.cards[CardKind.FACE_RECOGNITION].card_id, "fact_change", NOW)


def test_death_revokes_every_certificate_of_the_resident(
    own_issuer: Issuer, pki: Pki, tmp_path: Path
) -> None:
    first = pki.cards[CardKind.FACE_RECOGNITION]
    second = own_issuer.issue_card(
        make_holder(registry_id=first.registry_id), pin=None, password=None, kind="face_recognition",
        out=tmp_path / "second.card", now=NOW,
    )  # fmt: skip
    revocations = own_issuer.revoke_for_death(first.registry_id, now=NOW)
    assert {r.serial for r in revocations} == {first.user_cert_serial, second.user_cert_serial}
    assert all(r.reason.value == "death" for r in revocations)


def test_revoking_one_certificate_by_serial(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    assert card.sign_cert_serial is not None
    revocations = own_issuer.revoke(card.sign_cert_serial, "loss", NOW)
    assert [r.certificate.value for r in revocations] == ["signature"]


def test_revoking_twice_keeps_the_first_record(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)
    assert own_issuer.revoke(card.card_id, "death", NOW + timedelta(days=1)) == []
    recorded = own_issuer.get_card(card.card_id)
    assert recorded is not None
    assert {r.reason.value for r in recorded.revocations} == {"loss"}


def test_revoking_an_unknown_card_is_refused(own_issuer: Issuer) -> None:
    with pytest.raises(UnknownCard):
        own_issuer.revoke("card-0000", "loss", NOW)
    with pytest.raises(UnknownCard):
        own_issuer.revoke(12345, "loss", NOW)


def test_unknown_reason_is_refused(own_issuer: Issuer, pki: Pki) -> None:
    with pytest.raises(ValueError, match="失効理由"):
        own_issuer.revoke(pki.cards[CardKind.STANDARD].card_id, "moved", NOW)


def test_revocation_without_a_time_takes_the_issuers_clock(own_issuer: Issuer, pki: Pki) -> None:
    (revocation, *_) = own_issuer.revoke(pki.cards[CardKind.STANDARD].card_id, "loss")
    assert revocation.revoked_at == NOW


# -- CRL --


def test_crl_is_signed_by_the_issuing_ca_and_names_its_distribution_point(pki: Pki) -> None:
    crl = x509.load_der_x509_crl(pki.issuer.crl_der("062120", NOW))
    public_key = pki.issuer.intermediate_certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert crl.is_signature_valid(public_key)
    point = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert point.critical
    assert [name.value for name in point.value.full_name or []] == [f"{BASE_URL}/crl/062120.crl"]
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > NOW


def test_crl_lists_revocations_with_their_reason(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)
    crl = x509.load_der_x509_crl(own_issuer.crl_der("062120", NOW))
    entry = crl.get_revoked_certificate_by_serial_number(card.user_cert_serial)
    assert entry is not None
    assert (
        entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        is x509.ReasonFlags.key_compromise
    )


def test_crl_of_another_municipality_does_not_list_these_cards(own_issuer: Issuer, pki: Pki) -> None:
    own_issuer.revoke(pki.cards[CardKind.STANDARD].card_id, "loss", NOW)
    assert crl_serials(own_issuer, "062031", NOW) == set()


def test_revocation_shows_in_the_crl_only_after_the_lag(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)
    lag = timedelta(hours=6)
    assert card.user_cert_serial not in crl_serials(own_issuer, "062120", NOW + timedelta(hours=5), lag)
    assert card.user_cert_serial in crl_serials(own_issuer, "062120", NOW + timedelta(hours=6), lag)


# -- OCSP --


def test_ocsp_answers_good_for_a_valid_certificate(pki: Pki) -> None:
    assert (
        ocsp_status(pki.issuer, user_certificate(pki.cards[CardKind.STANDARD]), NOW)
        is ocsp.OCSPCertStatus.GOOD
    )


def test_ocsp_answer_is_signed_by_the_issuing_ca_and_echoes_the_nonce(pki: Pki) -> None:
    certificate = user_certificate(pki.cards[CardKind.STANDARD])
    request = ocsp_request(pki.issuer, certificate, nonce=b"0123456789abcdef")
    response = ocsp.load_der_ocsp_response(pki.issuer.ocsp_response_der(request, NOW))
    public_key = pki.issuer.intermediate_certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    nonce = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    assert nonce == b"0123456789abcdef"
    assert response.serial_number == certificate.serial_number


def test_ocsp_reflects_a_revocation_at_once(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)
    response = ocsp.load_der_ocsp_response(
        own_issuer.ocsp_response_der(ocsp_request(own_issuer, user_certificate(card)), NOW)
    )
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == NOW
    assert response.revocation_reason is x509.ReasonFlags.key_compromise


def test_ocsp_before_the_revocation_time_answers_good(own_issuer: Issuer, pki: Pki) -> None:
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)
    assert (
        ocsp_status(own_issuer, user_certificate(card), NOW - timedelta(minutes=1))
        is ocsp.OCSPCertStatus.GOOD
    )


def test_ocsp_answers_unknown_for_a_serial_never_issued(pki: Pki) -> None:
    ca = pki.issuer.intermediate_certificate
    name_hash = hashes.Hash(hashes.SHA256())
    name_hash.update(ca.subject.public_bytes())
    key_hash = hashes.Hash(hashes.SHA256())
    key_hash.update(
        ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    )
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(name_hash.finalize(), key_hash.finalize(), 42, hashes.SHA256())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = ocsp.load_der_ocsp_response(pki.issuer.ocsp_response_der(request, NOW))
    assert response.certificate_status is ocsp.OCSPCertStatus.UNKNOWN


def test_ocsp_refuses_questions_about_another_ca(pki: Pki) -> None:
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate_by_hash(b"\x01" * 20, b"\x02" * 20, 42, CERT_ID_HASH)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    response = ocsp.load_der_ocsp_response(pki.issuer.ocsp_response_der(request, NOW))
    assert response.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_ocsp_answers_malformed_to_garbage(pki: Pki) -> None:
    response = ocsp.load_der_ocsp_response(pki.issuer.ocsp_response_der(b"not an ocsp request", NOW))
    assert response.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
