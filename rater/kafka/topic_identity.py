"""The incarnation id of the cdrs topic (docs/DESIGN.md section 3, "Topic identity in practice").

aiokafka 0.14 returns no topic ids, and the local broker forgets its log on restart, so offsets
start again at 0. Watermarks and ClickHouse rows are therefore keyed by (incarnation, partition,
offset). The incarnation lives in the meta topic: the record at partition 0, offset 0 holds a
UUID. A worker that finds the meta topic empty writes one; then every worker reads offset 0 again
and uses whatever is there, so two workers racing to write both end up with the same id. A broker
that lost its log has an empty meta topic, hence a new incarnation.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from rater import kafka
from rater.errors import ServiceUnavailable
from rater.logs import get_logger
from rater.settings import Settings

log = get_logger(__name__)


async def incarnation(settings: Settings, *, timeout_s: float = 30.0) -> str:
    """The incarnation id of settings.topic_cdrs, writing one when the meta topic is empty."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    first = await _read_first(settings, deadline)
    if first is not None:
        return first
    record = orjson.dumps(
        {
            "incarnation": str(uuid.uuid4()),
            "topic": settings.topic_cdrs,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic_meta, record, partition=0)
    finally:
        await producer.stop()
    # whoever wrote first wins: read offset 0 again rather than trusting our own write
    first = await _read_first(settings, deadline)
    if first is None:
        raise ServiceUnavailable(f"meta topic {settings.topic_meta!r} stays empty after a write")
    log.info("new topic incarnation", topic=settings.topic_cdrs, incarnation=first)
    return first


async def _read_first(settings: Settings, deadline: float) -> str | None:
    """The id in the first record of the meta topic, or None when it is empty."""
    loop = asyncio.get_running_loop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    tp = TopicPartition(settings.topic_meta, 0)
    while True:
        try:
            await consumer.start()
            break
        except (KafkaError, OSError) as error:
            await consumer.stop()
            if loop.time() > deadline:
                raise ServiceUnavailable(f"Kafka does not answer: {error}") from error
            await asyncio.sleep(0.5)
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        await consumer.seek_to_beginning(tp)
        while loop.time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            for records in batch.values():
                if records:
                    return parse(records[0].value or b"")
        raise ServiceUnavailable(f"meta topic {settings.topic_meta!r} has records but none arrived")
    finally:
        await consumer.stop()


def parse(value: bytes) -> str:
    """The id in a meta record; a record not written by rater still names one incarnation."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("incarnation"), str) and data["incarnation"]:
        return str(data["incarnation"])
    return hashlib.sha256(value).hexdigest()[:32]
