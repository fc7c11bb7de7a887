"""``POST /oauth/token`` (client credentials + private_key_jwt) and the JWKS of our access tokens."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from gateway.api.auth import refused_unauthenticated, within_address_limit
from gateway.audit import AuditEvent
from gateway.identity.client_auth import ASSERTION_TYPE
from gateway.policy import Refusal
from gateway.services import services

bp = Blueprint("oauth", __name__)


@bp.post("/oauth/token")
def token() -> Response:
    svc = services()
    form = request.form
    claimed = form.get("client_id")
    within_address_limit("token requests", svc.config.token_requests_per_minute, "auth.token.refused")
    try:
        if form.get("grant_type") != "client_credentials":
            raise Refusal("unsupported-grant-type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise Refusal("invalid-request", f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise Refusal("invalid-request", "client_assertion is required (a JWT signed with the agency's client key)")
        agency = svc.client_auth.verify(assertion, claimed)
    except Refusal as refusal:
        # The client_id is what the request claimed, not who sent it: never the entry's actor.
        refused_unauthenticated("auth.token.refused", refusal, claimed_actor=claimed)
        raise
    issued = svc.tokens.issue(agency)
    with svc.db.write() as conn:
        svc.audit.append(conn, AuditEvent(event="auth.token.issued", outcome="ok", actor=agency))
    response = jsonify(
        {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in, "scope": issued.scope}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(services().tokens.jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
