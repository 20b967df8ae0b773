"""The cdrs topic consumer: bounded fetches, replay-safe positions, rebalance callbacks.

Positions (docs/DESIGN.md section 3, "Replays"): on assignment every partition is sought
explicitly, to the lower of the group's committed offset and the Redis watermark + 1 (so
debits lost with Redis' last second of append-only file are applied again), or to the log's
start when nothing is committed. Every partition being sought, records fetched before the
assignment finished can be dropped without loss: the new positions read them again.

Liveness (docs/DESIGN.md section 3): nothing here waits on a rebalance while holding anything a
rebalance needs. aiokafka runs the rebalance callbacks in its coordinator task, and once a
reassignment has begun its fetch waits for the next assignment, with no timeout of its own; a
loop that held a lock across the fetch, which the revoke callback also wanted, deadlocked (the
member heartbeats "rebalancing" for ever). So:
- the fetch holds no lock and is bounded (batch_timeout_ms + broker_timeout_s);
- every request to the broker (commit, committed offsets, seeks, start, stop) is bounded by
  broker_timeout_s;
- `epoch` changes when a revoke starts and when an assignment ends: the worker drops records
  whose fetch began in another epoch (they may belong to another member, or precede a seek);
- the assignment callback waits for a fetch in flight to return before it seeks (`_fetching`),
  so no fetch straddles a seek and the records dropped are always ones the new positions read
  again. That wait is short and bounded: aiokafka ended the reassignment before it called the
  callback, so the fetch waits only for data (batch_timeout_ms) or its own bound. The revoke
  callback takes nothing a fetch holds;
- the callbacks themselves are the worker's (`Rebalance`), bounded there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from rater import kafka, metrics
from rater.errors import ServiceUnavailable
from rater.kafka import ends
from rater.logs import get_logger
from rater.settings import Settings

log = get_logger(__name__)

T = TypeVar("T")

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


class BrokerTimeout(ServiceUnavailable):
    """A request to the broker did not complete within settings.broker_timeout_s."""


class Rebalance(Protocol):
    """What the worker does when partitions move (each call bounded by the worker)."""

    async def partitions_revoked(self, partitions: list[int]) -> None:
        """Before partitions move away: finish and commit what is in flight for them."""

    async def watermarks(self, partitions: list[int]) -> dict[int, int]:
        """Partition -> highest offset whose debit Redis holds (-1: none)."""

    async def partitions_assigned(self, partitions: list[int]) -> None:
        """After positions were chosen, before any record of the partitions is fetched."""


@dataclass
class CdrConsumer:
    """One worker's aiokafka consumer of settings.topic_cdrs in the group."""

    settings: Settings
    owner: Rebalance
    consumer: AIOKafkaConsumer = field(init=False)
    #: partitions currently assigned
    assigned: set[int] = field(default_factory=set)
    #: partition -> next offset to process (set by the seek on assignment, advanced by commits)
    positions: dict[int, int] = field(default_factory=dict)
    #: changes when a revoke starts and when an assignment ends
    epoch: int = 0
    #: between a revoke's start and the next assignment's end
    rebalancing: bool = False
    #: monotonic time of the last assignment change, and of the last revoke's start
    changed_at: float = 0.0
    rebalancing_since: float = 0.0
    #: an assignment that could not choose positions: the worker must not go on
    failed: BaseException | None = None
    #: held across one getmany; the assignment callback takes it before seeking
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.consumer = kafka.consumer(self.settings)

    # ----------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self.consumer.subscribe([self.settings.topic_cdrs], listener=_Listener(self))
        # start() returns after the first join, which waits for members that went away without
        # leaving until their session expires: a request's bound plus two sessions (a join
        # right after a group's members were stopped took 16 s on the local broker)
        join_s = self.settings.broker_timeout_s + 2 * self.settings.session_timeout_ms / 1000
        try:
            await asyncio.wait_for(self.consumer.start(), join_s)
        except TimeoutError:
            raise BrokerTimeout(
                f"Kafka at {self.settings.kafka_bootstrap}: no answer within {join_s:.0f} s "
                "to join the group"
            ) from None

    async def stop(self, timeout_s: float) -> None:
        """Leave the group (bounded: a member that cannot leave is dropped by the broker after
        its session timeout)."""
        try:
            await asyncio.wait_for(self.consumer.stop(), timeout_s)
        except (TimeoutError, KafkaError, OSError) as error:
            log.warning("the consumer did not leave the group cleanly", error=repr(error))

    async def bounded(self, step: Awaitable[T], what: str) -> T:
        """One request to the broker, bounded by settings.broker_timeout_s."""
        try:
            return await asyncio.wait_for(step, self.settings.broker_timeout_s)
        except TimeoutError:
            raise BrokerTimeout(
                f"Kafka at {self.settings.kafka_bootstrap}: no answer within "
                f"{self.settings.broker_timeout_s} s to {what}"
            ) from None

    # ----------------------------------------------------------------------- records
    async def fetch(self, timeout_ms: int) -> list[Record]:
        """One getmany: records of all partitions, each partition in offset order; [] while a
        rebalance is in progress (fetched records may belong to another member then)."""
        if self.rebalancing:
            await asyncio.sleep(timeout_ms / 1000)
            return []
        try:
            async with self._fetching:
                batches = await asyncio.wait_for(
                    self.consumer.getmany(
                        timeout_ms=timeout_ms, max_records=self.settings.batch_max_records
                    ),
                    timeout_ms / 1000 + self.settings.broker_timeout_s,
                )
        except TimeoutError:
            # aiokafka waits for the next assignment inside getmany once a reassignment began;
            # the bound hands control back to the worker, which checks its stop and health
            return []
        records: list[Record] = []
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
            await self.bounded(self.consumer.commit(offsets), "commit offsets")
        except (CommitFailedError, IllegalStateError) as error:
            log.warning("commit refused after a rebalance", error=str(error))
            return False
        for partition, offset in next_offsets.items():
            if partition in self.assigned:  # batches commit in order: the latest is the position
                self.positions[partition] = offset
        return True

    def lag(self) -> dict[int, int | None]:
        """Assigned partition -> records between the committed position and the high watermark
        of the latest fetch response (None before the first; rater/kafka/ends.py)."""
        topic = self.settings.topic_cdrs
        out: dict[int, int | None] = {}
        for partition in sorted(self.assigned):
            tp = TopicPartition(topic, partition)
            try:
                high = self.consumer.highwater(tp)
            except AssertionError:  # assignment changing under us
                high = None
            out[partition] = ends.lag(high, self.positions.get(partition))
        return out

    # ----------------------------------------------------------------------- rebalances
    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        loop = asyncio.get_running_loop()
        self.epoch += 1
        self.rebalancing = True
        self.rebalancing_since = self.changed_at = loop.time()
        partitions = sorted(tp.partition for tp in revoked)
        metrics.inc(metrics.REBALANCES, 1, "revoked")
        try:
            await self.owner.partitions_revoked(partitions)
        finally:
            self.assigned -= set(partitions)
            for partition in partitions:
                self.positions.pop(partition, None)
                with contextlib.suppress(KeyError):  # a series never set (some versions raise)
                    metrics.LAG.remove(str(partition))
        if partitions:
            log.info("partitions revoked", partitions=partitions)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        metrics.inc(metrics.REBALANCES, 1, "assigned")
        try:
            bound = self.settings.batch_timeout_ms / 1000 + self.settings.broker_timeout_s + 1
            async with asyncio.timeout(bound):
                await self._fetching.acquire()  # no fetch in flight across the seeks
            try:
                seeks = await self._seek(assigned) if partitions else {}
            finally:
                self._fetching.release()
            self.positions = dict(seeks)
            self.assigned = set(partitions)
            if partitions:
                log.info("partitions assigned", partitions=partitions, seek=seeks)
            await self.owner.partitions_assigned(partitions)
        except Exception as error:  # aiokafka would only log it; the worker must stop
            self.failed = error
            log.error("partitions assigned, but positions could not be chosen",
                      partitions=partitions, error=repr(error))  # fmt: skip
        finally:
            self.epoch += 1
            self.rebalancing = False
            self.changed_at = asyncio.get_running_loop().time()

    async def _seek(self, assigned: set[TopicPartition]) -> dict[int, int]:
        marks = await self.owner.watermarks(sorted(tp.partition for tp in assigned))
        seeks: dict[int, int] = {}
        for tp in sorted(assigned):
            committed = await self._committed(tp)
            if committed is None:
                # nothing committed: from the log's start, which is at or below any watermark;
                # what was debited there is replayed, not skipped
                await self.bounded(self.consumer.seek_to_beginning(tp), "find the log's start")
                seeks[tp.partition] = await self.bounded(self.consumer.position(tp), "position")
                continue
            mark = marks.get(tp.partition, -1)
            # a watermark below the commit: Redis lost its last writes (its append-only file's
            # last second); replay from it so the lost debits are applied again
            target = mark + 1 if 0 <= mark < committed - 1 else committed
            self.consumer.seek(tp, target)
            seeks[tp.partition] = target
        return seeks

    async def _committed(self, tp: TopicPartition) -> int | None:
        for attempt in range(10):
            try:
                committed: int | None = await self.bounded(
                    self.consumer.committed(tp), "read the committed offset"
                )
            except (KafkaError, BrokerTimeout) as error:
                if (isinstance(error, KafkaError) and not error.retriable) or attempt == 9:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
            else:
                return committed
        return None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: CdrConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner._assigned(assigned)
