"""The issuer's CRL and OCSP over HTTP."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from flask import Flask
from werkzeug.serving import make_server

from auth_mock.card import VirtualCard
from auth_mock.issuer import CardKind, Issuer
from auth_mock.issuer_http import create_issuer_app
from tests.unit.auth_mock.conftest import NOW, Pki

CERT_ID_HASH = hashes.SHA1()  # noqa: S303 -- RFC 5019 CertIDs use SHA-1 to identify, not to protect


class MovableClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def ocsp_request_der(issuer: Issuer, card_kind: CardKind, pki: Pki) -> bytes:
    certificate = x509.load_der_x509_certificate(
        VirtualCard.load(pki.cards[card_kind].path).user_certificate_der
    )
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(certificate, issuer.intermediate_certificate, CERT_ID_HASH)
        .build()
        .public_bytes(serialization.Encoding.DER)
    )


@pytest.fixture
def app(pki: Pki) -> Flask:
    return create_issuer_app(pki.issuer, crl_lag=timedelta(0), clock=lambda: NOW)


def test_crl_is_served_as_pkix_crl(app: Flask, pki: Pki) -> None:
    response = app.test_client().get("/crl/062120.crl")
    assert response.status_code == 200
    assert response.mimetype == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.data)
    assert crl.get_revoked_certificate_by_serial_number(pki.cards[CardKind.REVOKED].user_cert_serial)


def test_crl_for_a_malformed_municipality_code_is_not_found(app: Flask) -> None:
    assert app.test_client().get("/crl/0621.crl").status_code == 404


def test_crl_shows_a_revocation_only_after_the_lag(own_issuer: Issuer, pki: Pki) -> None:
    clock = MovableClock(NOW)
    client = create_issuer_app(own_issuer, crl_lag=timedelta(hours=2), clock=clock).test_client()
    card = pki.cards[CardKind.STANDARD]
    own_issuer.revoke(card.card_id, "loss", NOW)

    clock.now = NOW + timedelta(hours=1)
    early = x509.load_der_x509_crl(client.get("/crl/062120.crl").data)
    clock.now = NOW + timedelta(hours=2)
    late = x509.load_der_x509_crl(client.get("/crl/062120.crl").data)

    assert early.get_revoked_certificate_by_serial_number(card.user_cert_serial) is None
    assert late.get_revoked_certificate_by_serial_number(card.user_cert_serial) is not None


def test_ocsp_answers_at_once_despite_the_crl_lag(own_issuer: Issuer, pki: Pki) -> None:
    client = create_issuer_app(own_issuer, crl_lag=timedelta(hours=2), clock=lambda: NOW).test_client()
    own_issuer.revoke(pki.cards[CardKind.STANDARD].card_id, "loss", NOW)
    response = client.post(
        "/ocsp",
        data=ocsp_request_der(own_issuer, CardKind.STANDARD, pki),
        content_type="application/ocsp-request",
    )
    assert response.mimetype == "application/ocsp-response"
    assert ocsp.load_der_ocsp_response(response.data).certificate_status is ocsp.OCSPCertStatus.REVOKED


def test_ocsp_by_get_answers_like_post(app: Flask, pki: Pki) -> None:
    encoded = quote(base64.b64encode(ocsp_request_der(pki.issuer, CardKind.STANDARD, pki)).decode(), safe="")
    response = app.test_client().get(f"/ocsp/{encoded}")
    assert ocsp.load_der_ocsp_response(response.data).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_ocsp_by_get_with_garbage_answers_malformed_request(app: Flask) -> None:
    response = app.test_client().get("/ocsp/%21%21%21")
    assert (
        ocsp.load_der_ocsp_response(response.data).response_status
        is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_ocsp_post_with_another_content_type_is_refused(app: Flask) -> None:
    response = app.test_client().post("/ocsp", data=b"x", content_type="application/json")
    assert response.status_code == 415
    assert "application/ocsp-request" in response.get_data(as_text=True)


def test_ca_certificates_are_published(app: Flask, pki: Pki) -> None:
    client = app.test_client()
    root = client.get("/ca/root.der")
    intermediate = client.get("/ca/intermediate.der")
    assert root.mimetype == "application/pkix-cert"
    assert x509.load_der_x509_certificate(root.data) == pki.issuer.root_certificate
    assert x509.load_der_x509_certificate(intermediate.data) == pki.issuer.intermediate_certificate


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_crl_distribution_point_in_the_certificate_is_fetchable_over_http(served: str, pki: Pki) -> None:
    certificate = x509.load_der_x509_certificate(
        VirtualCard.load(pki.cards[CardKind.STANDARD].path).user_certificate_der
    )
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    url = next(name.value for point in points for name in point.full_name or [])
    path = url.removeprefix(pki.issuer.base_url)
    response = httpx.get(served + path)
    assert response.headers["content-type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(response.content).issuer == pki.issuer.intermediate_certificate.subject
