"""The checkpoint: how a prepared batch reaches its offset commit (docs/DESIGN.md section 3).

In the manner of quix-streams' Checkpoint, one object per batch holds what must be done
before its offsets may be committed, and the checkpointer does it in a fixed order:

    store (rated_cdrs rows, ClickHouse) -> dead-letter (rejects, Kafka) -> commit offsets

Every step before the commit is idempotent (the store inserts only what ClickHouse lacks, the
dead-letter publish keeps a Redis watermark), so a step that fails on a service error is done
again; the commit comes last, so a worker killed anywhere before it leaves the batch to be
replayed, never lost, and a replayed debit is not charged twice.

**Gathering.** ClickHouse pays per insert (a part written and merged, each materialized view
run once per block): 20,000-row inserts cost its server far less per row than 5,000-row ones
(benchmarks/RESULTS.md), while a fetch is bounded by RATER_BATCH_MAX_RECORDS (the debit
script's exact sums, docs/DESIGN.md section 4). So checkpoints wait in a group until their
rows reach RATER_INSERT_ROWS, or RATER_INSERT_WAIT_MS passed since the first of them was
submitted (thin traffic keeps its latency bounded), or a drain asks for them; the group is
then stored in ONE insert, its rejects dead-lettered, and the offsets of all its batches
committed together, after the insert that holds their rows.

One group is in flight at a time, and one more gathers behind it: the worker prepares the
next batches (decode, rate, debit) while a group stores and commits; a gathering group that is
full makes `submit` wait for the one in flight, which bounds memory. Groups commit in order. A
revoke or a stop waits for everything submitted (`drain`: no more gathering); when that takes
longer than the caller's bound, `abandon` cancels it: nothing of it is committed and the
partitions' next owner replays it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from rater.logs import get_logger
from rater.pipeline.flow import BatchReport, Pipeline, Prepared

log = get_logger(__name__)

T = TypeVar("T")

#: runs one step, again after an infrastructure error (the worker's retry policy)
Retry = Callable[[str, Callable[[], Awaitable[T]]], Awaitable[T]]


class Committer(Protocol):
    async def commit(self, next_offsets: dict[int, int]) -> bool:
        """Commit partition -> next offset to read; False when the group moved on."""


@dataclass
class Checkpoint:
    """One prepared batch and the offsets it may commit once stored."""

    prepared: Prepared
    #: partition -> next offset to read (last offset of the batch + 1)
    offsets: dict[int, int]
    #: producer timestamps (epoch ms) of a sample of the batch's records, for latencies
    timestamps: list[int] = field(default_factory=list)
    fetch_s: float = 0.0
    #: False when the group had moved on and refused the commit (the next owner replays)
    committed: bool = False
    #: when it was submitted (monotonic seconds): its group waits insert_wait_s at most
    submitted_at: float = 0.0

    @property
    def rows(self) -> int:
        return len(self.prepared.rows)


@dataclass
class Checkpointer:
    """Runs groups of checkpoints one at a time: store (one insert), dead-letter, commit."""

    pipeline: Pipeline
    committer: Committer
    retry: Retry[object]
    #: called with each committed checkpoint and its report
    on_done: Callable[[Checkpoint, BatchReport], None]
    #: a group is stored once its rows reach this (RATER_INSERT_ROWS; 1: every batch alone)
    insert_rows: int = 20_000
    #: ... or once its first checkpoint waited this long (RATER_INSERT_WAIT_MS / 1000)
    insert_wait_s: float = 0.25
    #: what the group in flight is doing (the worker's health reports it)
    step: str = ""
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    #: submitted, not yet in a group in flight, in order
    _waiting: list[Checkpoint] = field(default_factory=list, init=False)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _group_done: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    #: drains waiting: a group gathers no longer
    _flushing: int = field(default=0, init=False)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def _waiting_rows(self) -> int:
        return sum(checkpoint.rows for checkpoint in self._waiting)

    async def submit(self, checkpoint: Checkpoint) -> None:
        """Add the checkpoint to the gathering group (after waiting for the group in flight
        when the gathering one is full); the error of a group that failed for good."""
        while self.busy and self._waiting_rows() >= self.insert_rows:
            task = self._task
            assert task is not None
            self._group_done.clear()
            done_waiting = asyncio.ensure_future(self._group_done.wait())
            try:
                await asyncio.wait({task, done_waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                done_waiting.cancel()
        task = self._task
        if task is not None and task.done():
            self._task = None
            task.result()  # a group that failed for good: its error, here
        checkpoint.submitted_at = time.monotonic()
        self._waiting.append(checkpoint)
        self._arrived.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run_groups(), name="checkpoint")

    async def drain(self) -> None:
        """Wait until everything submitted has committed; the error of a group that failed.

        Shielded: a caller that gives up waiting (a bound, a cancellation) does not cancel
        the groups; only `abandon` does.
        """
        task = self._task
        if task is None:
            return
        self._flushing += 1
        self._arrived.set()
        try:
            await asyncio.shield(task)
        finally:
            self._flushing -= 1
        if self._task is task:
            self._task = None

    def abandon(self) -> bool:
        """Cancel the group in flight and drop the gathering one; True when there was one. A
        step already running in a thread (a ClickHouse insert) still ends, but no later step
        and no commit happen."""
        task, self._task = self._task, None
        dropped, self._waiting = self._waiting, []
        if task is None or task.done():
            return False
        task.cancel()
        log.warning("checkpoint abandoned: its batches replay from the last commit",
                    step=self.step, batches=len(dropped))  # fmt: skip
        return True

    async def _run_groups(self) -> None:
        while self._waiting:
            await self._gather()
            group, self._waiting = self._waiting, []
            await self._run(group)
            self._group_done.set()

    async def _gather(self) -> None:
        """Until the waiting rows reach insert_rows, the first waited insert_wait_s, or a
        drain asks."""
        deadline = self._waiting[0].submitted_at + self.insert_wait_s
        while not self._flushing and self._waiting_rows() < self.insert_rows:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _run(self, group: list[Checkpoint]) -> None:
        pipeline = self.pipeline
        batches = [checkpoint.prepared for checkpoint in group]
        last = max(prepared.batch for prepared in batches)
        self.step = "store"
        await self.retry("store", lambda: pipeline.store_group(batches))
        self.step = "dead-letter"
        for prepared in batches:
            await self.retry("dead-letter", lambda p=prepared: pipeline.dead_letter(p))  # type: ignore[misc]
        pipeline.fault("after_store", last)
        if pipeline.stalls("before_commit", last):
            log.warning("fault injection: stall", point="before_commit", batch=last)
            await asyncio.Event().wait()
        pipeline.fault("before_commit", last)
        self.step = "commit"
        offsets: dict[int, int] = {}
        for checkpoint in group:  # in order: a later batch's next offset is the higher
            offsets.update(checkpoint.offsets)
        committing = time.perf_counter()
        committed = bool(await self.retry("commit", lambda: self.committer.commit(offsets)))
        commit_s = (time.perf_counter() - committing) / len(group)
        self.step = ""
        for checkpoint in group:
            checkpoint.committed = committed
            report = pipeline.account(checkpoint.prepared)
            report.stage_seconds["commit"] = commit_s
            report.stage_seconds["fetch"] = checkpoint.fetch_s
            self.on_done(checkpoint, report)
