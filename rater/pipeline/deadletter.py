"""The dead-letter topic (settings.topic_dlq): records that could not be stored as a CDR.

Each dead letter is the original record: value = the original bytes, key = the original key,
and headers naming where it came from and why: `reason`, `topic`, `topic_id`, `partition`,
`offset`. Publishing is at-least-once like everything before the offset commit; a Redis
watermark per (topic_id, partition) keeps replays of a batch from dead-lettering a record twice
(only a kill in the instant between the publish and the watermark write can), and readers
de-duplicate on (topic_id, partition, offset), the record's identity.

`replay` publishes dead letters again to the cdrs topic (after a fix of a switch's settings or
the parser); a Redis watermark per dead-letter partition makes a second replay publish only what
arrived since.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from rater import kafka
from rater.kafka import ends
from rater.pipeline.decode import Reject
from rater.redis.connection import RedisLike
from rater.settings import Settings


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, with its origin."""

    dlq_partition: int
    dlq_offset: int
    topic: str
    topic_id: str
    partition: int
    offset: int
    reason: str
    key: bytes | None
    value: bytes

    @property
    def identity(self) -> tuple[str, int, int]:
        return (self.topic_id, self.partition, self.offset)


def _watermark_key(topic_id: str, partition: int) -> str:
    return f"rater:dlq:wm:{topic_id}:{partition}"


def _replayed_key(topic: str, partition: int) -> str:
    return f"rater:dlq:replayed:{topic}:{partition}"


async def publish(
    producer: AIOKafkaProducer,
    redis: RedisLike,
    settings: Settings,
    topic_id: str,
    rejects: Iterable[Reject],
) -> int:
    """Dead-letter the rejects not yet dead-lettered; returns how many were published."""
    by_partition: dict[int, list[Reject]] = {}
    for reject in rejects:
        by_partition.setdefault(reject.partition, []).append(reject)
    if not by_partition:
        return 0
    keys = [_watermark_key(topic_id, p) for p in by_partition]
    marks = await asyncio.to_thread(redis.mget, keys)
    futures = []
    highs: dict[int, int] = {}
    for (partition, items), mark in zip(by_partition.items(), marks, strict=True):
        done = int(mark) if mark is not None else -1
        for reject in items:
            if reject.offset <= done:
                continue
            headers = [
                ("reason", reject.reason.encode()),
                ("topic", settings.topic_cdrs.encode()),
                ("topic_id", topic_id.encode()),
                ("partition", str(reject.partition).encode()),
                ("offset", str(reject.offset).encode()),
            ]
            futures.append(
                await producer.send(
                    settings.topic_dlq, reject.value, key=reject.key, headers=headers
                )
            )
        highs[partition] = max(done, *(r.offset for r in items))
    if futures:
        await asyncio.gather(*futures)
    await asyncio.to_thread(
        redis.mset, {_watermark_key(topic_id, p): str(high) for p, high in highs.items()}
    )
    return len(futures)


def _header(headers: Iterable[tuple[str, bytes]], name: str) -> str:
    for key, value in headers:
        if key == name:
            return value.decode(errors="replace")
    return ""


async def read_all(settings: Settings, *, timeout_s: float = 15.0) -> list[DeadLetter]:
    """Every dead letter, oldest first per partition, de-duplicated by record identity.

    Read to the high watermark the fetch responses carry, not to end_offsets, which the local
    broker answers short (rater/kafka/ends.py). ServiceUnavailable when the broker sends
    nothing for timeout_s before the end: never part of the topic as if it were all of it.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await asyncio.wait_for(consumer.start(), timeout_s)
    try:
        partitions = consumer.partitions_for_topic(settings.topic_dlq)
        if partitions is None:
            await asyncio.wait_for(consumer.topics(), timeout_s)  # refresh metadata once
            partitions = consumer.partitions_for_topic(settings.topic_dlq) or set()
        tps = [TopicPartition(settings.topic_dlq, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await asyncio.wait_for(consumer.seek_to_beginning(*tps), timeout_s)
        letters: list[DeadLetter] = []
        seen: set[tuple[str, int, int]] = set()
        async for batch in ends.read_to_end(consumer, tps, idle_timeout_s=timeout_s):
            for tp, records in sorted(batch.items()):
                for record in records:
                    letter = _letter(tp.partition, record)
                    if letter.identity not in seen:
                        seen.add(letter.identity)
                        letters.append(letter)
        return letters
    finally:
        await consumer.stop()


def _letter(dlq_partition: int, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    headers = list(record.headers or ())
    return DeadLetter(
        dlq_partition=dlq_partition,
        dlq_offset=record.offset,
        topic=_header(headers, "topic"),
        topic_id=_header(headers, "topic_id"),
        partition=int(_header(headers, "partition") or -1),
        offset=int(_header(headers, "offset") or -1),
        reason=_header(headers, "reason"),
        key=record.key,
        value=record.value or b"",
    )


async def replay(settings: Settings, redis: RedisLike) -> int:
    """Publish dead letters not replayed before to the cdrs topic; returns how many."""
    letters = await read_all(settings)
    marks: dict[int, int] = {}
    for letter in letters:
        if letter.dlq_partition not in marks:
            raw = await asyncio.to_thread(
                redis.get, _replayed_key(settings.topic_dlq, letter.dlq_partition)
            )
            marks[letter.dlq_partition] = int(raw) if raw is not None else -1
    todo = [x for x in letters if x.dlq_offset > marks[x.dlq_partition]]
    if not todo:
        return 0
    producer = kafka.producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(
                settings.topic_cdrs,
                letter.value,
                key=letter.key,
                headers=[("replayed_from", f"{letter.dlq_partition}:{letter.dlq_offset}".encode())],
            )
            for letter in todo
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    highs: dict[int, int] = {}
    for letter in todo:
        highs[letter.dlq_partition] = max(highs.get(letter.dlq_partition, -1), letter.dlq_offset)
    await asyncio.to_thread(
        redis.mset, {_replayed_key(settings.topic_dlq, p): str(h) for p, h in highs.items()}
    )
    return len(todo)
