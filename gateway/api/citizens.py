"""The citizen API: who am I, which procedures exist, file a dossier, follow my dossiers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from flask import Blueprint, Response, g, jsonify, request

from gateway.api.auth import bearer_token, refused_unauthenticated, within_address_limit
from gateway.audit import AuditEvent
from gateway.citizen.service import citizen_actor
from gateway.identity.jws import parse_compact, strict_json_object
from gateway.identity.national_id import CitizenIdentity
from gateway.json_input import read_body
from gateway.policy import Refusal
from gateway.services import services

bp = Blueprint("citizens", __name__)
P = ParamSpec("P")
R = TypeVar("R")


def _claimed_issuer(token: str) -> str | None:
    """The unverified ``iss``, only to say in the audit log which issuer a refused token claimed."""
    try:
        value = strict_json_object(parse_compact(token, "x").payload, "x", "claims").get("iss")
    except Refusal:
        return None
    return value[:255] if isinstance(value, str) else None


def authenticated_citizen() -> CitizenIdentity:
    svc = services()
    # Each authenticated call writes citizen.token.accepted: limited per address like any login.
    within_address_limit("citizen logins", svc.config.logins_per_minute, "citizen.token.refused")
    token = ""
    try:
        token = bearer_token("token-malformed")
        try:
            citizen = svc.national_id.verify(token)
        except Refusal as refusal:
            if refusal.code == "token-issuer" and _claimed_issuer(token) == svc.config.public_url.rstrip("/"):
                raise Refusal(
                    "token-issuer",
                    "this is an agency access token of this gateway; citizens' endpoints want the citizen's "
                    "national-ID token (in demo mode from /dev-idp/token, see the README's citizen walk-through)",
                ) from None
            raise
    except Refusal as refusal:
        refused_unauthenticated("citizen.token.refused", refusal, issuer=_claimed_issuer(token) if token else None)
        raise
    with svc.db.write() as conn:
        svc.audit.append(
            conn,
            AuditEvent(
                event="citizen.token.accepted",
                outcome="ok",
                actor=citizen_actor(citizen),
                issuer=citizen.issuer,
                reason=f"level {citizen.level}",
            ),
        )
    return citizen


def require_citizen(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        g.citizen = authenticated_citizen()
        return view(*args, **kwargs)

    return wrapper


@bp.get("/v1/me")
@require_citizen
def me() -> Response:
    return jsonify(g.citizen.public_view())


def _json_body() -> Any:
    """The body as JSON, or why it is not (the service refuses it, audited): duplicate members, nesting."""
    return read_body(request.get_data(cache=False), declared_json=request.is_json)


@bp.get("/v1/procedures")
def procedures() -> Response:
    return jsonify({"items": [p.public_view() for p in services().dossiers.catalog.values()]})


@bp.post("/v1/dossiers")
@require_citizen
def submit_dossier() -> Response:
    created = services().dossiers.submit(g.citizen, _json_body())
    response = jsonify(created)
    response.status_code = 202
    response.headers["Location"] = f"/v1/dossiers/{created['id']}"
    return response


@bp.get("/v1/dossiers")
@require_citizen
def list_dossiers() -> Response:
    return jsonify({"items": services().dossiers.list(g.citizen)})


@bp.get("/v1/dossiers/<dossier_id>")
@require_citizen
def get_dossier(dossier_id: str) -> Response:
    return jsonify(services().dossiers.view(g.citizen, dossier_id))


@bp.post("/v1/dossiers/<dossier_id>/rating")
@require_citizen
def rate_dossier(dossier_id: str) -> Response:
    """The citizen's satisfaction with a finished dossier: once, 1-5 and an optional comment."""
    response = jsonify(services().dossiers.rate(g.citizen, dossier_id, _json_body()))
    response.status_code = 201
    return response
