"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from gateway.documents.schema import schemas_dir
from gateway.observability import Metrics, state_exposition
from gateway.services import services
from gateway.store.db import DatabaseUnavailable

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    svc = services()
    checks: dict[str, bool] = {"database": svc.db.ping(), "keys": svc.keys.seal_key is not None}
    if svc.config.redis_url:
        checks["redis"] = svc.state.ping()
    ready = all(checks.values())
    response = jsonify({"status": "ready" if ready else "not-ready", "checks": checks})
    response.status_code = 200 if ready else 503
    return response


@bp.get("/metrics")
def metrics() -> Response:
    registry: Metrics = current_app.extensions["gateway.metrics"]
    body = registry.exposition()
    svc = services()
    try:
        with svc.db.read() as conn:
            size = svc.audit.size(conn)
        body += state_exposition(svc.deliveries.counts(), svc.deliveries.oldest_due_seconds(), size)
    except DatabaseUnavailable:
        pass  # the process metrics still help while the database is away; /readyz says why
    return Response(body, mimetype="text/plain; version=0.0.4")


@cache
def openapi_document() -> dict[str, Any]:
    loaded = json.loads((schemas_dir() / "openapi.json").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
