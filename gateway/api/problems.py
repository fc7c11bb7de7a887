"""RFC 9457 problem details: every refusal gets a stable ``code``, a title, a human ``detail``.

The table below is the only place a refusal code meets an HTTP status; domain code raises
:class:`~gateway.policy.Refusal` and never thinks about HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.audit.checkpoints import LogInconsistent
from gateway.identity.state import StateUnavailable
from gateway.policy import RateLimited, Refusal
from gateway.store.db import DatabaseUnavailable

PROBLEM_TYPE = "urn:vn-gov:interconnect-gateway:problem:"

# code -> (HTTP status, title)
CODES: dict[str, tuple[int, str]] = {
    "too-large": (413, "Request body too large"),
    # Answered by the HTTP front (gateway.serving) before the app sees the request.
    "malformed-request": (400, "Malformed HTTP request"),
    "uri-too-long": (414, "Request target too long"),
    "headers-too-large": (431, "Request header fields too large"),
    "request-timeout": (408, "Request not received in time"),
    "too-many-connections": (503, "Too many connections"),
    "xml-too-large": (413, "Document too large"),
    "xml-malformed": (400, "Malformed XML"),
    "xml-forbidden": (400, "Forbidden XML construct"),
    "schema-invalid": (422, "Document does not match the edXML schema"),
    "document-id-invalid": (422, "DocumentId is not in the sender's form"),
    "sender-mismatch": (403, "Caller is not the sending agency"),
    "signature-missing": (422, "Document is not signed"),
    "signature-ambiguous": (422, "More than one signature"),
    "signature-misplaced": (422, "Signature is not where the profile requires"),
    "signature-profile": (422, "Signature does not follow the edXML signature profile"),
    "signature-algorithm": (422, "Signature algorithm not allowed"),
    "signature-invalid": (422, "Signature does not verify"),
    "certificate-not-registered": (422, "Signing certificate is not registered to the sender"),
    "certificate-untrusted": (422, "Signing certificate is not trusted"),
    "certificate-expired": (422, "Signing certificate is outside its validity period"),
    "certificate-weak-key": (422, "Signing key is too weak"),
    "certificate-usage": (422, "Certificate may not sign documents"),
    "certificate-revoked": (422, "Signing certificate is revoked"),
    "certificate-status-unknown": (422, "Signing certificate's revocation status cannot be established"),
    "certificate-exists": (409, "Certificate already registered"),
    "certificate-not-found": (404, "Certificate not registered"),
    "ocsp-malformed": (422, "OCSP response is malformed"),
    "ocsp-error": (422, "OCSP responder refused the request"),
    "ocsp-wrong-certificate": (422, "OCSP response is about another certificate"),
    "ocsp-unauthorized-responder": (422, "OCSP response signed by an unauthorised responder"),
    "ocsp-signature": (422, "OCSP response signature does not verify"),
    "ocsp-stale": (422, "OCSP response is not fresh"),
    "ocsp-nonce": (422, "OCSP response nonce does not match the request"),
    "ocsp-unavailable": (422, "OCSP responder unavailable"),
    "crl-malformed": (422, "CRL is malformed"),
    "crl-wrong-issuer": (422, "CRL is from another issuer"),
    "crl-signature": (422, "CRL signature does not verify"),
    "crl-stale": (422, "CRL is not fresh"),
    "crl-unavailable": (422, "CRL unavailable"),
    "crl-unsupported": (422, "CRL kind not supported (delta, partitioned or indirect)"),
    "timestamp-unavailable": (503, "Timestamp authority unavailable past the failure period"),
    "evidence-not-ready": (409, "Evidence not complete yet"),
    "state-secret": (403, "State secrets may not be exchanged"),
    "unknown-agency": (422, "Unknown agency"),
    "agency-disabled": (422, "Agency is disabled"),
    "not-permitted": (403, "Not permitted"),
    "duplicate-document-id": (409, "DocumentId already used with different content"),
    "original-not-found": (422, "The document answered is unknown"),
    "document-not-found": (404, "Document not found"),
    "invalid-request": (400, "Invalid request"),
    "unsupported-grant-type": (400, "Unsupported grant type"),
    "invalid-client": (401, "Client authentication failed"),
    "invalid-token": (401, "Access token missing or invalid"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "database-unavailable": (503, "Database unavailable"),
    "state-unavailable": (503, "Shared state unavailable"),
    "checkpoint-pending": (503, "No checkpoint signed yet"),
    "rate-limited": (429, "Too many requests"),
    "not-an-auditor": (403, "Auditor role required"),
    "csrf-failed": (403, "Form not accepted"),
    "audit-log-inconsistent": (503, "The audit log cannot be signed"),
    "metrics-token-required": (403, "Metrics need a token on this gateway"),
    "metrics-unauthorized": (401, "Metrics token missing or wrong"),
    "not-an-operator": (403, "Operator role required"),
    "not-dead-lettered": (409, "Delivery is not dead-lettered"),
    "export-empty": (404, "Nothing to export"),
    "workbench-unavailable": (503, "Workbench login is not configured"),
    "workbench-login-required": (401, "Log in to the workbench"),
    "export-unavailable": (503, "Export not possible yet"),
    "token-malformed": (401, "National-ID token is malformed"),
    "token-type": (401, "National-ID token type not accepted"),
    "token-issuer": (401, "National-ID token issuer not trusted"),
    "token-audience": (401, "National-ID token is not for this gateway"),
    "token-expired": (401, "National-ID token expired"),
    "token-not-yet-valid": (401, "National-ID token not yet valid"),
    "token-nonce": (401, "National-ID token nonce mismatch"),
    "token-replayed": (401, "National-ID token already used"),
    "token-key": (401, "No acceptable key for the national-ID token"),
    "token-signature": (401, "National-ID token signature does not verify"),
    "token-claims": (401, "National-ID token claims malformed"),
    "token-level": (401, "Unknown level of assurance"),
    "personal-id-invalid": (401, "Personal ID number is not well-formed"),
    "issuer-unavailable": (503, "National-ID issuer keys unavailable"),
    "level-insufficient": (403, "Identity assurance level too low for this procedure"),
    "unknown-procedure": (422, "Unknown administrative procedure"),
    "dossier-invalid": (422, "Dossier request is invalid"),
    "dossiers-unavailable": (503, "Dossiers are not enabled on this gateway"),
    "dossier-not-found": (404, "Dossier not found"),
    "dossier-not-finished": (409, "Dossier is not finished yet"),
    "rating-invalid": (422, "Rating is invalid"),
    "rating-exists": (409, "Dossier was already rated"),
    "internal-error": (500, "Internal error"),
}

# OAuth 2.0 (RFC 6749 §5.2) error names for the token endpoint, alongside our code.
OAUTH_ERRORS = {
    "invalid-client": "invalid_client",
    "invalid-request": "invalid_request",
    "unsupported-grant-type": "unsupported_grant_type",
}


# Werkzeug's own descriptions ("The requested URL was not found on the server. If you entered the URL
# manually please check your spelling and try again.") replaced by ours, which the workbench translates.
HTTP_DETAILS = {
    "not-found": "nothing is at this address: check it, or start again from the links on the page",
    "method-not-allowed": "this address does not take that method",
}


def problem(
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    worded: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """The problem+json answer; a page for people where one is registered for the path (``worded``: the
    detail in each of its languages, when the refusal has them)."""
    status, title = CODES.get(code, (400, code.replace("-", " ").capitalize()))
    # Pages for people (the workbench under /audit/) show the same code and detail as an HTML page.
    negotiated = False
    for prefix, render in current_app.extensions.get("gateway.error_pages", {}).items():
        if request.path.startswith(prefix):
            negotiated = True
            page = render(code, title, detail, status, worded=worded)
            if page is not None:
                for name, value in (headers or {}).items():
                    page.headers[name] = value
                return page  # type: ignore[no-any-return]
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "instance": request.path,
    }
    if request.path.startswith("/oauth/") and code in OAUTH_ERRORS:
        body["error"] = OAUTH_ERRORS[code]
        body["error_description"] = detail
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    response.headers["Cache-Control"] = "no-store"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if code != "invalid-client" else "Bearer"
    if status == 503:
        response.headers["Retry-After"] = "5"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    if negotiated:
        response.vary.add("Accept")  # the same URL answers a browser with a page
    return response


def register_error_handlers(app: Flask) -> None:
    @app.before_request
    def _refuse_nul() -> None:
        """No text column of ours (and none of PostgreSQL's) can hold NUL; a URL carrying one is malformed."""
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            raise Refusal("invalid-request", "the URL contains a NUL character")

    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal) -> Response:
        if isinstance(exc, RateLimited):
            return problem(exc.code, exc.reason, headers={"Retry-After": str(max(1, exc.retry_after))})
        return problem(exc.code, exc.reason, worded=getattr(exc, "worded", None))

    @app.errorhandler(DatabaseUnavailable)
    def _database(_exc: DatabaseUnavailable) -> Response:
        app.logger.error("database unavailable")
        return problem("database-unavailable", "the database cannot be reached; nothing was stored, retry later")

    @app.errorhandler(StateUnavailable)
    def _state(exc: StateUnavailable) -> Response:
        app.logger.error("shared state unavailable: %s", exc)
        return problem(
            "state-unavailable", "single-use checks cannot be made right now; nothing was accepted, retry shortly"
        )

    @app.errorhandler(LogInconsistent)
    def _log_inconsistent(exc: LogInconsistent) -> Response:
        app.logger.critical("audit log inconsistent: %s", exc)
        return problem("audit-log-inconsistent", f"{exc}; nothing was signed")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 415: "unsupported-media-type"}.get(
            exc.code or 400, "invalid-request"
        )
        default = exc.description == type(exc).description
        response = problem(code, HTTP_DETAILS.get(code, exc.name) if default else exc.description or exc.name)
        response.status_code = exc.code or 400
        for name, value in exc.get_headers():  # e.g. Allow on a 405 (RFC 9110 §15.5.6)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        return problem("internal-error", "an unexpected error occurred; it has been logged with the request id")
