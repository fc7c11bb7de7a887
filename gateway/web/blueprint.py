"""The workbench blueprint and what every page shares: the auditor's session, CSRF, language, filters.

The session is server-side (:mod:`gateway.identity.workbench_sessions`); its cookie is
``SameSite=Strict``, so a link from another site opens the workbench signed out and cannot make a
page view (each is an audit entry) in an auditor's name.  Forms that change something (logout,
language, export) are POSTs carrying a CSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, make_response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.api.auditors import Auditor
from gateway.api.problems import HTTP_DETAILS
from gateway.audit.log import AuditEvent
from gateway.citizen.dossier import LOCAL
from gateway.identity.personal_id import hashed
from gateway.identity.workbench_sessions import WORKBENCH_COOKIE, WorkbenchSession
from gateway.policy import Refusal
from gateway.services import services
from gateway.web import reasons
from gateway.web.i18n import TEXT, Words
from gateway.web.reasons import FRONT_REASONS, HTTP_REASONS, PageRefusal

bp = Blueprint("web", __name__, url_prefix="/audit", template_folder="templates")
P = ParamSpec("P")
R = TypeVar("R")


LANG_COOKIE = "gateway_lang"
# Where a request may come from and still act in the session (Fetch Metadata, W3C): this origin, or
# the auditor typing the address or following a bookmark ("none").
FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def language() -> str:
    """The language the visitor chose (a plain cookie, set by ``POST /audit/lang``); Vietnamese first."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in TEXT else "vi"


def _auditor_actors() -> frozenset[str]:
    """The audit-log actors of the people the configuration names as auditors today."""
    svc = services()
    return frozenset(
        "citizen:" + hashed(identity, svc.keys.pepper)
        for identity in svc.config.auditor_identities
        if identity.isascii() and identity.isdigit()
    )


def current_session() -> WorkbenchSession | None:
    """The live server-side session of this request, its holder still an auditor; checked once per request."""
    if "workbench_session" not in g:
        svc = services()
        token = request.cookies.get(WORKBENCH_COOKIE)
        if request.headers.get("Sec-Fetch-Site") in FOREIGN_FETCH_SITES:
            # Browsers hold the Strict cookie back on links from other sites; those that say where a
            # request came from are believed too: another site cannot make a page view in an auditor's name.
            # "same-site" is foreign as well (issue 11 review): another port of this host or a sibling
            # subdomain is a different application, and SameSite lets the cookie go along from there.
            token = None
        found = svc.sessions.current(token)
        if found is not None and found.actor not in _auditor_actors():
            withdrawn = AuditEvent(
                event="auditor.refused",
                outcome="refused",
                code="not-an-auditor",
                reason="workbench session ended: the auditor role was withdrawn",
                actor=found.actor,
            )
            # The role was withdrawn: none of their sessions lives on (ended and audited together).
            svc.sessions.end_all_for(found.actor, audit=lambda conn: svc.audit.append(conn, withdrawn))
            found = None
        g.workbench_session = found
    session_found: WorkbenchSession | None = g.workbench_session
    return session_found


def signed_in_auditor() -> Auditor | None:
    found = current_session()
    return Auditor(found.actor, found.display) if found is not None else None


def same_text(sent: str, expected: str) -> bool:
    """compare_digest refuses non-ASCII text (a 500, review finding): compare the bytes."""
    return secrets.compare_digest(sent.encode("utf-8"), expected.encode("utf-8"))


def csrf_token() -> str:
    """The token forms that change something must carry: the session's, or a visitor's own before login."""
    found = current_session()
    if found is not None:
        return found.csrf
    if not isinstance(session.get("csrf"), str):
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    """Refuse a form post that did not come from one of our pages (token and, when sent, Origin)."""
    origin = request.headers.get("Origin")
    public = urlsplit(services().config.public_url)
    if origin is not None and origin != f"{public.scheme}://{public.netloc}":
        raise PageRefusal("csrf-failed", "csrf-foreign")
    sent = request.form.get("csrf", "")
    found = current_session()
    expected = found.csrf if found is not None else session.get("csrf")
    if not isinstance(expected, str) or not same_text(sent, expected):
        raise PageRefusal("csrf-failed", "csrf-stale")


