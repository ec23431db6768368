"""The issuer's public repository over HTTP: CRLs per municipality, OCSP, and the CA certificates.

    GET  /crl/<municipality_code>.crl   application/pkix-crl (DER)
    POST /ocsp                          application/ocsp-request -> application/ocsp-response
    GET  /ocsp/<base64 request>         the same, for GET-style OCSP clients (RFC 6960 A.1)
    GET  /ca/root.der, /ca/intermediate.der   application/pkix-cert

A revocation shows in the CRL only `crl_lag` after it happened (a real CRL is published
periodically); OCSP answers from the current state at once. `refresh`, when given, runs before each CRL
and OCSP answer: the mock server passes the registry follower there, so a death or a move recorded in
the resident registry is revoked before anyone asks (auth_mock.registry_revocations).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Final
from urllib.parse import unquote

from cryptography.hazmat.primitives import serialization
from flask import Flask, Response, request

from auth_mock.issuer import Clock, Issuer, system_clock

_MUNICIPALITY_CODE: Final = re.compile(r"[0-9]{6}")
_MAX_OCSP_REQUEST: Final = 16 * 1024


def _text(message: str, status: int) -> Response:
    return Response(
        message + "\n", status=status, mimetype="text/plain", content_type="text/plain; charset=utf-8"
    )


def create_issuer_app(
    issuer: Issuer,
    *,
    crl_lag: timedelta = timedelta(0),
    clock: Clock = system_clock,
    refresh: Callable[[], object] | None = None,
) -> Flask:
    """A WSGI app serving the issuer's CRLs, OCSP responder and CA certificates.

    `refresh` is called before each CRL or OCSP answer (e.g. RegistryFollower.follow).
    """
    app = Flask("auth_mock.issuer_http")
    app.config["MAX_CONTENT_LENGTH"] = _MAX_OCSP_REQUEST

    @app.get("/crl/<code>.crl")
    def crl(code: str) -> Response:
        if not _MUNICIPALITY_CODE.fullmatch(code):
            return _text("地方公共団体コードは数字6桁です", 404)
        if refresh is not None:
            refresh()
        der = issuer.crl_der(code, clock(), lag=crl_lag)
        response = Response(der, mimetype="application/pkix-crl")
        response.headers["Cache-Control"] = "no-cache"
        return response

    def answer_ocsp(request_der: bytes) -> Response:
        if refresh is not None:
            refresh()
        der = issuer.ocsp_response_der(request_der, clock())
        response = Response(der, mimetype="application/ocsp-response")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.post("/ocsp")
    def ocsp_post() -> Response:
        if request.mimetype != "application/ocsp-request":
            return _text("Content-Type は application/ocsp-request にしてください", 415)
        return answer_ocsp(request.get_data(cache=False))

    @app.get("/ocsp/<path:encoded>")
    def ocsp_get(encoded: str) -> Response:
        try:
            request_der = base64.b64decode(unquote(encoded), validate=True)
        except (binascii.Error, ValueError):
            request_der = b""  # answered as malformedRequest, as OCSP clients expect
        return answer_ocsp(request_der)

    @app.get("/ca/root.der")
    def root_certificate() -> Response:
        der = issuer.root_certificate.public_bytes(serialization.Encoding.DER)
        return Response(der, mimetype="application/pkix-cert")

    @app.get("/ca/intermediate.der")
    def intermediate_certificate() -> Response:
        der = issuer.intermediate_certificate.public_bytes(serialization.Encoding.DER)
        return Response(der, mimetype="application/pkix-cert")

    return app
