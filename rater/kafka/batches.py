"""Records to one topic as record batches, one partition at a time (aiokafka's send_batch).

One `send` per record costs a future and a task each: about 28k records/s against about 260k
with batches (docs/DESIGN.md section 7). The load generator and `rater ingest` both publish
this way; keys choose partitions exactly as aiokafka's DefaultPartitioner would, so a worker
sees an account's records in one partition whichever tool sent them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from aiokafka.partitioner import murmur2

from rater.errors import ConfigError

Header = tuple[str, bytes]


class BatchSender:
    """Record batches per partition, at most `max_pending` of them not yet acknowledged."""

    def __init__(self, producer: Any, topic: str, *, max_pending: int) -> None:
        self.producer = producer
        self.topic = topic
        self.max_pending = max_pending
        self.partitions: list[int] = []
        self._partition_of: dict[bytes, int] = {}
        self._pending: deque[asyncio.Future[Any]] = deque()

    async def start(self) -> None:
        found = await self.producer.partitions_for(self.topic)
        if not found:
            raise ConfigError(f"topic {self.topic!r} has no partitions (create it first)")
        self.partitions = sorted(found)

    def partition(self, key: bytes) -> int:
        """The partition aiokafka's DefaultPartitioner would choose for `key`."""
        found = self._partition_of.get(key)
        if found is None:
            found = self.partitions[(murmur2(key) & 0x7FFFFFFF) % len(self.partitions)]
            self._partition_of[key] = found
        return found

    async def send(
        self,
        partition: int,
        records: Iterable[tuple[bytes | None, bytes]],
        headers: list[Header] | None = None,
    ) -> None:
        """Hand (key, value) records of one partition to the producer, in order."""
        batch = self.producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                await self._hand_over(batch, partition)
                batch = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ConfigError(
                        f"a record of {len(value)} bytes exceeds the producer's batch size"
                    )
        if batch.record_count():
            await self._hand_over(batch, partition)

    async def _hand_over(self, batch: Any, partition: int) -> None:
        future = await self.producer.send_batch(batch, self.topic, partition=partition)
        self._pending.append(future)
        while len(self._pending) > self.max_pending or (self._pending and self._pending[0].done()):
            await self._pending.popleft()

    async def acknowledged(self) -> None:
        """Wait until the broker acknowledged every batch handed over so far."""
        while self._pending:
            await self._pending.popleft()
