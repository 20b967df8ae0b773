"""POST /v1/cdrs/{switch}: a switch posts its CDRs (FreeSWITCH's mod_json_cdr; docs/SWITCHES.md).

The switch authenticates with its token (Bearer, or Basic `switch:token`: mod_json_cdr's
`cred`) and may post only as itself. The body is one record of the switch's format: for
freeswitch-json the module's JSON, or its form body `cdr=...` (URL-encoded or base64), which is
unwrapped so the topic holds the JSON itself. The record is published to the cdrs topic with
the `rater-switch` header and the account as the key, exactly as `rater ingest` publishes it.

Answers:
- 200 only after the broker acknowledged the record (acks=all), so mod_json_cdr's retries and
  its err-log-dir keep a CDR safe while rater or Kafka is down (503 then);
- 200 for a B-leg too (log-b-leg is on by default): the worker counts it as `other leg`;
- 400 for a body that can never be a record of the switch's format (not JSON, not an object,
  no call id): no setting can make it one. A record the format reads but the pipeline will
  refuse (a missing account, a number the switch's settings cannot normalise) is published:
  the worker dead-letters it with the reason, and `rater dlq replay` brings it back after the
  settings are fixed, so nothing is lost;
- 401/403 as for every endpoint, 413 over MAX_BYTES; 503 while the switch's settings cannot
  read records at all (the operator's to fix: the switch sends the CDR again later).

Re-posting the same document is safe: CDRs are charged once per (switch, cdr_id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater import kafka
from rater.errors import ConfigError
from rater.logs import get_logger
from rater.pipeline.decode import OTHER_LEG, InvalidRecord
from rater.pipeline.formats import SWITCH_HEADER, convert, freeswitch
from rater.reasons import Kind
from rater.serve.bodies import read_body
from rater.serve.problems import ApiError, Code
from rater.serve.service import answer, principal_of, service_of
from rater.switches.registry import SwitchRegistry

log = get_logger(__name__)

#: the largest record taken: it must fit a Kafka message (1,048,588 bytes on the local broker)
#: and its dead letter (docs/DESIGN.md section 4); mod_json_cdr documents are a few KB
MAX_BYTES = 1_000_000
#: how long a post waits for the broker's acknowledgement before answering 503
ACK_TIMEOUT_S = 10.0
#: reasons no setting of the switch can fix: the body is not a record at all
_NEVER = frozenset({Kind.BAD_JSON, Kind.NOT_AN_OBJECT})


class _Producer:
    """One producer per server process, started on the first post."""

    def __init__(self) -> None:
        self.producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()

    async def get(self, request: Request) -> AIOKafkaProducer:
        if self.producer is not None:
            return self.producer
        async with self.lock:
            if self.producer is None:
                settings = service_of(request).settings
                producer = kafka.producer(settings, request_timeout_ms=int(ACK_TIMEOUT_S * 1000))
                try:
                    await asyncio.wait_for(producer.start(), ACK_TIMEOUT_S)
                except (KafkaError, OSError, TimeoutError) as error:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                    raise _unavailable(f"Kafka does not answer: {error}") from None
                self.producer = producer
            return self.producer

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None


def _unavailable(message: str) -> ApiError:
    return ApiError(503, Code.UNAVAILABLE, message)


def _producer_of(request: Request) -> _Producer:
    state = request.app.state
    if not hasattr(state, "cdr_producer"):
        state.cdr_producer = _Producer()
    holder: _Producer = state.cdr_producer
    return holder


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Stops the CDR producer when the server stops (pending records are flushed)."""
    yield
    holder = getattr(app.state, "cdr_producer", None)
    if holder is not None:
        await holder.stop()


async def post_cdr(request: Request) -> Response:
    switch = request.path_params["switch"]
    principal = principal_of(request)
    principal.check_switch(switch)
    service = service_of(request)
    body = await read_body(request, MAX_BYTES, float(service.settings.http_body_timeout_s))
    settings = SwitchRegistry(service.redis).get(switch)
    value = body
    if settings.format == freeswitch.NAME:
        try:
            value = _document_bytes(body)
        except InvalidRecord as why:
            raise ApiError(400, Code.BAD_JSON, why.reason.text, "body") from None
    key, cdr_id, other_leg = _key_of(value, settings)
    producer = await _producer_of(request).get(request)
    try:
        await asyncio.wait_for(
            producer.send_and_wait(
                service.settings.topic_cdrs, value, key=key,
                headers=[(SWITCH_HEADER, switch.encode())],
            ),
            ACK_TIMEOUT_S,
        )  # fmt: skip
    except (KafkaError, TimeoutError) as error:
        log.warning("a CDR post was not acknowledged", switch=switch, error=repr(error))
        raise _unavailable("Kafka did not acknowledge the CDR; send it again") from None
    return answer({"accepted": True, "switch": switch, "cdr_id": cdr_id, "other_leg": other_leg})


def _document_bytes(body: bytes) -> bytes:
    """mod_json_cdr's body as the JSON document itself."""
    stripped = body.strip()
    if stripped.startswith(b"cdr="):
        stripped = freeswitch.unwrap_form(stripped[4:].split(b"&", 1)[0])
    freeswitch.document(stripped)  # raises for a body that is no JSON object
    return stripped


def _key_of(value: bytes, settings: Any) -> tuple[bytes | None, str, bool]:
    """(key, cdr_id, other leg) of a record; 400 for one no setting can make a record."""
    try:
        fields = convert(value, settings)
    except InvalidRecord as why:
        if why.reason.kind in _NEVER or _no_identity(value, settings):
            raise ApiError(400, Code.BAD_JSON, why.reason.text, "body") from None
        return None, "", False  # published all the same: the worker names the reason
    except ConfigError as error:  # the operator's to fix; the switch sends it again later
        raise _unavailable(f"switch {settings.name!r} cannot be read: {error}") from None
    if fields is OTHER_LEG:
        return None, "", True
    account = fields.get("account") or ""
    return (account.encode() or None), str(fields.get("cdr_id") or ""), False


def _no_identity(value: bytes, settings: Any) -> bool:
    """A FreeSWITCH document without variables.uuid has no call id: never a CDR."""
    if settings.format != freeswitch.NAME:
        return False
    variables = freeswitch.document(value).get("variables")
    return not isinstance(variables, dict) or not variables.get("uuid")


def routes() -> list[Route]:
    return [Route("/v1/cdrs/{switch}", post_cdr, methods=["POST"])]
