"""The Starlette application of `rater serve` (routes, error answers, metrics).

`create_app(settings)` builds it for tests and benchmarks; `from_env()` is the factory each
uvicorn worker process calls (server.py passes the settings to workers as RATER_* variables).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisClusterException
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rater.errors import AccountError, NotFound, RaterError, ServiceUnavailable
from rater.logs import get_logger
from rater.portal.app import create_portal, to_portal
from rater.redis import connection as redis_connection
from rater.serve import accounts, calls, cards, cdrs, health, metrics, openapi
from rater.serve.credentials import Credentials
from rater.serve.domain import AuthorizerControl, CallControl, LazyControl
from rater.serve.gate import Gate
from rater.serve.problems import ApiError, Code, error_response
from rater.serve.service import REDIS_TIMEOUT_S, Service
from rater.settings import Settings

log = get_logger(__name__)

PORTAL_REDIS_TIMEOUT_S = 60


def portal_routes(settings: Settings) -> list[BaseRoute]:
    """The reseller portal (rater/portal/, docs/PORTAL.md), on a Redis client of its own that
    waits longer: creating a batch of cards runs scripts of up to 0.3 s each. Built on its
    first request, like the service's own client (LazyRedis)."""

    def build() -> ASGIApp:
        client = redis_connection.connect(settings, socket_timeout=PORTAL_REDIS_TIMEOUT_S)
        return create_portal(settings, client)

    return [
        Route("/portal", to_portal, methods=["GET"]),
        Mount("/portal", app=LazyApp(build)),
    ]


def all_routes() -> list[BaseRoute]:
    return [
        *calls.routes(),
        *cards.routes(),
        *accounts.routes(),
        *cdrs.routes(),
        *health.routes(),
        Route("/openapi.json", openapi.serve, methods=["GET"]),
    ]


def create_app(
    settings: Settings,
    *,
    control: CallControl | None = None,
    client: Any = None,
) -> Starlette:
    lazy = LazyRedis(lambda: client if client is not None else connect(settings))
    service = Service(
        settings=settings,
        control=control
        if control is not None
        else LazyControl(lambda: AuthorizerControl(settings, lazy.client())),
        gate=Gate(Credentials(lazy)),
        redis=lazy,
    )
    app = Starlette(
        routes=all_routes() + portal_routes(settings),
        lifespan=cdrs.lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            redis.RedisError: _redis_error,
            RaterError: _rater_error,
        },
    )
    app.state.service = service
    app.add_middleware(Timing)
    return app


def from_env() -> Starlette:
    """The uvicorn factory (`rater.serve.app:from_env`), called once in each worker.

    The objects made at start (modules, numba, the clients) are moved out of the garbage
    collector's reach: a full collection walked those 78,000 objects in 38 ms on this machine,
    a pause every request waiting on that worker would share; frozen, it takes under 1 ms."""
    app = create_app(Settings.from_env())
    gc.freeze()
    return app


def connect(settings: Settings) -> Any:
    """A Redis client that gives up after REDIS_TIMEOUT_S: a stalled Redis answers 503."""
    return redis_connection.connect(
        settings, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


class LazyRedis:
    """The service's Redis client, made on first use. A Redis Cluster client connects to its
    nodes when it is made (redis-py's RedisCluster), so making it at start would keep the
    service from starting while the cluster is down; made here on the first request, a
    cluster that does not answer is a 503 like a single server that does not, and /readyz
    says so. Commands are forwarded; `client()` is the client itself (the account layer looks
    at its type to tell one server from a cluster)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            try:
                self._client = self._make()
            except (RedisClusterException, redis.RedisError, OSError) as error:
                raise ServiceUnavailable(f"Redis does not answer: {error}") from error
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client(), name)


class LazyApp:
    """An ASGI application built on its first request, for one whose Redis client connects
    when made (Redis Cluster): until Redis answers, its requests get 503 and the service runs."""

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self._build = build
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            try:
                self._app = self._build()
            except (RedisClusterException, redis.RedisError, OSError) as error:
                log.warning("redis unreachable", path=scope.get("path"), error=str(error))
                response = error_response(503, Code.UNAVAILABLE, "Redis did not answer; try again")
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


class Timing:
    """Counts every answer by route template and status and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            label = route.path if route is not None else "unmatched"
            metrics.REQUESTS.labels(label, str(status)).inc()
            metrics.LATENCY.labels(label).observe(time.perf_counter() - started)


# ---------------------------------------------------------------------------- error answers
async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    response = error.response()
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="rater", Basic realm="rater"'
    if error.status in (408, 413):
        response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 405:
        return error_response(
            405, Code.METHOD_NOT_ALLOWED, f"{request.method} is not allowed on {request.url.path}"
        )
    if error.status_code == 404:
        return error_response(404, Code.NOT_FOUND, f"no such path: {request.url.path}", "path")
    return error_response(error.status_code, Code.BAD_VALUE, str(error.detail))


async def _redis_error(request: Request, error: Exception) -> Response:
    log.warning("redis error", path=request.url.path, error=str(error))
    return error_response(503, Code.UNAVAILABLE, "Redis did not answer; try again")


async def _rater_error(request: Request, error: Exception) -> Response:
    if isinstance(error, NotFound):
        return error_response(404, Code.NOT_FOUND, str(error))
    if isinstance(error, ServiceUnavailable):
        return error_response(503, Code.UNAVAILABLE, str(error))
    if isinstance(error, AccountError):  # a request the account layer calls malformed
        return error_response(400, Code.BAD_VALUE, str(error))
    log.error("unexpected error", path=request.url.path, error=repr(error))
    return error_response(500, Code.INTERNAL, "internal error")
