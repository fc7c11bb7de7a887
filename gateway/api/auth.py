"""Bearer access tokens on every API call: who is calling; refusals counted or audited.

A refusal of a caller nobody authenticated is *counted* (:func:`refused_unauthenticated`) and
audited as a periodic summary (gateway.audit.refusals); one of a caller whose token was valid is
audited as its own entry, with the verified actor (:func:`audit_refusal`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import g, request

from gateway.observability import count_unauthenticated_refusal
from gateway.policy import RateLimited, Refusal
from gateway.services import services

P = ParamSpec("P")
R = TypeVar("R")


def audit_refusal(event: str, refusal: Refusal, *, actor: str) -> None:
    """A refusal of an authenticated caller: one entry, naming who."""
    svc = services()
    svc.audit.refused(svc.db, event, refusal, actor=actor)


def refused_unauthenticated(
    event: str, refusal: Refusal, *, claimed_actor: str | None = None, issuer: str | None = None
) -> None:
    """A refusal of a caller who proved nothing: counted in memory and in the metrics, summarised later."""
    services().refusals.count(event, refusal, request.remote_addr, claimed_actor=claimed_actor, issuer=issuer)
    count_unauthenticated_refusal(event, refusal.code)


def within_address_limit(what: str, per_minute: int, event: str) -> None:
    """Unauthenticated endpoints that write (token requests, logins) are limited per source address.

    Behind a reverse proxy every client shares the proxy's address: the README says to raise the
    limit there (or to limit at the proxy)."""
    svc = services()
    decision = svc.submission_limiter.hit(f"{what}:{request.remote_addr}", per_minute, 60)
    if not decision.allowed:
        refusal = RateLimited(
            f"at most {per_minute} {what} a minute from one address; retry in {decision.retry_after} s",
            decision.retry_after,
        )
        refused_unauthenticated(event, refusal)
        raise refusal


def bearer_token(code: str) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(code, "send `Authorization: Bearer <token>`")
    return token.strip()


def authenticated_agency() -> str:
    """The agency code of a valid, enabled caller; raises :class:`Refusal` (counted or audited) otherwise."""
    svc = services()
    try:
        agency = svc.tokens.verify(bearer_token("invalid-token"))
    except Refusal as refusal:
        refused_unauthenticated("auth.refused", refusal)
        raise
    found = svc.agencies.agency(agency)
    if found is None or not found.enabled:
        # The token is ours and valid: who it names is known, so this refusal is its own entry.
        disabled = Refusal("invalid-token", f"agency {agency} is not registered or is disabled")
        audit_refusal("auth.refused", disabled, actor=agency)
        raise disabled
    return agency


def require_agency(view: Callable[P, R]) -> Callable[P, R]:
    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        g.agency = authenticated_agency()
        return view(*args, **kwargs)

    return wrapper
