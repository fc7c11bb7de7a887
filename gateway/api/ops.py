"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import hmac
import time
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.openapi import openapi_document
from gateway.observability import Metrics, state_exposition
from gateway.policy import Refusal
from gateway.services import services
from gateway.store.db import DatabaseUnavailable
from gateway.store.helpers import as_utc
from gateway.trust.pki import cert_pem

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/.well-known/gateway-seal.pem")
def seal_certificate() -> Response:
    """The certificates recipients pin when they verify seals offline (``gateway verify --gateway-cert``):
    the current seal certificate first, then those of a rotation's other key and retired ones, whose
    seals stay valid."""
    chain = "".join(cert_pem(c) for chain in services().ring.snapshot.seal_chains for c in chain)
    response = Response(chain, mimetype="application/x-pem-file")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks: dict[str, bool] = {"database": svc.db.ping(), "keys": svc.keys.seal_key is not None}
    if svc.config.redis_url:
        checks["redis"] = svc.state.ping()
    details: dict[str, Any] = {}
    try:
        if checks["database"]:
            details.update(_trust_details(svc))
            problem = svc.checkpoints.published_problem()
            checks["audit_log"] = problem is None  # a restore lost entries the gateway had published
            if problem:
                details["audit_log"] = problem
            details["checkpoint_signer"] = svc.checkpoints.signer_lag()
            if svc.witnesses.witnesses:  # informative: a witness behind is caught up, not a reason to stop serving
                with svc.db.read() as conn:
                    details["witnesses"] = [
                        {"name": w.name, "cosigned_size": w.size, "lag": w.lag, "problem": w.problem}
                        for w in svc.witnesses.status(conn)
                    ]
    except SQLAlchemyError:  # reachable but not a gateway database (not migrated, or another file)
        checks["database"] = False
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "not-ready", "checks": checks, "details": details})
    response.status_code = 200 if ready else 503
    return response


def _trust_details(svc: Any) -> dict[str, Any]:
    """What an operator watches besides liveness: certificates about to expire, the timestamp backlog."""
    window = timedelta(days=svc.config.certificate_expiry_warning_days)
    with svc.db.read() as conn:
        expiring = [
            {"agency": r.agency_code, "sha256": r.fingerprint, "not_after": as_utc(r.not_after).isoformat()}
            for r in svc.registry.expiring_certificates(conn, window)
        ]
    health = svc.timestamper.health()
    try:
        svc.timestamper.refuse_if_overdue()
        overdue = False
    except Refusal:  # submissions get 503; reads and deliveries still work, so the process stays in rotation
        overdue = True
    return {
        "certificates_expiring": expiring,
        "timestamps": {
            "enabled": health.enabled,
            "pending": health.pending,
            "failing_since": health.failing_since.isoformat() if health.failing_since else None,
            "last_error": health.last_error,
            "overdue": overdue,
        },
    }


STATE_METRICS_SECONDS = 5.0  # database-derived gauges: one GROUP BY per process every few seconds at most


@bp.get("/metrics")
def metrics() -> Response:
    """Behind ``GATEWAY_METRICS_TOKEN`` (a Prometheus ``bearer_token``): route states, backlog ages and
    agency activity are not for the internet (issue 10, finding 6).  Only demo mode serves it without one."""
    config = services().config
    expected = config.metrics_token
    if expected is None and not config.demo:
        raise Refusal(
            "metrics-token-required",
            "set GATEWAY_METRICS_TOKEN and give Prometheus the same value as its bearer token",
        )
    if expected is not None:
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
            raise Refusal("metrics-unauthorized", "send Authorization: Bearer <GATEWAY_METRICS_TOKEN>")
    registry: Metrics = current_app.extensions["gateway.metrics"]
    body = registry.exposition() + _state_metrics()
    return Response(body, mimetype="text/plain; version=0.0.4")


def _state_metrics() -> bytes:
    """Gauges read from the database, cached briefly so that frequent scrapes cost no more queries."""
    cached: tuple[float, bytes] | None = current_app.extensions.get("gateway.state-metrics")
    now = time.monotonic()
    if cached is not None and now - cached[0] < STATE_METRICS_SECONDS:
        return cached[1]
    svc = services()
    try:
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
            expiring = len(
                svc.registry.expiring_certificates(conn, timedelta(days=svc.config.certificate_expiry_warning_days))
            )
            lags = {w.name: w.lag for w in svc.witnesses.status(conn)}
        body = state_exposition(
            svc.deliveries.counts(),
            svc.deliveries.oldest_due_seconds(),
            size,
            certificates_expiring=expiring,
            timestamps_pending=svc.timestamper.health().pending,
            witness_lags=lags,
        )
    except (DatabaseUnavailable, SQLAlchemyError):
        return b""  # the process metrics still help while the database is away; /readyz says why
    current_app.extensions["gateway.state-metrics"] = (now, body)
    return body


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
