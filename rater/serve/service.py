"""What every endpoint shares: the service's parts, the caller, the body and the answer.

Account calls run inline on the event loop: each is a few Redis round trips on a client with
short socket timeouts (REDIS_TIMEOUT_S). Measured against a thread per call (anyio's pool)
with the same two uvicorn workers, inline served about 7% more authorizations per second at
saturation with a lower p99 (docs/SERVE.md). Concurrency comes from worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from rater.serve.bodies import Fields, form_object, is_form, json_object, read_body
from rater.serve.domain import CallControl
from rater.serve.gate import Gate, Principal
from rater.settings import Settings

#: a Redis that takes longer than this is answered 503, not waited for
REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Service:
    settings: Settings
    control: CallControl
    gate: Gate
    redis: Any


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def principal_of(request: Request) -> Principal:
    """The authenticated switch (401 / 403 otherwise)."""
    return service_of(request).gate.authenticate(request.headers, client_ip(request))


async def json_fields(request: Request, *, empty_ok: bool = False) -> Fields:
    settings = service_of(request).settings
    raw = await read_body(
        request, settings.http_max_body_bytes, float(settings.http_body_timeout_s)
    )
    if is_form(request.headers.get("content-type")):
        return Fields(form_object(raw, empty_ok=empty_ok), form=True)
    return Fields(json_object(raw, empty_ok=empty_ok))


def answer(data: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")
