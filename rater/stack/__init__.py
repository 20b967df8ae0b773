"""The local stack: Tansu (Kafka protocol), Redis and ClickHouse on 127.0.0.1, in a state folder.

Python API (tests, the demo, benchmarks):

    from rater import stack
    report = stack.up(settings)              # idempotent; waits until every service answers
    rows = stack.status(settings)            # list[ServiceStatus]
    text = stack.logs(settings, "redis", 50)
    stack.down(settings, purge=False)
"""

from rater.stack.control import (
    Endpoint,
    ServiceStatus,
    UpReport,
    down,
    endpoints,
    logs,
    service_names,
    services,
    status,
    up,
)

__all__ = [
    "Endpoint",
    "ServiceStatus",
    "UpReport",
    "down",
    "endpoints",
    "logs",
    "service_names",
    "services",
    "status",
    "up",
]
