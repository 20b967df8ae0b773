"""A switch's own Kafka topic bridged into the cdrs topic (`rater ingest --from-topic`).

Switch modules that publish to Kafka themselves (Asterisk's cdr_kafka of
braams/asterisk-kafka, Kamailio's kafka module) set no `rater-switch` header, and cdr_kafka no
key. The bridge consumes the switch's topic in a consumer group of its own, publishes each
record to the cdrs topic with the header and the account as the key (rater/ingest/sender.py),
and commits the switch topic's offsets only after the broker acknowledged what it published:
a bridge killed at any moment sends some records again, never loses one, and the pipeline
charges a record sent twice once (docs/DESIGN.md section 3).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from rater import kafka
from rater.ingest.sender import Counts, Progress, Sender
from rater.settings import Settings
from rater.tariffs.model import SwitchSettings

#: records forwarded at a time
MAX_RECORDS = 5_000


def group_of(switch: str, topic: str) -> str:
    return f"rater-ingest.{switch}.{topic}"


async def bridge(
    settings: Settings,
    switch: SwitchSettings,
    format_name: str,
    topic: str,
    *,
    stop: asyncio.Event,
    progress: Progress | None = None,
) -> Counts:
    """Forward the switch topic's records until `stop` is set; the counts of what was sent."""
    await kafka.ensure_topics(settings)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_of(switch.name, topic),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
    producer = kafka.producer(settings)
    await producer.start()
    await consumer.start()
    try:
        sender = Sender(producer, settings.topic_cdrs, switch, format_name, progress=progress)
        while not stop.is_set():
            batches: dict[TopicPartition, list[Any]] = await consumer.getmany(
                timeout_ms=500, max_records=MAX_RECORDS
            )
            values = [
                record.value
                for tp in sorted(batches, key=lambda t: t.partition)
                for record in batches[tp]
                if record.value
            ]
            if values:
                await sender.send(values)
                await sender.acknowledged()
            offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
            if offsets:
                await consumer.commit(offsets)
        return sender.counts
    finally:
        await consumer.stop()
        await producer.stop()
