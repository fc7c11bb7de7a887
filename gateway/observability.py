"""JSON logs with a request id, and Prometheus metrics kept per app (no import-time globals).

Under gunicorn with several workers, ``gateway serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` so
``/metrics`` aggregates every worker.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "method", "path", "status", "duration_ms", "agency"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(app: Flask, level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(level.upper())
    app.logger.propagate = False


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_http_requests_total", "HTTP requests", ["method", "endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds", "HTTP request latency", ["endpoint"], registry=self.registry
        )
        self.documents = Counter(
            "gateway_documents_total",
            "Documents and status messages by outcome",
            ["kind", "outcome", "code"],
            registry=self.registry,
        )
        self.unauthenticated_refusals = Counter(
            "gateway_unauthenticated_refusals_total",
            "Refused requests nobody authenticated (audited as periodic summaries, not one entry each)",
            ["event", "code"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


def state_exposition(
    route_states: Mapping[str, int],
    oldest_due_seconds: float,
    audit_entries: int,
    *,
    certificates_expiring: int = 0,
    timestamps_pending: int = 0,
    witness_lags: Mapping[str, int] | None = None,
) -> bytes:
    """Gauges read from the database at scrape time.

    Every process would report the same numbers, so they are metric families built per scrape rather
    than multiprocess-file gauges.
    """
    routes = GaugeMetricFamily("gateway_routes", "Routes by delivery state", labels=["state"])
    for state, count in sorted(route_states.items()):
        routes.add_metric([state], count)
    families = [
        routes,
        GaugeMetricFamily(
            "gateway_delivery_oldest_due_seconds",
            "How long the oldest due push delivery has waited (0 when none)",
            value=oldest_due_seconds,
        ),
        GaugeMetricFamily("gateway_audit_entries", "Entries in the audit log", value=audit_entries),
        GaugeMetricFamily(
            "gateway_certificates_expiring",
            "Registered agency signing certificates expiring within the warning window",
            value=certificates_expiring,
        ),
        GaugeMetricFamily(
            "gateway_timestamps_pending",
            "Accepted documents still waiting for their RFC 3161 timestamp",
            value=timestamps_pending,
        ),
    ]

    lag = GaugeMetricFamily(
        "gateway_witness_lag_entries",
        "Audit log entries in the newest checkpoint that a configured witness has not cosigned yet",
        labels=["witness"],
    )
    for name, behind in sorted((witness_lags or {}).items()):
        lag.add_metric([name], behind)
    families.append(lag)

    class _Snapshot(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from families

    registry = CollectorRegistry()
    registry.register(_Snapshot())
    return bytes(generate_latest(registry))


def count_document(kind: str, outcome: str, code: str) -> None:
    metrics: Metrics = current_app.extensions["gateway.metrics"]
    metrics.documents.labels(kind, outcome, code).inc()


def count_unauthenticated_refusal(event: str, code: str) -> None:
    metrics: Metrics = current_app.extensions["gateway.metrics"]
    metrics.unauthenticated_refusals.labels(event, code).inc()


# HTTP methods as a label: any token a client sends would otherwise become a new series (issue 10, 6).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "OTHER"


def install_request_hooks(app: Flask, metrics: Metrics) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(method_label(request.method), endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(elapsed)
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if endpoint not in ("/healthz", "/metrics"):
            app.logger.info(
                "request",
                extra={
                    "request_id": g.get("request_id"),
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 2),
                    "agency": g.get("agency"),
                },
            )
        return response
