"""Auditors log in to the workbench with national electronic identity.

The workbench is an OpenID Connect relying party of the national-ID issuer (the development
provider in demo mode): authorization code with PKCE S256 and ``state``, the code exchanged
server-side, and the access token checked by the very verifier the API uses.  Whether that person
is an auditor is decided by the deployment's configuration, never by the issuer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

import requests
from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.api.auditors import require_role_level
from gateway.citizen.service import citizen_actor
from gateway.identity.jwks import fetch_json
from gateway.policy import Refusal
from gateway.services import services
from gateway.web.blueprint import bp, page

DEMO_CLIENT_ID = "audit-workbench"
ISSUER_TIMEOUT = 5.0


def _provider() -> tuple[str, str]:
    """The issuer auditors log in at and the workbench's client id there.

    Demo mode uses the development provider; a deployment names its national-ID issuer's client
    for the workbench with ``workbench_client_id`` in that issuer's ``[[issuers]]`` table.
    """
    config = services().config
    if config.demo:
        return config.dev_idp_issuer, DEMO_CLIENT_ID
    for table in config.issuers:
        if table.get("workbench_client_id"):
            return str(table["issuer"]), str(table["workbench_client_id"])
    raise Refusal(
        "workbench-unavailable",
        "give the national-ID issuer's [[issuers]] table a workbench_client_id registered at that issuer",
    )


def _issuer_metadata() -> dict[str, Any]:
    issuer = _provider()[0].rstrip("/")
    try:
        return fetch_json(requests.Session(), issuer + "/.well-known/openid-configuration", ISSUER_TIMEOUT)[0]
    except (requests.RequestException, ValueError) as exc:
        raise Refusal("issuer-unavailable", f"the national-ID issuer cannot be reached ({exc}); try again") from None


def _redirect_uri() -> str:
    return services().config.public_url.rstrip("/") + url_for("web.callback")


def _exchange(code: str, verifier: str) -> str:
    """The authorization code for an access token, at the issuer's token endpoint."""
    try:
        answer = requests.post(
            _issuer_metadata()["token_endpoint"],
            timeout=ISSUER_TIMEOUT,
            allow_redirects=False,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": _redirect_uri(),
                "client_id": _provider()[1],
                "code_verifier": verifier,
            },
        )
        token = answer.json().get("access_token") if answer.status_code == 200 else None
    except (requests.RequestException, ValueError, AttributeError):
        token = None
    if not isinstance(token, str):
        raise Refusal("invalid-request", "the identity provider refused the login; start again from /audit/")
    return token


@bp.get("/welcome")
def welcome() -> str:
    return page("login.html", refused=request.args.get("refused") == "1")


@bp.get("/login")
def login() -> WerkzeugResponse:
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    session["oidc"] = {"verifier": verifier, "state": state}
    query = urlencode(
        {
            "response_type": "code",
            "client_id": _provider()[1],
            "redirect_uri": _redirect_uri(),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return redirect(f"{_issuer_metadata()['authorization_endpoint']}?{query}")


@bp.get("/callback")
def callback() -> WerkzeugResponse:
    svc = services()
    pending = session.pop("oidc", None)
    if not isinstance(pending, dict) or not secrets.compare_digest(
        str(request.args.get("state", "")), str(pending.get("state"))
    ):
        raise Refusal("invalid-request", "the login did not start here (state mismatch); start again from /audit/")
    token = _exchange(request.args.get("code", ""), str(pending["verifier"]))
    try:
        citizen = svc.national_id.verify(token)
        require_role_level(citizen)
    except Refusal as refusal:
        svc.audit.refused(svc.db, "auditor.refused", refusal)
        raise
    if citizen.personal_id not in svc.config.auditor_identities:
        svc.audit.refused(
            svc.db,
            "auditor.refused",
            Refusal("not-an-auditor", "workbench login without the auditor role"),
            actor=citizen_actor(citizen),
        )
        return redirect(url_for("web.welcome", refused="1"))
    session["auditor"] = {"actor": citizen_actor(citizen), "display": f"{citizen.full_name} ({citizen.masked_id})"}
    return redirect(url_for("web.search"))


@bp.get("/logout")
def logout() -> WerkzeugResponse:
    session.pop("auditor", None)  # the language choice stays
    return redirect(url_for("web.welcome"))
