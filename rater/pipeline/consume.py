"""The cdrs topic consumer: getmany batches, replay-safe positions, commit on revoke.

Positions (docs/DESIGN.md section 3, "Replays"): on assignment each partition is sought to the lower
of the group's committed offset and the Redis watermark + 1, so debits lost with Redis' last
second of append-only file are applied again (ClickHouse then stores only what it lacks).

Rebalances: aiokafka calls the listener from its coordinator task while the worker may be in the
middle of a batch. The worker holds `lock` from a batch's fetch to its commit; the revoke
callback takes the same lock, so a batch is finished and committed before its partitions move
to another worker, and nothing is processed while positions are being set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from rater import kafka, metrics
from rater.logs import get_logger
from rater.settings import Settings

log = get_logger(__name__)

#: partition -> highest applied offset (-1: none); read from Redis on assignment
WatermarksFn = Callable[[list[int]], Awaitable[dict[int, int]]]
#: called with partitions about to move away (after their last batch committed)
RevokedFn = Callable[[list[int]], None]
#: waits until the batch whose store and commit are still running has committed
DrainFn = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


@dataclass
class CdrConsumer:
    """One worker's aiokafka consumer of settings.topic_cdrs in the group."""

    settings: Settings
    watermarks: WatermarksFn
    on_revoked: RevokedFn = lambda _partitions: None
    drain: DrainFn = _nothing
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    consumer: AIOKafkaConsumer = field(init=False)
    #: partitions currently assigned (kept for lag and idle detection)
    assigned: set[int] = field(default_factory=set)
    #: monotonic time of the last assignment change
    changed_at: float = 0.0
    rebalancing: bool = False

    def __post_init__(self) -> None:
        self.consumer = kafka.consumer(self.settings)

    async def start(self) -> None:
        self.consumer.subscribe([self.settings.topic_cdrs], listener=_Listener(self))
        await self.consumer.start()

    async def stop(self) -> None:
        """Leave the group (a final revoke commits nothing new: batches commit themselves)."""
        await self.consumer.stop()

    async def fetch(self, timeout_ms: int) -> list[ConsumerRecord[bytes, bytes]]:
        """One getmany: records of all partitions, each partition in offset order."""
        if self.rebalancing:
            # between revoke and assign: records fetched now may belong to another worker
            await asyncio.sleep(timeout_ms / 1000)
            return []
        batches = await self.consumer.getmany(
            timeout_ms=timeout_ms, max_records=self.settings.batch_max_records
        )
        records: list[ConsumerRecord[bytes, bytes]] = []
        for tp in sorted(batches, key=lambda t: t.partition):
            records.extend(batches[tp])
        return records

    async def commit(self, next_offsets: dict[int, int]) -> bool:
        """Commit partition -> next offset to read; False when the group moved on (the next
        owner replays from the last commit; every effect before it is idempotent)."""
        if not next_offsets:
            return True
        topic = self.settings.topic_cdrs
        offsets = {TopicPartition(topic, p): o for p, o in next_offsets.items()}
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as error:
            log.warning("commit refused after a rebalance", error=str(error))
            return False
        return True

    def lag(self, positions: dict[int, int]) -> dict[int, int]:
        """Partition -> records between `positions` (next offsets to read) and the high
        watermark, for the assigned partitions the fetcher has seen."""
        topic = self.settings.topic_cdrs
        out: dict[int, int] = {}
        for partition in self.assigned:
            high = self.consumer.highwater(TopicPartition(topic, partition))
            if high is not None and partition in positions:
                out[partition] = max(0, high - positions[partition])
        return out

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        # no batch runs while positions are chosen (a fetch would read from the old position)
        async with self.lock:
            await self._assign(assigned)

    async def _assign(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        self.assigned = set(partitions)
        self.rebalancing = False
        self.changed_at = asyncio.get_running_loop().time()
        metrics.REBALANCES.labels("assigned").inc()
        if not partitions:
            return
        marks = await self.watermarks(partitions)
        seeks: dict[int, int] = {}
        for tp in assigned:
            committed = await self._committed(tp)
            mark = marks.get(tp.partition, -1)
            if committed is None:
                # nothing committed: from the log's start (auto_offset_reset=earliest), which is
                # at or below any watermark; what was debited there is replayed, not skipped
                continue
            # a watermark below the commit: Redis lost its last writes (its append-only file's
            # last second); replay from it so the lost debits are applied again
            target = mark + 1 if 0 <= mark < committed - 1 else committed
            self.consumer.seek(tp, target)
            seeks[tp.partition] = target
        log.info("partitions assigned", partitions=partitions, seek=seeks)

    async def _committed(self, tp: TopicPartition) -> int | None:
        for attempt in range(10):
            try:
                committed: int | None = await self.consumer.committed(tp)
            except KafkaError as error:
                if not error.retriable or attempt == 9:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
            else:
                return committed
        return None

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        # the lock waits for the batch in flight: it commits before the partitions move
        async with self.lock:
            await self.drain()
            partitions = sorted(tp.partition for tp in revoked)
            self.assigned -= set(partitions)
            self.rebalancing = True
            self.changed_at = asyncio.get_running_loop().time()
            metrics.REBALANCES.labels("revoked").inc()
            for partition in partitions:
                if _has_label(partition):
                    metrics.LAG.remove(str(partition))
            self.on_revoked(partitions)
            if partitions:
                log.info("partitions revoked", partitions=partitions)


def _has_label(partition: int) -> bool:
    return any(
        sample.labels.get("partition") == str(partition)
        for metric in metrics.LAG.collect()
        for sample in metric.samples
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: CdrConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner._assigned(assigned)
