"""gunicorn settings shared by ``gateway serve`` and the Docker image.

With several workers, Prometheus metrics live in files under ``PROMETHEUS_MULTIPROC_DIR``; a
worker that exits must be marked dead or its gauges linger in ``/metrics``.  Each worker also runs
a small thread that, once a second, timestamps the documents accepted since the last pass, writes
the summaries of refused requests and, only where it holds the checkpoint key (not under
``gateway serve``, whose `gateway audit signer` does it), signs an audit checkpoint (all locked and
idempotent, so several workers and hosts doing it is harmless).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

graceful_timeout = 20
# Requests are read by an event-driven front (gateway.serving) so slow or idle clients hold no thread;
# complete requests run on ``threads`` threads (the workbench's login calls the identity provider,
# which in demo mode is served by this same server, so one process needs more than one).
worker_class = "gateway.serving.worker.FrontWorker"
threads = 4
worker_connections = 1000
accesslog = "-"
access_log_format = "%(h)s %(r)s %(s)s %(b)s %(L)ss"
# gunicorn 25+ opens a control socket at one fixed path per user (~/.gunicorn/gunicorn.ctl): two
# gateways on one machine (a second port, the tests) would fight over it, and nothing here uses it.
control_socket_disable = True


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_worker_init(worker: Any) -> None:
    app = worker.wsgi
    services = app.extensions["gateway"]
    stop = threading.Event()

    def every_second() -> None:
        while not stop.wait(1.0):
            services.background_tick()

    threading.Thread(target=every_second, name="audit-checkpoints-timestamps", daemon=True).start()
    worker.gateway_stop_checkpoints = stop


def worker_exit(_server: Any, worker: Any) -> None:
    stop = getattr(worker, "gateway_stop_checkpoints", None)
    if stop is not None:
        stop.set()
    services = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("gateway")
    if services is not None:  # what this worker counted since its last summary is not lost at exit
        try:
            services.refusals.flush(services.db, services.audit)
        except Exception:
            logging.getLogger(__name__).warning("the last summary of refused requests was not written", exc_info=True)
