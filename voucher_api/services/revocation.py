"""Revocation of card certificates: OCSP first, a cached CRL when the responder cannot be reached.

Answers are cached per certificate serial for a configured time, so a busy day of boardings costs one
OCSP round trip per card, not one per ride. Responses are trusted only when signed by the certificate's
issuer (or a responder certificate that issuer delegated to with the OCSP-signing purpose).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from voucher_api.services.errors import DomainError, Refused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Answer:
    revoked: bool
    fresh_until: datetime


@dataclass
class _CachedCrl:
    crl: x509.CertificateRevocationList
    fetched_at: datetime


class RevocationUnknown(DomainError):
    status = 503


STALE_CRL_GRACE = timedelta(hours=24)
"""How long past its nextUpdate a CRL is still relied on while no newer one can be fetched. Beyond it
the answer is unknown (the counter asks to try later; synced offline records wait on the terminal):
an old CRL cannot show a card revoked since."""


class OcspCrlChecker:
    """Checks revocation over HTTP. Thread-safe; build once per process and share."""

    def __init__(self, http: httpx.Client, *, cache_for: timedelta = timedelta(minutes=5)) -> None:
        self._http = http
        self._cache_for = cache_for
        self._answers: dict[int, _Answer] = {}
        self._crls: dict[str, _CachedCrl] = {}
        self._lock = threading.Lock()

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> None:
        """Raise Refused('card.revoked') if revoked; RevocationUnknown when no source can answer."""
        cached = self._answers.get(certificate.serial_number)
        if cached is None or cached.fresh_until <= at:
            cached = self._lookup(certificate, issuer, at)
            with self._lock:
                self._answers[certificate.serial_number] = cached
        if cached.revoked:
            raise Refused("card.revoked")

    def known_revoked_serials(self) -> set[str]:
        """Every serial (hex) a cached CRL or an OCSP answer says is revoked."""
        serials = {format(serial, "x") for serial, answer in self._answers.items() if answer.revoked}
        for cached in list(self._crls.values()):
            serials.update(format(entry.serial_number, "x") for entry in cached.crl)
        return serials

    def _lookup(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> _Answer:
        try:
            revoked = self._ask_ocsp(certificate, issuer, at)
        except (httpx.HTTPError, ValueError, InvalidSignature, _OcspUnusable) as exc:
            log.warning(
                "OCSP unavailable for serial %x (%s); falling back to the CRL", certificate.serial_number, exc
            )
        else:
            if revoked is not None:
                return _Answer(revoked, at + self._cache_for)
        return _Answer(self._ask_crl(certificate, issuer, at), at + self._cache_for)

    def _ask_ocsp(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> bool | None:
        url = _ocsp_url(certificate)
        if url is None:
            return None
        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
        response = self._http.post(
            url,
            content=request.public_bytes(serialization.Encoding.DER),
            headers={"Content-Type": "application/ocsp-request"},
        )
        response.raise_for_status()
        answer = ocsp.load_der_ocsp_response(response.content)
        if answer.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _OcspUnusable(answer.response_status.name)
        _verify_ocsp_signature(answer, issuer)
        if answer.serial_number != certificate.serial_number:
            raise _OcspUnusable("answer for another certificate")
        if answer.next_update_utc is not None and answer.next_update_utc < at:
            raise _OcspUnusable("stale answer")
        if answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
            raise _OcspUnusable("responder does not know the certificate")
        return answer.certificate_status is ocsp.OCSPCertStatus.REVOKED

    def _ask_crl(self, certificate: x509.Certificate, issuer: x509.Certificate, at: datetime) -> bool:
        url = _crl_url(certificate)
        if url is None:
            raise RevocationUnknown("card.revocation_unknown")
        cached = self._crls.get(url)
        if cached is None or (cached.crl.next_update_utc or at) <= at:
            try:
                response = self._http.get(url)
                response.raise_for_status()
                crl = x509.load_der_x509_crl(response.content)
                if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                    raise ValueError("CRL signature does not verify")
                cached = _CachedCrl(crl, at)
                with self._lock:
                    self._crls[url] = cached
            except (httpx.HTTPError, ValueError) as exc:
                if cached is None:
                    log.error("no revocation source for serial %x: %s", certificate.serial_number, exc)
                    raise RevocationUnknown("card.revocation_unknown") from exc
                expired = cached.crl.next_update_utc
                if expired is not None and at > expired + STALE_CRL_GRACE:
                    log.error(
                        "the CRL from %s for %s is more than %s past its next update; serial %x unknown: %s",
                        cached.fetched_at,
                        url,
                        STALE_CRL_GRACE,
                        certificate.serial_number,
                        exc,
                    )
                    raise RevocationUnknown("card.revocation_unknown") from exc
                log.warning("using a stale CRL from %s for %s: %s", cached.fetched_at, url, exc)
        return cached.crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


class _OcspUnusable(Exception):
    pass


def _ocsp_url(certificate: x509.Certificate) -> str | None:
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in aia:
        if description.access_method == AuthorityInformationAccessOID.OCSP:
            return str(description.access_location.value)
    return None


def _crl_url(certificate: x509.Certificate) -> str | None:
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier):
                return str(name.value)
    return None


def _verify_ocsp_signature(answer: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """The issuer signs directly, or delegates to a responder certificate it issued for OCSP signing."""
    signer = issuer
    if answer.certificates:
        delegate = answer.certificates[0]
        delegate.verify_directly_issued_by(issuer)
        eku = delegate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise _OcspUnusable("responder certificate is not for OCSP signing")
        signer = delegate
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or answer.signature_hash_algorithm is None:
        raise _OcspUnusable("unsupported responder key")
    key.verify(
        answer.signature, answer.tbs_response_bytes, padding.PKCS1v15(), answer.signature_hash_algorithm
    )