def page(template: str, **values: Any) -> str:
    lang = language()
    return render_template(
        template,
        t=TEXT[lang],
        words=Words(lang),
        lang=lang,
        auditor=signed_in_auditor(),
        csrf=csrf_token(),
        **values,
    )


def wants_json() -> bool:
    """A script that asked for JSON (a browser's or curl's */* still gets pages and redirects)."""
    if "Accept" not in request.headers:
        return False
    best = request.accept_mimetypes.best_match(["text/html", "application/json", "application/problem+json"])
    return best in ("application/json", "application/problem+json")


def _wants_html() -> bool:
    """A browser (Accept: text/html) gets the workbench's own error page; scripts keep problem+json."""
    best = request.accept_mimetypes.best_match(["application/problem+json", "application/json", "text/html"])
    return best == "text/html"


def _way_back() -> str:
    """The page the visitor came from when it is one of ours, else the overview."""
    referrer = urlsplit(request.referrer or "")
    public = urlsplit(services().config.public_url)
    own = referrer.netloc in (public.netloc, request.host) and referrer.path.startswith("/audit/")
    return referrer.path + ("?" + referrer.query if referrer.query else "") if own else url_for("web.overview")


def error_page(
    code: str, title: str, detail: str, status: int, *, worded: Mapping[str, str] | None = None
) -> Response | None:
    """The error inside the workbench's frame, in its language, with its stable code and a way back;
    None for scripts.  ``title`` is the English one scripts get: the page shows its translation."""
    if not _wants_html():
        return None
    if worded is None and code in HTTP_REASONS and detail == HTTP_DETAILS[code]:
        worded = reasons.worded(HTTP_REASONS[code])
    elif worded is None and code in FRONT_REASONS:
        worded = reasons.worded(FRONT_REASONS[code])
    lang = language()
    shown = worded.get(lang, detail) if worded else detail
    try:
        body = page(
            "error.html",
            code=code,
            title=Words(lang).refusal(code) or title,
            detail=shown,
            status=status,
            back=_way_back(),
        )
    except Exception:  # the session store may be what failed: the caller answers problem+json instead
        return None
    response = make_response(body, status)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add("Accept")
    return response


@bp.after_request
def _varies_by_accept(response: WerkzeugResponse) -> WerkzeugResponse:
    """Pages, redirects and errors here depend on Accept (a browser or a script): caches must know."""
    response.vary.add("Accept")
    return response


@bp.record_once
def _register_error_pages(state: Any) -> None:
    state.app.extensions.setdefault("gateway.error_pages", {})[f"{bp.url_prefix}/"] = error_page


def auditor_page(view: Callable[Concatenate[Auditor, P], R]) -> Callable[P, R | WerkzeugResponse]:
    """Pages for auditors only: anyone else is sent to the welcome page; the view gets the auditor."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | WerkzeugResponse:
        auditor = signed_in_auditor()
        if auditor is None:
            if wants_json():
                raise Refusal("workbench-login-required", "log in at /audit/welcome; scripts use /v1/audit/*")
            return redirect(url_for("web.welcome"))
        return view(auditor, *args, **kwargs)

    return wrapper


@bp.app_template_filter("masked_actor")
def masked_actor(actor: str | None) -> str:
    """Citizens appear as a keyed hash of their ID; on screen even that is shortened."""
    if not actor:
        return ""
    return actor[:18] + "…" if actor.startswith("citizen:") else actor


@bp.app_template_filter("local_time")
def local_time(stamp: str | None) -> str:
    """Entries carry UTC; people in Vietnam's offices read their own clock (UTC+7)."""
    try:
        return datetime.fromisoformat(str(stamp)).astimezone(LOCAL).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return str(stamp or "")
