"""The development CA's OCSP responder, CRL and TSA over HTTP — registered in demo mode only.

Like the development identity provider, this exists so that a first run behaves like a real
deployment: development certificates name these URLs in their AIA and CDP extensions, the gateway
asks them exactly as it would ask the national CA's responder, and ``gateway keys revoke`` is seen by
the next verification.  A production configuration never registers this blueprint.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request

from gateway.trust import pki
from gateway.trust.dev_pki import DevOcspResponder, DevRevocations, build_dev_crl
from gateway.trust.dev_tsa import DevTsa

MAX_REQUEST_BYTES = 64 * 1024


def dev_pki_blueprint(ca: pki.Issued, revocations: DevRevocations, tsa: DevTsa) -> Blueprint:
    bp = Blueprint("dev_pki", __name__, url_prefix="/dev-pki")
    responder = DevOcspResponder(ca, revocations)

    def der(body: bytes, mimetype: str) -> Response:
        response = Response(body, mimetype=mimetype)
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.post("/ocsp")
    def ocsp_post() -> Response:
        return der(responder.respond(request.get_data()[:MAX_REQUEST_BYTES]), "application/ocsp-response")

    @bp.get("/crl")
    def crl() -> Response:
        return der(build_dev_crl(ca, revocations, now=datetime.now(UTC)), "application/pkix-crl")

    @bp.post("/tsa")
    def timestamp() -> Response:
        return der(tsa.respond(request.get_data()[:MAX_REQUEST_BYTES]), "application/timestamp-reply")

    @bp.get("/ca.crt")
    def ca_certificate() -> Response:
        return Response(pki.cert_pem(ca.cert), mimetype="application/x-pem-file")

    return bp
