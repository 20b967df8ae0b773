"""GET /healthz (the process answers), GET /readyz (Redis and Kafka answer), GET /metrics.

/healthz and /readyz touch no money and tell nothing but "up", so a load balancer asks them
without a token. /metrics tells call volumes per route and the reasons of refusals (wrong
PINs among them): it needs a token of any switch (Prometheus sends it as a bearer token), or
a client address in settings.http_metrics_allow (docs/SERVE.md). /readyz pings Redis and opens
a TCP connection to a Kafka bootstrap server (the coming CDR endpoint publishes there), each
within READY_TIMEOUT_S, and answers 503 naming what failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from typing import Any

import redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater.errors import ServiceUnavailable
from rater.serve import metrics
from rater.serve.service import answer, client_ip, principal_of, service_of

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
    service = service_of(request)
    if not _allowed(client_ip(request), service.settings.http_metrics_networks):
        principal_of(request)  # 401 / 403 unless a valid token of some switch
    body, content_type = metrics.exposition(service.settings.http_metrics_dir)
    return Response(body, media_type=content_type)


def _allowed(
    address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _redis(client: Any) -> str:
    try:
        client.ping()
    except (redis.RedisError, OSError, ServiceUnavailable) as error:
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
