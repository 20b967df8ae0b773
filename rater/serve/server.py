"""Running the service: uvicorn (httptools parser, uvloop) with N worker processes.

Why uvicorn: with the same Starlette application and two workers it answered more
authorizations per second with a lower p99 than granian, and aiohttp was no faster beyond the
machine's noise (docs/SERVE.md has the numbers). It brings what a service facing switches
needs: several processes on one socket, TLS from a certificate file, a graceful stop on
SIGTERM (stop accepting, let in-flight requests finish within
settings.http_shutdown_timeout_s, then exit), keep-alive timeouts and proxy headers.

Slow clients. uvicorn times idle keep-alive connections only, so `HeadTimedProtocol` adds the
rest: a connection must deliver each request head within settings.http_header_timeout_s and
in at most MAX_HEAD_BYTES, or it is closed (431 for an oversized head); the body has its own
limits (bodies.py).

Workers are separate processes started by uvicorn (spawn): they read their settings from
RATER_* variables, so `run` puts the effective settings (CLI options included) there first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from rater.accounts.pinkeys import PinKeys
from rater.logs import get_logger
from rater.settings import Settings, get_settings

log = get_logger(__name__)

#: request line and headers together; a switch's request head is a few hundred bytes
MAX_HEAD_BYTES = 16_384
APP = "rater.serve.app:from_env"


class HeadTimedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size cap on each request head."""

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0
    _in_head = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = data.find(b"\r\n\r\n")
            self._head_bytes += len(data) if end < 0 else end + 4
            if self._head_bytes > MAX_HEAD_BYTES:
                self._disarm()
                self.transport.write(_too_large_head())
                self.transport.close()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._in_head = True  # the next bytes are the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_timer = self.loop.call_later(
            float(get_settings().http_header_timeout_s), self._head_timed_out
        )

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def _too_large_head() -> bytes:
    body = (
        b'{"error":{"code":"bad_value","field":"headers",'
        b'"message":"the request line and headers are over 16384 bytes"}}'
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def export(settings: Settings) -> None:
    """Put every setting in RATER_* variables, where worker processes read them."""
    for field in dataclasses.fields(settings):
        os.environ[f"RATER_{field.name.upper()}"] = str(getattr(settings, field.name))


def config_kwargs(settings: Settings) -> dict[str, Any]:
    trusted = settings.http_trusted_proxies
    kwargs: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "workers": settings.http_workers,
        "factory": True,
        "http": HeadTimedProtocol,
        "loop": "uvloop",
        "lifespan": "off",
        "access_log": False,
        "log_level": settings.log_level.lower(),
        "timeout_keep_alive": settings.http_keepalive_s,
        "timeout_graceful_shutdown": settings.http_shutdown_timeout_s,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
        "server_header": False,
    }
    if settings.http_tls_certfile:
        kwargs["ssl_certfile"] = settings.http_tls_certfile
        kwargs["ssl_keyfile"] = settings.http_tls_keyfile
    return kwargs


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT (in-flight requests finish first)."""
    PinKeys.from_settings(settings)  # no PIN secret: ConfigError now, not in every worker
    metrics_dir = ""
    if settings.http_workers > 1:
        # one Prometheus sample file per worker, added up by whichever answers /metrics
        metrics_dir = tempfile.mkdtemp(prefix="rater-serve-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = settings.replace(http_metrics_dir=metrics_dir)
    export(settings)
    scheme = "https" if settings.http_tls_certfile else "http"
    log.info(
        "serving",
        url=f"{scheme}://{settings.http_host}:{settings.http_port}",
        workers=settings.http_workers,
    )
    try:
        uvicorn.run(APP, **config_kwargs(settings))
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
