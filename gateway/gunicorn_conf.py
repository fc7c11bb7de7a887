"""gunicorn settings shared by ``gateway serve`` and the Docker image.

With several workers, Prometheus metrics live in files under ``PROMETHEUS_MULTIPROC_DIR``; a
worker that exits must be marked dead or its gauges linger in ``/metrics``.
"""

from __future__ import annotations

import os
from typing import Any

graceful_timeout = 20
accesslog = "-"
access_log_format = "%(h)s %(r)s %(s)s %(b)s %(L)ss"


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
