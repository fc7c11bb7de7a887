"""The gunicorn worker class that runs the event-driven front (``worker_class`` in ``gunicorn_conf``).

gunicorn keeps doing what it does well (binding, forking, restarting dead workers, graceful
reloads, heartbeats); each worker process runs :class:`gateway.serving.front.Front` on an asyncio
loop over the shared listening sockets, and the Flask app on ``threads`` threads.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from gunicorn.workers.base import Worker

from gateway.policy import Refusal
from gateway.serving.front import Front, FrontLimits, RefusalPage, RefusedRequest
from gateway.serving.refusals import PAGE_CODES, FrontRefusal

# Refusals of requests that could have changed something (a submission, a token request) are audited;
# a refused GET changes nothing and is only logged and counted.
AUDITED_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class FrontWorker(Worker):  # type: ignore[misc]  # gunicorn ships no type hints
    def run(self) -> None:
        app = self.wsgi
        front = Front(
            app,
            limits_for(app, self.cfg),
            threads=max(1, int(self.cfg.threads)),
            on_refusal=audit_refusal(app),
            refusal_page=refusal_page(app),
            access_log=self.log.access_log.info if self.cfg.accesslog else None,
        )
        sockets = [(listener.sock, _ssl_context(self.cfg)) for listener in self.sockets]
        asyncio.run(front.serve(sockets, heartbeat=self.notify, should_stop=self._should_stop))

    def _should_stop(self) -> bool:
        if self.ppid != os.getppid():
            self.log.info("parent changed, shutting down: %s", self)
            return True
        return not self.alive


def limits_for(app: Any, cfg: Any) -> FrontLimits:
    config = app.extensions["gateway"].config
    return FrontLimits(
        header_timeout=float(config.request_header_timeout_seconds),
        keepalive=float(config.keepalive_seconds),
        body_min_rate=int(config.request_body_min_bytes_per_second),
        max_body_bytes=int(app.config["MAX_CONTENT_LENGTH"]),
        max_connections=int(cfg.worker_connections),
        max_per_address=int(config.max_connections_per_address),
        graceful_seconds=float(cfg.graceful_timeout),
    )


def audit_refusal(app: Any) -> Any:
    services = app.extensions["gateway"]
    metrics = app.extensions["gateway.metrics"]

    def record(refused: RefusedRequest) -> None:
        from gateway.observability import method_label

        method = refused.method or "-"
        metrics.requests.labels(method_label(method), "front", str(refused.refusal.status)).inc()
        if refused.method in AUDITED_METHODS:  # counted, audited as a summary (gateway.audit.refusals)
            reason = f"{refused.refusal.detail} ({refused.method} {refused.path})"
            services.refusals.count("request.refused", Refusal(refused.refusal.code, reason), refused.remote_addr)
            metrics.unauthenticated_refusals.labels("request.refused", refused.refusal.code).inc()

    return record


def refusal_page(app: Any) -> Callable[[FrontRefusal, str | None, str | None], RefusalPage | None]:
    """The app's own HTML error page for a browser's GET of a page people read (the workbench).

    The front refused the request before it was whole, so nothing of it is known but its method and
    path: the page is the one a request for the section's root would get (its default language,
    signed out), naming the code and offering the way back.  Each is rendered once, here: rendering
    per refusal put a flood of them in the app's threads ahead of real requests (issue 11 review:
    /healthz 13 times slower under 414s on /audit/).
    """
    from gateway.api.headers import PAGE_POLICY
    from gateway.api.problems import CODES

    pages: dict[tuple[str, str], RefusalPage] = {}
    for prefix, error_page in app.extensions.get("gateway.error_pages", {}).items():
        for code in PAGE_CODES:
            status, title = CODES[code]
            with app.test_request_context(prefix, headers={"Accept": "text/html"}):
                page = error_page(code, title, title, status)
            if page is not None:
                pages[(prefix, code)] = RefusalPage(page.get_data(), PAGE_POLICY)
    prefixes = sorted({prefix for prefix, _code in pages}, key=len, reverse=True)

    def lookup(refusal: FrontRefusal, method: str | None, path: str | None) -> RefusalPage | None:
        if method != "GET" or path is None:
            return None
        spelled = section_path(path)
        for prefix in prefixes:
            if spelled.startswith(prefix) or spelled == prefix.rstrip("/"):
                return pages.get((prefix, refusal.code))
        return None

    return lookup


def section_path(target: str) -> str:
    """The path as the app routes it: percent-decoded, one leading slash, from an absolute-form target too."""
    from urllib.parse import unquote, urlsplit

    path = urlsplit(target).path if "://" in target.split("?", 1)[0] else target.split("?", 1)[0]
    return "/" + unquote(path, errors="replace").lstrip("/")


def _ssl_context(cfg: Any) -> Any:
    if not cfg.is_ssl:
        return None
    from gunicorn.sock import ssl_context

    return ssl_context(cfg)
