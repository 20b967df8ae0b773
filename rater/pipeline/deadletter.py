"""The dead-letter topic (settings.topic_dlq): records that could not be stored as a CDR.

Each dead letter is the original record: value = the original bytes, key = the original key,
and headers naming where it came from and why: `reason` (readable text), `reason_kind` (one of
rater/reasons.py's kinds), `error` (the exception's class, when one rejected it), `topic`,
`topic_id`, `partition`, `offset`. A record never exceeds settings.dlq_max_message_bytes: an
original too large for it is cut, with `original_length`, `original_sha256` and `truncated`
headers (docs/DESIGN.md section 4).

Publishing is at-least-once like everything before the offset commit; a Redis watermark per
(topic_id, partition) keeps replays of a batch from dead-lettering a record twice (only a kill
in the instant between the publish and the watermark write can), and readers de-duplicate
on (topic_id, partition, offset), the record's identity.

`replay` publishes dead letters again to the cdrs topic (after a fix of a switch's settings or
the parser); a Redis watermark per dead-letter partition makes a second replay publish only what
arrived since.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from rater import kafka
from rater.kafka import ends
from rater.pipeline.decode import Reject
from rater.redis import keys as redis_keys
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
    #: the `reason_kind` header (rater/reasons.py); "" on a letter written without one
    reason_kind: str = ""
    #: the original's `rater-switch` and `rater-format` headers (rater/pipeline/formats/): a
    #: replay sends them again, so a switch's own format is decoded as such
    origin_headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def identity(self) -> tuple[str, int, int]:
        return (self.topic_id, self.partition, self.offset)


_watermark_key = redis_keys.dlq_watermark
_replayed_key = redis_keys.dlq_replayed


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
    marks = await asyncio.to_thread(_get_many, redis, keys)
    futures = []
    highs: dict[int, int] = {}
    for (partition, items), mark in zip(by_partition.items(), marks, strict=True):
        done = int(mark) if mark is not None else -1
        for reject in items:
            if reject.offset <= done:
                continue
            letter = letter_of(reject, settings, topic_id)
            futures.append(
                await producer.send(
                    settings.topic_dlq, letter.value, key=letter.key, headers=letter.headers
                )
            )
        highs[partition] = max(done, *(r.offset for r in items))
    if futures:
        await asyncio.gather(*futures)
    await asyncio.to_thread(
        _set_many, redis, {_watermark_key(topic_id, p): str(high) for p, high in highs.items()}
    )
    return len(futures)


def _get_many(redis: RedisLike, keys: list[str]) -> list[Any]:
    """GET of each key in one round trip. Not MGET: the watermarks of a batch's partitions
    live in different slots of a Redis Cluster, where one MGET of them is refused (CROSSSLOT)."""
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
    return list(pipe.execute())


def _set_many(redis: RedisLike, values: dict[str, str]) -> None:
    """SET of each key in one round trip (MSET across slots is refused as MGET is)."""
    pipe = redis.pipeline(transaction=False)
    for key, value in values.items():
        pipe.set(key, value)
    pipe.execute()


@dataclass(frozen=True)
class Letter:
    """A dead-letter record as published."""

    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (what counts against the message size limit,
        beside RECORD_OVERHEAD)."""
        heads = sum(len(name) + len(value) + _HEADER_OVERHEAD for name, value in self.headers)
        return len(self.value) + len(self.key or b"") + heads


#: a record's own framing (attributes, deltas, lengths as varints) plus its batch header (61
#: bytes in format v2), with room to spare
RECORD_OVERHEAD = 256
#: a header's name and value lengths as varints
_HEADER_OVERHEAD = 10
#: a key longer than this is kept as its first bytes (it is the account: short in practice)
_KEY_MAX = 1024


def letter_of(reject: Reject, settings: Settings, topic_id: str) -> Letter:
    """The dead-letter record of a reject: the original key and bytes, and headers naming where
    it came from and why (`reason`, `reason_kind`, `error`, `topic`, `topic_id`, `partition`,
    `offset`). It never exceeds settings.dlq_max_message_bytes: an original too large is cut,
    and `original_length` and `original_sha256` (hex) name the whole, `truncated` is "1"."""
    headers = [
        ("reason", reject.reason.text.encode()),
        ("reason_kind", reject.reason.kind.value.encode()),
        ("topic", settings.topic_cdrs.encode()),
        ("topic_id", topic_id.encode()),
        ("partition", str(reject.partition).encode()),
        ("offset", str(reject.offset).encode()),
    ]
    if reject.error:
        headers.append(("error", reject.error.encode()))
    headers += _origin(reject.record)
    value, key = reject.value, reject.key
    letter = Letter(value, key, headers)
    limit = settings.dlq_max_message_bytes - RECORD_OVERHEAD
    if letter.size <= limit:
        return letter
    if key is not None and len(key) > _KEY_MAX:
        headers += _whole("original_key", key)
        key = key[:_KEY_MAX]
    headers += _whole("original", value)
    headers.append(("truncated", b"1"))
    room = limit - Letter(b"", key, headers).size
    return Letter(value[: max(room, 0)], key, headers)


#: headers of an original record that say how to read it (rater/pipeline/formats/)
ORIGIN_HEADERS = ("rater-switch", "rater-format")


def _origin(record: object) -> list[tuple[str, bytes]]:
    headers: Iterable[tuple[str, bytes]] = getattr(record, "headers", None) or ()
    return [(name, value) for name, value in headers if name in ORIGIN_HEADERS]


def _whole(name: str, data: bytes) -> list[tuple[str, bytes]]:
    return [
        (f"{name}_length", str(len(data)).encode()),
        (f"{name}_sha256", hashlib.sha256(data).hexdigest().encode()),
    ]


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
        reason_kind=_header(headers, "reason_kind"),
        key=record.key,
        value=record.value or b"",
        origin_headers=tuple(_origin(record)),
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
                headers=[
                    ("replayed_from", f"{letter.dlq_partition}:{letter.dlq_offset}".encode()),
                    *letter.origin_headers,
                ],
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
