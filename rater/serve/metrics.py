"""Prometheus metrics of the HTTP service.

With several worker processes each writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(server.py makes it, names it in settings.http_metrics_dir, and sets the variable
before the workers start) and /metrics, answered by any worker, adds them
up (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

REQUESTS = Counter(
    "rater_http_requests_total", "HTTP requests by route and status.", ["route", "status"]
)
LATENCY = Histogram(
    "rater_http_request_seconds",
    "Time from the request head to the end of the answer, by route.",
    ["route"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)
AUTHORIZATIONS = Counter(
    "rater_authorizations_total", "Authorization answers by reason (ok = allowed).", ["reason"]
)


def exposition(directory: str) -> tuple[bytes, str]:
    """The text format of every process' metrics (those of this one when `directory` is '')."""
    if directory:
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
