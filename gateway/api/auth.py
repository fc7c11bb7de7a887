"""Bearer access tokens on every API call: who is calling, audited when refused."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from gateway.policy import Refusal
from gateway.services import services

P = ParamSpec("P")
R = TypeVar("R")


def audit_refusal(event: str, refusal: Refusal, *, actor: str | None = None) -> None:
    svc = services()
    svc.audit.refused(svc.db, event, refusal, actor=actor)


def bearer_token(code: str) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(code, "send `Authorization: Bearer <token>`")
    return token.strip()


def authenticated_agency() -> str:
    """The agency code of a valid, enabled caller; raises (and audits) :class:`Refusal` otherwise."""
    svc = services()
    try:
        agency = svc.tokens.verify(bearer_token("invalid-token"))
        found = svc.agencies.agency(agency)
        if found is None or not found.enabled:
            raise Refusal("invalid-token", f"agency {agency} is not registered or is disabled")
    except Refusal as refusal:
        audit_refusal("auth.refused", refusal)
        raise
    return agency


def require_agency(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        g.agency = authenticated_agency()
        return view(*args, **kwargs)

    return wrapper
