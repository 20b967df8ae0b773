"""Where a partition's log ends: the high watermark that fetch responses carry.

The local broker (Tansu 0.6) answers ListOffsets(latest), which `end_offsets` sends, with its
last record batch's base offset + 1, not the offset after the last record: for five batches
of 100 records it says 401 where the log ends at 500 (docs/DESIGN.md section 7). Fetch responses
carry the right high watermark. So rater never takes "the end" from end_offsets: a reader
fetches until its position reaches the high watermark of the latest fetch response and a fetch
brings nothing past it, and lag is that high watermark minus the position.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from rater.errors import ServiceUnavailable

Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


def lag(high: int | None, position: int | None) -> int | None:
    """Records between a position (next offset to read) and the high watermark; None when
    either is unknown (no fetch response yet)."""
    if high is None or position is None:
        return None
    return max(0, high - position)


async def read_to_end(
    consumer: AIOKafkaConsumer,
    partitions: Sequence[TopicPartition],
    *,
    idle_timeout_s: float = 15.0,
    poll_ms: int = 500,
) -> AsyncIterator[Records]:
    """Fetched records of `partitions` (assigned to `consumer` and sought where the caller
    wants to start) until each partition's position reaches the high watermark its latest
    fetch response carried. Records appended after that are left for the next reader.

    ServiceUnavailable when the broker sends nothing for idle_timeout_s while a partition is
    still short of its end: a reader never returns part of a log as if it were all of it.
    """
    remaining = set(partitions)
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while remaining:
        batch = await asyncio.wait_for(
            consumer.getmany(*remaining, timeout_ms=poll_ms), poll_ms / 1000 + idle_timeout_s
        )
        if any(batch.values()):
            quiet_since = loop.time()
            yield batch
        for tp in list(remaining):
            high = consumer.highwater(tp)
            if high is None:
                continue  # no fetch response for it yet
            position = await asyncio.wait_for(consumer.position(tp), idle_timeout_s)
            if position >= high:
                remaining.discard(tp)
        if remaining and loop.time() - quiet_since > idle_timeout_s:
            short = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(remaining))
            raise ServiceUnavailable(
                f"the broker sent nothing for {idle_timeout_s:.0f} s; not read to the end: {short}"
            )


async def high_watermarks(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], *, timeout_s: float = 15.0
) -> dict[TopicPartition, int]:
    """Each partition's log end, as a fetch response says it (the partitions are assigned to
    `consumer`; their positions move to the end). ServiceUnavailable when no fetch response
    came within timeout_s."""
    # ListOffsets(latest) lands at or before the true end on the local broker; a fetch from
    # there brings the high watermark
    await asyncio.wait_for(consumer.seek_to_end(*partitions), timeout_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await asyncio.wait_for(consumer.getmany(*partitions, timeout_ms=100), timeout_s)
        highs = {tp: consumer.highwater(tp) for tp in partitions}
        if all(high is not None for high in highs.values()):
            return {tp: int(high) for tp, high in highs.items()}
        if loop.time() > deadline:
            unknown = ", ".join(
                f"{tp.topic}[{tp.partition}]" for tp in partitions if highs[tp] is None
            )
            raise ServiceUnavailable(f"no fetch response within {timeout_s:.0f} s for {unknown}")
