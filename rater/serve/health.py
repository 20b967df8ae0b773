"""GET /healthz (the process answers), GET /readyz (Redis and Kafka answer), GET /metrics.

None of them touches money or cards, so they need no token (a load balancer or Prometheus
asks them); put /metrics behind the proxy's own allow-list when it faces other networks.
/readyz pings Redis and opens a TCP connection to a Kafka bootstrap server (the coming CDR
endpoint publishes there), each within READY_TIMEOUT_S, and answers 503 naming what failed.
"""

from __future__ import annotations

import asyncio
import contextlib

import redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater.serve import metrics
from rater.serve.service import answer, service_of

READY_TIMEOUT_S = 1.0


async def healthz(request: Request) -> Response:
    return answer({"status": "ok"})


async def readyz(request: Request) -> Response:
    service = service_of(request)
    checks = {
        "redis": _redis(service.redis),
        "kafka": await _kafka(service.settings.kafka_bootstrap),
    }
    ready = all(v == "ok" for v in checks.values())
    return answer({"status": "ready" if ready else "not ready", **checks}, 200 if ready else 503)


async def metrics_text(request: Request) -> Response:
    body, content_type = metrics.exposition(service_of(request).settings.http_metrics_dir)
    return Response(body, media_type=content_type)


def _redis(client: redis.Redis) -> str:
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        return f"unreachable: {error}"
    return "ok"


async def _kafka(bootstrap: str) -> str:
    problems = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port)), READY_TIMEOUT_S
            )
        except (OSError, TimeoutError, ValueError) as error:
            problems.append(f"{server}: {error or type(error).__name__}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return "ok"
    return "unreachable: " + "; ".join(problems)


def routes() -> list[Route]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
