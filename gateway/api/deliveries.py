"""Operators look after push deliveries: what is queued, what is dead-lettered, retry.

Operators are named in ``GATEWAY_OPERATORS`` (agency codes, authenticated by a gateway token, or
personal ID numbers, by a national-ID token), like auditors.  A retry is audited.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from gateway.api.auditors import Auditor, authenticated_in_role
from gateway.api.paging import MAX_CURSOR, page_parameters
from gateway.delivery.queue import DEAD, PUSH_STATES
from gateway.policy import Refusal
from gateway.services import services

bp = Blueprint("deliveries", __name__)


def _operator() -> Auditor:
    return authenticated_in_role(
        frozenset(services().config.operators),
        Refusal("not-an-operator", "this identity has no operator role (GATEWAY_OPERATORS)"),
        "operator.refused",
    )


def _listing(states: tuple[str, ...]) -> Response:
    after, limit = page_parameters(default_limit=100, max_limit=500)
    rows = services().deliveries.listing(states=states, agency=request.args.get("agency"), limit=limit, after=after)
    items = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()} for row in rows]
    return jsonify({"items": items, "next_after": items[-1]["id"] if len(items) == limit else None})


@bp.get("/v1/deliveries")
def deliveries() -> Response:
    _operator()
    wanted = tuple(request.args.getlist("state")) or PUSH_STATES
    unknown = sorted(set(wanted) - set(PUSH_STATES))
    if unknown:
        raise Refusal("invalid-request", f"unknown state(s) {', '.join(unknown)}; known: {', '.join(PUSH_STATES)}")
    return _listing(wanted)


@bp.get("/v1/deliveries/dead-letters")
def dead_letters() -> Response:
    _operator()
    return _listing((DEAD,))


@bp.post("/v1/deliveries/<int:route_id>/retry")
def retry(route_id: int) -> Response:
    operator = _operator()
    if route_id > MAX_CURSOR or not services().deliveries.retry([route_id], actor=operator.actor):
        raise Refusal(
            "not-dead-lettered", f"route {route_id} is not dead-lettered; see GET /v1/deliveries/dead-letters"
        )
    return jsonify({"id": route_id, "state": "queued"})
