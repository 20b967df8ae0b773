"""Kafka clients and topics. Topics are created here with the configured partition count,
never left to the broker's auto-creation.

aiokafka's idempotent producer fails against the local Tansu broker, so producers here use
acks=all without idempotence; duplicates are caught downstream by (switch, cdr_id) anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from rater.errors import ServiceUnavailable
from rater.settings import Settings


def producer(settings: Settings, **kwargs: Any) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": 5,
        "max_batch_size": 1 << 20,
        "max_request_size": 8 << 20,
    }
    options.update(kwargs)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, *topics: str, **kwargs: Any) -> AIOKafkaConsumer:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": settings.consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_records": settings.batch_max_records,
        "fetch_max_bytes": 64 << 20,
        "max_partition_fetch_bytes": 16 << 20,
    }
    options.update(kwargs)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, int]:
    """Create the cdrs, dead-letter and meta topics if missing; returns name -> partitions."""
    wanted = {
        settings.topic_cdrs: settings.partitions,
        settings.topic_dlq: settings.partitions,
        settings.topic_meta: 1,  # offset 0 of partition 0 holds the incarnation id
    }
    return await create_topics(settings, wanted, timeout_s=timeout_s)


async def create_topics(
    settings: Settings, wanted: dict[str, int], timeout_s: float = 30.0
) -> dict[str, int]:
    """Create the named topics with their partition counts where missing."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as error:
        message = f"Kafka at {settings.kafka_bootstrap} does not answer: {error}"
        raise ServiceUnavailable(message) from error
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in existing]
        if missing:
            # another worker may create one between list and create
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        described = await admin.describe_topics(list(wanted))
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()
