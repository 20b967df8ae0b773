"""The whole flow of one batch, on one screen (docs/DESIGN.md sections 3 and 4):

    records --decode--> CDRs + rejects --normalise--> numbers --late--> late / copies
            --lookup--> accounts, tariffs --rate--> price, cost --debit--> outcome per CDR
            --store--> rated_cdrs (not duplicates) + dead letters (rejects) --commit--> offsets

Offsets are committed last and every effect before them is idempotent: the debit script skips
offsets at or below its watermark and de-duplicates (switch, cdr_id); the store inserts only the
message identities ClickHouse lacks; dead letters carry their identity. So a worker killed at any
moment and restarted charges nothing twice and loses nothing.

No single record stops a batch: decode and normalise reject a record that raises (dead letter);
a batch-level call that fails because of some records is halved until they are found
(rater/pipeline/isolate.py), and those are stored unrated with the reason. Fates, reasons and
the rows stored are rater/pipeline/fates.py; the stages are their own modules.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from aiokafka import AIOKafkaProducer

from rater.accounts.lookup import AccountLookup
from rater.clock import Clock
from rater.logs import get_logger
from rater.pipeline import deadletter as dlq
from rater.pipeline import fates, guarded
from rater.pipeline.conflicts import Conflicts, ConflictStore
from rater.pipeline.debit import Debiter
from rater.pipeline.decode import DecodeRules, KafkaRecord, Reject
from rater.pipeline.fates import (
    DUPLICATE,
    INVALID,
    RATED,
    UNANSWERED,
    UNRATED,
    BatchReport,
    Fate,
    apply_outcomes,
    rated_rows,
)
from rater.pipeline.formats import decode_batch
from rater.pipeline.late import LateCheck
from rater.pipeline.normalise import SwitchCache, SwitchNames, normalise
from rater.pipeline.rate import rate_batch
from rater.pipeline.store import CdrStore, RatedRows
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.numbers import normalise_many
from rater.switches.registry import SwitchRegistry
from rater.tariffs.loader import TariffLoader
from rater.tariffs.model import SwitchSettings
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

__all__ = ["DUPLICATE", "INVALID", "RATED", "UNANSWERED", "UNRATED", "BatchReport", "Fate",
           "Pipeline", "Prepared"]  # fmt: skip

CONFLICT = "conflict"  # a re-send with other rating fields (rater/pipeline/conflicts.py)

#: the counting and metrics of a finished batch (rater/pipeline/fates.py)
_count = fates.count
_observe = fates.observe


@dataclass
class Prepared:
    """A batch rated and debited, waiting for its store and commit."""

    batch: int  # 1-based number of the batch in this process (fault injection counts them)
    report: BatchReport
    rows: RatedRows
    duplicates: int
    replayed: npt.NDArray[np.bool_]
    rejects: list[Reject]
    conflicts: Conflicts


@dataclass
class Pipeline:
    """One worker's stages; `process` takes a fetched batch to its stored, debited state."""

    settings: Settings
    topic_id: str
    redis: RedisLike
    producer: AIOKafkaProducer
    switches: SwitchRegistry = field(init=False)
    lookup: AccountLookup = field(init=False)
    loader: TariffLoader = field(init=False)
    debiter: Debiter = field(init=False)
    store: CdrStore = field(init=False)
    conflicts: ConflictStore = field(init=False)
    clock: Clock = field(init=False)
    switch_names: SwitchNames = field(init=False)
    late_check: LateCheck = field(init=False)
    batches: int = 0
    #: called (in the prepare thread) right before a batch is debited; what it raises ends the
    #: batch's prepare with nothing debited (the worker checks the Redis server here)
    before_debit: Callable[[], None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.switches = SwitchRegistry(self.redis)
        self.lookup = AccountLookup(self.redis)
        self.loader = TariffLoader(TariffStore(self.redis, self.settings, clickhouse=False))
        self.debiter = Debiter(self.redis, settings=self.settings)
        self.store = CdrStore(self.settings)
        self.conflicts = ConflictStore(self.store.client)
        self.clock = Clock.of(self.settings)
        self.switch_names = SwitchNames(self.redis)
        self.late_check = LateCheck(self.settings)

    async def process(self, records: Sequence[KafkaRecord]) -> BatchReport:
        """Decode, rate, debit, store and dead-letter one fetched batch (not the commit)."""
        return await self.finish(await self.prepare(records))

    async def prepare(self, records: Sequence[KafkaRecord]) -> Prepared:
        """Decode, normalise, look up, rate and debit: everything up to the store.

        The synchronous stages run in a thread: the event loop stays free for the consumer's
        heartbeats while a batch (or a tariff recompile) takes a while.
        """
        return await asyncio.to_thread(self._rate_and_debit, records)

    async def finish(self, prepared: Prepared) -> BatchReport:
        """Store the rows, dead-letter the rejects, count: a prepared batch's way to the point
        where its offsets may be committed (rater/pipeline/checkpoint.py runs these steps one
        by one, retrying each, and commits after them)."""
        await self.store_rows(prepared)
        await self.dead_letter(prepared)
        self.fault("after_store", prepared.batch)
        return self.account(prepared)

    async def store_rows(self, prepared: Prepared) -> int:
        """Insert the batch's rows and conflicts ClickHouse does not hold yet (both idempotent,
        rater/pipeline/conflicts.py). About 90% of a store is the server's work (parts,
        materialized views), so the worker overlaps it with the next batch's prepare."""
        report = prepared.report
        with _Timer(report.stage_seconds)("store"):
            report.stored = await asyncio.to_thread(self.store.store, self.topic_id, prepared.rows)
            await asyncio.to_thread(self.conflicts.store, self.topic_id, prepared.conflicts)
        return report.stored

    async def store_group(self, batches: Sequence[Prepared]) -> int:
        """`store_rows` of several batches with their rows in ONE insert
        (rater/pipeline/checkpoint.py gathers them); each batch's report gets its rows stored
        and its share of the time by rows."""
        started = time.perf_counter()
        stored = await asyncio.to_thread(
            self.store.store_all, self.topic_id, [prepared.rows for prepared in batches]
        )
        for prepared in batches:
            if len(prepared.conflicts):
                await asyncio.to_thread(self.conflicts.store, self.topic_id, prepared.conflicts)
        seconds = time.perf_counter() - started
        rows = sum(len(prepared.rows) for prepared in batches)
        for prepared, count in zip(batches, stored, strict=True):
            share = seconds * (len(prepared.rows) / rows if rows else 1 / len(batches))
            prepared.report.stored = count
            prepared.report.stage_seconds["store"] = (
                prepared.report.stage_seconds.get("store", 0.0) + share
            )
        return sum(stored)

    async def dead_letter(self, prepared: Prepared) -> int:
        """Publish the rejects not dead-lettered yet (a Redis watermark makes it idempotent)."""
        report = prepared.report
        with _Timer(report.stage_seconds)("dead_letter"):
            report.dead_lettered = await dlq.publish(
                self.producer, self.redis, self.settings, self.topic_id, prepared.rejects
            )
        return report.dead_lettered

    def account(self, prepared: Prepared) -> BatchReport:
        """Outcome counts and metrics of a stored batch."""
        report = prepared.report
        _count(report, prepared.rows, prepared.duplicates, prepared.rejects)
        if len(prepared.conflicts):
            report.outcomes[(CONFLICT, "")] = len(prepared.conflicts)
        _observe(report, prepared.rows, prepared.replayed)
        return report

    def new_incarnation(self, topic_id: str) -> None:
        """The cdrs topic started a new log (the broker lost its own): later batches are keyed
        by the new incarnation, and nothing learnt about the old one's offsets applies."""
        self.topic_id = topic_id
        self.store.forget_all()

    def watermark(self, partition: int) -> int:
        """Highest offset of a partition whose debit Redis holds (-1: none): where a new owner
        may have to replay from (docs/DESIGN.md section 3, "Replays")."""
        return self.debiter.watermark(self.topic_id, partition)

    def partitions_revoked(self, partitions: list[int]) -> None:
        """These partitions moved to another worker, which may store them from now on."""
        self.store.forget(partitions)

    def _rate_and_debit(self, records: Sequence[KafkaRecord]) -> Prepared:
        report = BatchReport(records=len(records))
        timer = _Timer(report.stage_seconds)
        now = self.clock.now_s()
        settings = self.settings
        with timer("decode"):
            switch_of = SwitchCache(self.switches)
            rules = DecodeRules.of(settings, now)
            decoded = decode_batch(records, switch_of, switch_of.timezone_of(), rules)
            cdrs, rejects, report.other_legs = decoded.batch, decoded.rejects, decoded.other_legs
            cdrs, numbers, bad = normalise(records, cdrs, switch_of)
            rejects += bad
            report.switch_labels = self.switch_names.labels(
                [*cdrs.switch.tolist(), *(r.switch for r in rejects)]
            )
        with timer("late"):
            late = self.late_check(self.topic_id, cdrs, numbers, now)
            cdrs, numbers, report.late = late.cdrs, late.numbers, late.seen
        with timer("lookup"):
            accounts = guarded.resolve(self.lookup, cdrs)
            compiled = self.loader.compiled()
        with timer("rate"):
            rows = rated_rows(
                compiled, cdrs, accounts, numbers.value, numbers.length, late=late.late,
                max_price=settings.max_price_micro,
            )  # fmt: skip
        with timer("debit"):
            if self.before_debit is not None:
                self.before_debit()
            result = guarded.debit(self.debiter, self.topic_id, rows)
            conflicts = Conflicts.of(rows.cdrs, result)
            rows, duplicates, replayed = apply_outcomes(
                rows, result, window_s=settings.dedup_window_s
            )
        self.batches += 1
        self.fault("after_debit", self.batches)
        return Prepared(
            self.batches, report, rows, duplicates + late.duplicates, replayed, rejects, conflicts
        )

    def warm_up(self) -> None:
        """Compile the tariffs and the kernels before joining the group (a first batch that
        compiles for many seconds would otherwise stall the consumer in the middle of a join)."""
        compiled = self.loader.compiled()
        empty = np.zeros(1, dtype=np.int64)
        rate_batch(
            compiled, np.full(1, -1, np.int32), np.full(1, -1, np.int32), empty,
            np.zeros(1, np.int8), empty, np.zeros(1, np.int32),
        )  # fmt: skip
        normalise_many(["+31201234567"], SwitchSettings())

    def fault(self, point: str, batch: int) -> None:
        """Fault injection for the tests, at a named point of a batch from batch
        settings.fault_after_batches on: SIGKILL ourselves (after_debit, after_store,
        before_commit) or stop dead (freeze_before_commit: the calling thread sleeps, which on
        the event loop's thread freezes the worker; stall_* points are awaited by the checkpoint
        instead, see `stalls`)."""
        wanted = self.settings.fault_point
        if batch < self.settings.fault_after_batches or wanted.removeprefix("freeze_") != point:
            return
        if wanted == point:
            log.warning("fault injection: SIGKILL", point=point, batch=batch)
            os.kill(os.getpid(), signal.SIGKILL)
        log.warning("fault injection: freeze", point=point, batch=batch)
        time.sleep(86_400)

    def stalls(self, point: str, batch: int) -> bool:
        """Fault injection: True when the batch should wait forever at `point` with the event
        loop free (settings.fault_point stall_<point>), as a deadlocked await would."""
        return (
            self.settings.fault_point == f"stall_{point}"
            and batch >= self.settings.fault_after_batches
        )


class _Timer:
    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self.into, stage)


class _Stage:
    def __init__(self, into: dict[str, float], stage: str) -> None:
        self.into, self.stage = into, stage

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.into[self.stage] = self.into.get(self.stage, 0.0) + time.perf_counter() - self.started
