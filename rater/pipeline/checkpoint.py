"""The checkpoint: how a prepared batch reaches its offset commit (docs/DESIGN.md section 3).

In the manner of quix-streams' Checkpoint, one object per batch holds what must be done
before its offsets may be committed, and the checkpointer does it in a fixed order:

    store (rated_cdrs rows, ClickHouse) -> dead-letter (rejects, Kafka) -> commit offsets

Every step before the commit is idempotent (the store inserts only what ClickHouse lacks, the
dead-letter publish keeps a Redis watermark), so a step that fails on a service error is done
again; the commit comes last, so a worker killed anywhere before it leaves the batch to be
replayed, never lost, and a replayed debit is not charged twice.

One checkpoint is in flight at a time. The worker prepares the next batch (decode, rate,
debit) while the previous one stores and commits; `submit` waits for the previous checkpoint
before it starts the next, so batches commit in order. A revoke or a stop waits for the one
in flight (`drain`); when that takes longer than the caller's bound, `abandon` cancels it:
nothing of it is committed and the partitions' next owner replays it.
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


@dataclass
class Checkpointer:
    """Runs checkpoints one at a time: store, dead-letter, commit."""

    pipeline: Pipeline
    committer: Committer
    retry: Retry[object]
    #: called with each committed checkpoint and its report
    on_done: Callable[[Checkpoint, BatchReport], None]
    #: what the checkpoint in flight is doing (the worker's health reports it)
    step: str = ""
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, checkpoint: Checkpoint) -> None:
        """Wait for the checkpoint in flight, then start this one."""
        await self.drain()
        self._task = asyncio.create_task(self._run(checkpoint), name="checkpoint")

    async def drain(self) -> None:
        """Wait until the checkpoint in flight has committed; its error, if it failed.

        Shielded: a caller that gives up waiting (a bound, a cancellation) does not cancel
        the checkpoint; only `abandon` does.
        """
        task = self._task
        if task is None:
            return
        await asyncio.shield(task)
        if self._task is task:
            self._task = None

    def abandon(self) -> bool:
        """Cancel the checkpoint in flight; True when there was one. A step already running in
        a thread (a ClickHouse insert) still ends, but no later step and no commit happen."""
        task, self._task = self._task, None
        if task is None or task.done():
            return False
        task.cancel()
        log.warning("checkpoint abandoned: its batch replays from the last commit", step=self.step)
        return True

    async def _run(self, checkpoint: Checkpoint) -> None:
        pipeline, prepared = self.pipeline, checkpoint.prepared
        batch = prepared.batch
        self.step = "store"
        await self.retry("store", lambda: pipeline.store_rows(prepared))
        self.step = "dead-letter"
        await self.retry("dead-letter", lambda: pipeline.dead_letter(prepared))
        pipeline.fault("after_store", batch)
        if pipeline.stalls("before_commit", batch):
            log.warning("fault injection: stall", point="before_commit", batch=batch)
            await asyncio.Event().wait()
        pipeline.fault("before_commit", batch)
        self.step = "commit"
        committing = time.perf_counter()
        checkpoint.committed = bool(
            await self.retry("commit", lambda: self.committer.commit(checkpoint.offsets))
        )
        report = pipeline.account(prepared)
        report.stage_seconds["commit"] = time.perf_counter() - committing
        report.stage_seconds["fetch"] = checkpoint.fetch_s
        self.step = ""
        self.on_done(checkpoint, report)
