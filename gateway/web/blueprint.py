"""The workbench blueprint and what every page shares: the auditor's session, language, filters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import Blueprint, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from gateway.api.auditors import Auditor
from gateway.citizen.dossier import LOCAL
from gateway.web.i18n import TEXT

bp = Blueprint("web", __name__, url_prefix="/audit", template_folder="templates")
P = ParamSpec("P")
R = TypeVar("R")


def language() -> str:
    """``?lang=en`` or ``?lang=vi`` switches and the choice stays with the session; Vietnamese first."""
    wanted = request.args.get("lang")
    if wanted in TEXT:
        session["lang"] = wanted
    return str(session.get("lang", "vi"))


def signed_in_auditor() -> Auditor | None:
    """The session cookie (signed, HttpOnly) holds only who the auditor is, as the login set it."""
    found = session.get("auditor")
    return Auditor(found["actor"], found["display"]) if isinstance(found, dict) else None


def page(template: str, **values: Any) -> str:
    lang = language()
    return render_template(template, t=TEXT[lang], lang=lang, auditor=signed_in_auditor(), **values)


def auditor_page(view: Callable[Concatenate[Auditor, P], R]) -> Callable[P, R | WerkzeugResponse]:
    """Pages for auditors only: anyone else is sent to the welcome page; the view gets the auditor."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | WerkzeugResponse:
        auditor = signed_in_auditor()
        if auditor is None:
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
