"""The issuer follows the registry: a death revokes both certificates, a change of the four facts the
signature certificate only (DESIGN §5), seen in OCSP and the CRL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from auth_mock.card import VirtualCard
from auth_mock.cli import CliEnvironment, main
from auth_mock.issuer import CardHolder, IssuedCard, Issuer
from auth_mock.registry import REFERENCE_DATE, Registry, RegistryPerson
from auth_mock.registry_revocations import RegistryFollower
from auth_mock.server import create_mock_services
from tests.unit.auth_mock.conftest import NOW, PASSWORD, PIN

DAY = date(2026, 5, 10)


@pytest.fixture(scope="module")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("registry") / "registry.sqlite3"
    Registry.generate(path, size=60, seed=11).close()
    return path


@pytest.fixture
def registry(registry_template: Path, tmp_path: Path) -> Iterator[Registry]:
    copy = tmp_path / "registry.sqlite3"
    copy.write_bytes(registry_template.read_bytes())
    with Registry.open(copy) as reg:
        yield reg


@dataclass
class Holder:
    person: RegistryPerson
    card: IssuedCard


def adult(registry: Registry, n: int = 0) -> RegistryPerson:
    adults = [p for p in registry.iter_people() if p.status == "resident" and p.age_on(REFERENCE_DATE) >= 30]
    return adults[n]


def issue_for(issuer: Issuer, person: RegistryPerson, out: Path) -> IssuedCard:
    return issuer.issue_card(CardHolder.from_person(person), pin=PIN, password=PASSWORD, out=out, now=NOW)


@pytest.fixture
def holder(own_issuer: Issuer, registry: Registry, tmp_path: Path) -> Holder:
    person = adult(registry)
    return Holder(person, issue_for(own_issuer, person, tmp_path / "holder.card"))


def certificates(card: IssuedCard) -> tuple[x509.Certificate, x509.Certificate]:
    virtual = VirtualCard.load(card.path)
    assert virtual.signature_certificate_der is not None
    return (
        x509.load_der_x509_certificate(virtual.user_certificate_der),
        x509.load_der_x509_certificate(virtual.signature_certificate_der),
    )


def ocsp_request(issuer: Issuer, certificate: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate, issuer.intermediate_certificate, hashes.SHA256()
    )
    return builder.build().public_bytes(serialization.Encoding.DER)


def ocsp_answer(issuer: Issuer, certificate: x509.Certificate) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(issuer.ocsp_response_der(ocsp_request(issuer, certificate), NOW))


def test_a_move_revokes_the_signature_certificate_and_keeps_the_user_certificate(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    registry.record_change(
        "moved_within",
        holder.person.registry_id,
        effective_on=DAY,
        address="山形県尾花沢市大字宮沢9番地",
        district_code="02",
    )
    revoked = RegistryFollower(own_issuer, registry).follow()
    assert [(r.certificate.value, r.reason.value) for r in revoked] == [("signature", "fact_change")]
    user, signature = certificates(holder.card)
    signature_answer = ocsp_answer(own_issuer, signature)
    assert signature_answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert signature_answer.revocation_reason is x509.ReasonFlags.affiliation_changed
    assert ocsp_answer(own_issuer, user).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_death_revokes_both_certificates_in_ocsp_and_the_crl(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    registry.record_change("died", holder.person.registry_id, effective_on=DAY)
    RegistryFollower(own_issuer, registry).follow()
    for certificate in certificates(holder.card):
        answer = ocsp_answer(own_issuer, certificate)
        assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
        assert answer.revocation_reason is x509.ReasonFlags.cessation_of_operation
    crl = x509.load_der_x509_crl(own_issuer.crl_der(holder.card.municipality_code, NOW))
    listed = {entry.serial_number for entry in crl}
    assert {holder.card.user_cert_serial, holder.card.sign_cert_serial} <= listed


def test_a_name_change_revokes_the_signature_certificate(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    registry.record_change(
        "name_changed",
        holder.person.registry_id,
        effective_on=DAY,
        family_name="最上",
        family_name_kana="モガミ",
    )
    RegistryFollower(own_issuer, registry).follow()
    user, signature = certificates(holder.card)
    assert ocsp_answer(own_issuer, signature).certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert ocsp_answer(own_issuer, user).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_moving_out_revokes_the_signature_certificate(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    registry.record_change("moved_out", holder.person.registry_id, effective_on=DAY)  # address unchanged
    revoked = RegistryFollower(own_issuer, registry).follow()
    assert [r.certificate.value for r in revoked] == ["signature"]


def test_a_new_household_at_the_same_address_revokes_nothing(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    # 世帯分離: a new household, the same address; none of the four facts changes.
    registry.record_change(
        "moved_within",
        holder.person.registry_id,
        effective_on=DAY,
        address=holder.person.address,
        district_code=holder.person.district_code,
    )
    assert RegistryFollower(own_issuer, registry).follow() == []
    _, signature = certificates(holder.card)
    assert ocsp_answer(own_issuer, signature).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_a_card_issued_after_an_earlier_move_stays_valid(
    own_issuer: Issuer, registry: Registry, tmp_path: Path
) -> None:
    person = adult(registry, 1)
    moved = registry.record_change(
        "moved_within",
        person.registry_id,
        effective_on=DAY,
        address="山形県尾花沢市大字玉野7番地",
        district_code="03",
    )
    card = issue_for(own_issuer, moved.person, tmp_path / "new.card")  # issued with the new address
    assert RegistryFollower(own_issuer, registry).follow() == []
    assert not own_issuer.cards_of(person.registry_id)[0].revocations
    assert card.revocations == ()


def test_each_change_is_applied_once_and_the_cursor_outlives_the_follower(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    first = RegistryFollower(own_issuer, registry)
    registry.record_change("died", holder.person.registry_id, effective_on=DAY)
    assert len(first.follow()) == 2
    assert first.follow() == []
    again = RegistryFollower(Issuer.load(own_issuer.directory, clock=lambda: NOW), registry)
    assert again.cursor() == first.cursor() > 0
    assert again.follow() == []


def test_the_mock_server_follows_the_registry_before_answering_ocsp(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    app = create_mock_services(own_issuer.directory, registry.path)
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://mock")
    user, signature = certificates(holder.card)

    def status(certificate: x509.Certificate) -> ocsp.OCSPCertStatus:
        response = client.post(
            "/ocsp",
            content=ocsp_request(own_issuer, certificate),
            headers={"Content-Type": "application/ocsp-request"},
        )
        return ocsp.load_der_ocsp_response(response.content).certificate_status

    assert status(signature) is ocsp.OCSPCertStatus.GOOD
    registry.record_change("died", holder.person.registry_id, effective_on=DAY)  # no one calls follow()
    assert status(user) is ocsp.OCSPCertStatus.REVOKED
    assert status(signature) is ocsp.OCSPCertStatus.REVOKED


def test_mock_card_follow_registry_revokes_and_reports(
    own_issuer: Issuer, registry: Registry, holder: Holder
) -> None:
    registry.record_change("died", holder.person.registry_id, effective_on=DAY)
    result = CliRunner().invoke(
        main,
        [
            *("--issuer-dir", str(own_issuer.directory), "--registry", str(registry.path)),
            "follow-registry",
        ],
        obj=CliEnvironment(clock=lambda: NOW),
    )
    assert result.exit_code == 0, result.output
    assert "失効 2件" in result.output
    assert own_issuer.cards_of(holder.person.registry_id)[0].user_certificate_revoked
