"""Does the broker answer? One metadata request, bounded (the worker's watchdog asks it before
it calls a worker stalled: rater/pipeline/watchdog.py)."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from rater.errors import ServiceUnavailable
from rater.settings import Settings


def answers(settings: Settings, timeout_s: float = 5.0) -> None:
    """Ask the broker for its list of topics; ServiceUnavailable when it does not answer
    within timeout_s."""

    async def ask() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            await asyncio.wait_for(admin.list_topics(), timeout_s)
        finally:
            await admin.close()

    try:
        asyncio.run(ask())
    except (KafkaError, OSError, TimeoutError) as error:
        raise ServiceUnavailable(
            f"Kafka at {settings.kafka_bootstrap} does not answer: {error!r}"
        ) from error
