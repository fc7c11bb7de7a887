"""Auditors log in to the workbench with national electronic identity.

The workbench is an OpenID Connect relying party of the national-ID issuer (the development
provider in demo mode): authorization code with PKCE S256 and ``state``, the code exchanged
server-side, and the access token checked by the very verifier the API uses.  Whether that person
is an auditor is decided by the deployment's configuration, never by the issuer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote, urlencode

import requests
from flask import current_app, make_response, redirect, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.api.auditors import require_role_level
from gateway.api.auth import refused_unauthenticated, within_address_limit
from gateway.audit.log import AuditEvent
from gateway.citizen.service import citizen_actor
from gateway.identity.jwks import fetch_json
from gateway.identity.workbench_sessions import WORKBENCH_COOKIE
from gateway.policy import Refusal
from gateway.services import services
from gateway.web.blueprint import LANG_COOKIE, bp, check_csrf, current_session, page, same_text
from gateway.web.i18n import TEXT

DEMO_CLIENT_ID = "audit-workbench"
ISSUER_TIMEOUT = 5.0
METADATA_SECONDS = 300.0
# Where the language switch may send the visitor back to: a workbench path and its query, printable ASCII.
_OWN_PAGE = re.compile(r"/audit/[A-Za-z0-9/_.~%?&=+-]{0,500}")


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
    """The issuer's discovery document, fetched once per ``METADATA_SECONDS`` per process, not per login.

    Every visit to ``/audit/login`` fetched it (issue 10, finding 8): anyone could make the gateway
    call the issuer as often as they liked.  A failed fetch is not cached.
    """
    issuer = _provider()[0].rstrip("/")
    cache: dict[str, tuple[float, dict[str, Any]]] = current_app.extensions.setdefault("gateway.issuer_metadata", {})
    found = cache.get(issuer)
    if found is not None and time.monotonic() - found[0] < METADATA_SECONDS:
        return found[1]
    try:
        metadata = fetch_json(requests.Session(), issuer + "/.well-known/openid-configuration", ISSUER_TIMEOUT)[0]
    except (requests.RequestException, ValueError) as exc:
        raise Refusal("issuer-unavailable", f"the national-ID issuer cannot be reached ({exc}); try again") from None
    if not isinstance(metadata.get("authorization_endpoint"), str) or not isinstance(
        metadata.get("token_endpoint"), str
    ):
        raise Refusal("issuer-unavailable", "the issuer's discovery document names no authorization/token endpoint")
    cache[issuer] = (time.monotonic(), metadata)
    return metadata


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
    return page("login.html", refused=request.args.get("refused") == "1", demo=services().config.demo)


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
    within_address_limit("logins", svc.config.logins_per_minute, "auditor.refused")
    pending = session.pop("oidc", None)
    if not isinstance(pending, dict) or not same_text(str(request.args.get("state", "")), str(pending.get("state"))):
        raise Refusal("invalid-request", "the login did not start here (state mismatch); start again from /audit/")
    token = _exchange(request.args.get("code", ""), str(pending["verifier"]))
    try:
        citizen = svc.national_id.verify(token)
    except Refusal as refusal:  # nobody proved who they are: counted, summarised (issue 13)
        refused_unauthenticated("auditor.refused", refusal)
        raise
    try:
        require_role_level(citizen)
    except Refusal as refusal:
        svc.audit.refused(svc.db, "auditor.refused", refusal, actor=citizen_actor(citizen))
        raise
    if citizen.personal_id not in svc.config.auditor_identities:
        svc.audit.refused(
            svc.db,
            "auditor.refused",
            Refusal("not-an-auditor", "workbench login without the auditor role"),
            actor=citizen_actor(citizen),
        )
        return redirect(url_for("web.welcome", refused="1"))
    actor = citizen_actor(citizen)
    login = AuditEvent(event="auditor.login", outcome="ok", actor=actor, issuer=citizen.issuer)
    token, started = svc.sessions.start(
        actor,
        f"{citizen.full_name} ({citizen.masked_id})",
        citizen.expires_at,
        audit=lambda conn: svc.audit.append(conn, login),
    )
    # A page of our own rather than a redirect: after the issuer's cross-site redirect, browsers hold
    # back SameSite=Strict cookies for the rest of that navigation, so the next page is opened from here.
    response = make_response(page("signed_in.html", next=url_for("web.overview")))
    response.set_cookie(
        WORKBENCH_COOKIE,
        token,
        max_age=max(1, started.expires_at - int(time.time())),
        path="/audit",
        secure=svc.config.public_url.startswith("https://"),
        httponly=True,
        samesite="Strict",
    )
    return response


@bp.post("/logout")
def logout() -> WerkzeugResponse:
    """Ends the session on the server: the cookie, wherever it was copied, stops working."""
    check_csrf()
    svc = services()
    found = current_session()
    logout = AuditEvent(event="auditor.logout", outcome="ok", actor=found.actor) if found is not None else None
    svc.sessions.end(
        request.cookies.get(WORKBENCH_COOKIE),
        audit=(lambda conn: svc.audit.append(conn, logout)) if logout is not None else None,
    )
    response = redirect(url_for("web.welcome"))
    response.delete_cookie(WORKBENCH_COOKIE, path="/audit")
    return response


@bp.post("/lang")
def choose_language() -> WerkzeugResponse:
    check_csrf()
    wanted = request.form.get("lang", "")
    back = request.form.get("next", "")
    # Our own pages only: no open redirect, no header breaks, no "/audit/../" out of the workbench.
    if not _OWN_PAGE.fullmatch(back) or "//" in back or ".." in unquote(back.split("?", 1)[0]):
        back = url_for("web.overview")
    response = redirect(back)
    if wanted in TEXT:
        response.set_cookie(LANG_COOKIE, wanted, max_age=365 * 86400, path="/audit", httponly=True, samesite="Lax")
    return response
