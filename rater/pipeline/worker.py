"""A rater worker: one asyncio loop, one consumer in the group, one pipeline.

    fetch ------------> prepare --------------------> checkpoint
    (bounded, holds     (decode, rate, debit; under     (store, dead-letter, commit offsets;
     no lock)            the batch gate)                 overlapped with the next prepare)

Liveness (docs/DESIGN.md section 3, "Liveness"):
- No lock, callback or await in the loop waits on a rebalance (rater/pipeline/consume.py): the
  fetch holds no lock the rebalance callbacks need, and every request to the broker is bounded.
- The batch gate (`gate`) is held only while a fetched batch is checked, prepared and handed to
  the checkpointer. A revoke takes it and waits, drain_timeout_s at most, for the batch in
  flight to commit; past that the batch is abandoned (its partitions' next owner replays it).
- Infrastructure errors (Redis, ClickHouse or Kafka unreachable) are retried with backoff and
  a log line naming the service; anything else ends the worker with a non-zero status.
- The watchdog (rater/pipeline/watchdog.py) ends a worker that has lag and commits nothing for
  stall_timeout_s while the services answer; `run_workers` (rater/pipeline/supervisor.py), or
  systemd, or Kubernetes, restarts it.
- SIGTERM / SIGINT: the fetch in progress returns, the batch in flight commits if it can within
  shutdown_timeout_s, and the consumer leaves the group; a worker process still running then
  is ended by its watchdog.

Redis data loss (docs/DESIGN.md section 3, "Redis data loss"): one LossCheck per worker (the
Recovery of rater/billing/recovery.py, handed in by `rater run` as `loss_check`: the pipeline
imports no billing, docs/ARCHITECTURE.md), sharing the pipeline's debiter, re-applies what
Redis lost from what ClickHouse stored, through `check_partitions` (see its docstring): on
assignment, before the first debit on another Redis server process (a restart, a promoted
replica) and every recovery_check_s.
`until_idle_s`: a worker exits cleanly, having committed, after that many seconds without
records and with no lag left (the demo and tests use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import redis as redis_lib
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from clickhouse_driver import errors as ch_errors
from redis.exceptions import ClusterDownError, TryAgainError

from rater import kafka, metrics
from rater.errors import RaterError
from rater.kafka import topic_identity
from rater.logs import configure_logging, get_logger
from rater.pipeline.checkpoint import Checkpoint, Checkpointer
from rater.pipeline.consume import BrokerTimeout, CdrConsumer, Record
from rater.pipeline.debit import Debiter
from rater.pipeline.flow import BatchReport, Pipeline
from rater.pipeline.progress import Progress, Reporter, WorkerSummary
from rater.pipeline.supervisor import Supervisor
from rater.pipeline.watchdog import EXIT_FAILED, EXIT_STALLED, Health, Watchdog
from rater.redis import connection as redis_client
from rater.redis.connection import RedisLike
from rater.redis.topology import Topology
from rater.settings import Settings

log = get_logger(__name__)

T = TypeVar("T")

__all__ = ["Worker", "WorkerFailed", "WorkerSummary", "run_worker", "run_workers", "worker_main"]

_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
#: how often the loop refreshes its Health and metrics (seconds); Progress goes out every 1 s
TICK_S = 0.5
#: after a stop request, the loop gets this long to notice it before its task is cancelled
STOP_GRACE_S = 2.0
#: Redis reads and scripts: a batch's debit takes milliseconds; a server that does not answer
#: in 30 s is treated as unreachable (and retried)
REDIS_TIMEOUT_S = 30
#: the check on assignment retries for this long inside the assignment callback; past it the
#: check waits before the partitions' first debit instead (the callback holds the rebalance)
ASSIGNED_CHECK_S = 5.0

ProgressSink = Callable[[Progress], None]


class Repaired(Protocol):
    cdrs_applied: int


class LossCheck(Protocol):
    """What a worker needs of rater/billing/recovery.py's Recovery."""

    def server_changed(self) -> bool: ...

    def check_and_repair(self, topic_id: str, partitions: Sequence[int]) -> Repaired: ...


#: makes a worker's LossCheck from its settings, the pipeline's topology and debiter
LossCheckFactory = Callable[[Settings, Topology, Debiter], LossCheck]


class WorkerFailed(RaterError):
    """The worker stopped on something it cannot get past: a stall, positions that could not
    be chosen, a batch that failed for good. `exit_status` is the process's."""

    def __init__(self, message: str, exit_status: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_status = exit_status


class RedisServerChanged(RaterError):
    """Redis answers from another server process than at the last check (a restart, a promoted
    replica): it may have lost its last writes, which are applied again before the next debit.
    Not retried as such: the worker repairs, then prepares the batch again."""


class Worker:
    """One consumer in the group and its pipeline; `run()` until stopped, idle or failed."""

    def __init__(
        self,
        settings: Settings,
        *,
        index: int = 0,
        run: int = 0,
        until_idle_s: float | None = None,
        stop: asyncio.Event | None = None,
        progress: ProgressSink | None = None,
        hard_exit: bool = False,
        watch_parent: bool = False,
        loss_check: LossCheckFactory | None = None,
    ) -> None:
        self.settings = settings
        self.loss_check = loss_check
        self.index, self.run_number = index, run
        self.until_idle_s = until_idle_s
        self.stop = stop or asyncio.Event()
        self.progress = progress
        self.hard_exit = hard_exit
        self.watch_parent = watch_parent
        self.summary = WorkerSummary(index)
        self.health = Health()
        self.gate = asyncio.Lock()
        self.failure: WorkerFailed | None = None
        #: changes when a revoke gives up on the batch in flight
        self.fence = 0
        #: partition -> next offset expected from the fetch (offsets going back: a new log)
        self.fetched_next: dict[int, int] = {}
        self.last_records_at = 0.0
        self.checked_at = time.monotonic()
        self._redis: RedisLike | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pipeline: Pipeline | None = None
        self._consumer: CdrConsumer | None = None
        self._checkpointer: Checkpointer | None = None
        self._checking: asyncio.Task[None] | None = None
        self._recovery: LossCheck | None = None
        #: the assigned partitions, as a tuple the prepare thread may read
        self._assigned: tuple[int, ...] = ()
        #: the Redis server changed (or a check failed) and what it lost was not applied again
        #: yet; _changes_seen counts such findings
        self._repair_pending = False
        self._changes_seen = 0
        self._pending_why = ""

    # ------------------------------------------------------------------ the parts, once started
    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "worker not started"
        return self._pipeline

    @property
    def consumer(self) -> CdrConsumer:
        assert self._consumer is not None, "worker not started"
        return self._consumer

    @property
    def checkpointer(self) -> Checkpointer:
        assert self._checkpointer is not None, "worker not started"
        return self._checkpointer

    # ------------------------------------------------------------------ run
    async def run(self) -> WorkerSummary:
        """Consume until stopped (or idle); what was done. WorkerFailed when it stalled or
        failed for good."""
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        watchdog = Watchdog(
            self.settings, self.health, stop_worker=self._stalled_from(loop),
            hard_exit=self.hard_exit,
        )  # fmt: skip
        watchdog.start()
        ticker = asyncio.create_task(self._tick(), name="worker-tick")
        main = asyncio.create_task(self._consume(), name="worker-consume")
        stopper = asyncio.create_task(self._cancel_after_stop(main), name="worker-stop")
        outside_cancel = False
        try:
            await asyncio.shield(main)
        except asyncio.CancelledError:
            if not main.done():  # our caller cancelled us, not the stop
                outside_cancel = True
                self.stop.set()
                main.cancel()
        except Exception:
            pass  # main's own error: raised below, after the shutdown
        finally:
            await self._shutdown()
            for task in (stopper, ticker):
                task.cancel()
            watchdog.close()
            self.summary.seconds = time.monotonic() - started
            if self.progress is not None:
                self.progress(self._progress(final=True))
            log.info(
                "worker stopped", worker=self.index, records=self.summary.records,
                batches=self.summary.batches, stored=self.summary.stored,
                dead_lettered=self.summary.dead_lettered,
            )  # fmt: skip
        if outside_cancel:
            raise asyncio.CancelledError
        error = None if main.cancelled() else main.exception()
        if self.failure is not None:
            raise self.failure from error
        if error is not None:
            raise error
        return self.summary

    def fail(self, failure: WorkerFailed) -> None:
        """Stop with this failure (the first one wins)."""
        if self.failure is None:
            self.failure = failure
        self.stop.set()

    def _stalled_from(self, loop: asyncio.AbstractEventLoop) -> Callable[[str], None]:
        def stalled(reason: str) -> None:  # called by the watchdog thread
            failure = WorkerFailed(f"worker {self.index} stalled: {reason}", EXIT_STALLED)
            with contextlib.suppress(RuntimeError):  # a closed loop: the worker is ending
                loop.call_soon_threadsafe(self.fail, failure)

        return stalled

    async def _cancel_after_stop(self, main: asyncio.Task[None]) -> None:
        """A stop request: the loop notices it after its fetch; one stuck elsewhere (a retry, a
        wait that should have been bounded) is cancelled STOP_GRACE_S later."""
        await self.stop.wait()
        if self.health.stop_at is None:
            self.health.stop_at = time.monotonic()
        await asyncio.sleep(STOP_GRACE_S)
        if not main.done():
            log.warning("the loop did not stop by itself: cancelling it", step=self.health.step)
            main.cancel()

    async def _consume(self) -> None:
        await self._start()
        consumer, checkpointer = self.consumer, self.checkpointer
        loop = asyncio.get_running_loop()
        self.last_records_at = loop.time()
        while not self.stop.is_set():
            if consumer.failed is not None:
                raise WorkerFailed(
                    f"worker {self.index}: partitions were assigned but their positions could not "
                    f"be chosen ({consumer.failed!r})"
                ) from consumer.failed
            if not checkpointer.busy:
                await checkpointer.drain()  # the error of a checkpoint that failed for good
            self.health.doing("fetch")
            epoch = consumer.epoch
            fetching = time.perf_counter()
            records = await consumer.fetch(self.settings.batch_timeout_ms)
            fetched = time.perf_counter() - fetching
            if self.stop.is_set():
                break  # not processed, not committed: read again by the partitions' next owner
            if not records:
                if self._idle(loop.time()):
                    break
                continue
            async with self.gate:
                if epoch != consumer.epoch or consumer.rebalancing:
                    continue  # fetched across a rebalance: the new positions read them again
                await self._process(records, fetched)
            self.last_records_at = loop.time()
        self.health.doing("stopping")

    async def _process(self, records: list[Record], fetched: float) -> None:
        if not self.summary.first_at:
            self.summary.first_at = time.time() - fetched
        if any(r.offset < self.fetched_next.get(r.partition, -1) for r in records):
            # offsets went backwards without a seek: the broker started a new log
            await self.checkpointer.drain()
            await self._retrying("read the topic incarnation", self._refresh_incarnation)
        fence = self.fence
        self.health.doing("prepare")
        prepare = functools.partial(self.pipeline.prepare, records)
        while True:
            if self._repair_pending:
                await self._repair_after_server_change()
            try:
                prepared = await self._retrying("prepare", prepare)
                break
            except RedisServerChanged:
                continue  # nothing was debited: repair, then prepare the batch again
        if fence != self.fence:
            log.warning("batch left to the partitions' next owner (prepared during a rebalance)",
                        records=len(records))  # fmt: skip
            return
        offsets: dict[int, int] = {}
        for record in records:
            offsets[record.partition] = record.offset + 1
        self.fetched_next.update(offsets)
        self.health.doing("checkpoint")
        await self.checkpointer.submit(Checkpoint(prepared, offsets, _timestamps(records), fetched))

    def _idle(self, now: float) -> bool:
        if self.until_idle_s is None:
            return False
        consumer = self.consumer
        quiet_since = max(self.last_records_at, consumer.changed_at)
        if now - quiet_since < self.until_idle_s or consumer.rebalancing:
            return False
        if self.checkpointer.busy or any(consumer.lag().values()):
            return False  # records left: not idle (the watchdog watches a worker stuck so)
        log.info("idle: exiting", worker=self.index, idle_s=self.until_idle_s)
        return True

    def _on_committed(self, checkpoint: Checkpoint, report: BatchReport) -> None:
        summary = self.summary
        for published, latency in _latencies(checkpoint.timestamps):
            summary.latency_published_ms.append(published)
            summary.latencies_ms.append(latency)
        summary.add(report)
        summary.last_at = time.time()
        metrics.observe(metrics.BATCH_SECONDS, sum(report.stage_seconds.values()))
        metrics.observe(metrics.BATCH_SIZE, report.records)
        if checkpoint.committed:
            self.health.progress_at = time.monotonic()

    # ------------------------------------------------------------------ start and stop
    async def _start(self) -> None:
        settings = self.settings
        self.health.doing("starting")
        topic_id = await self._retrying("create topics and read the incarnation", self._topic_id)
        self._redis = redis_client.connect(
            settings, socket_connect_timeout=5, socket_timeout=REDIS_TIMEOUT_S
        )
        self._producer = kafka.producer(settings)
        await asyncio.wait_for(self._producer.start(), settings.broker_timeout_s)
        self._pipeline = Pipeline(settings, topic_id, self._redis, self._producer)
        if self.loss_check is not None:
            debiter = self._pipeline.debiter
            self._recovery = self.loss_check(settings, debiter.topology, debiter)
            # the server this worker starts on; the assignment's check covers what it lacks
            first_look = functools.partial(asyncio.to_thread, self._recovery.server_changed)
            await self._retrying("read the Redis server's run id", first_look)
            self._pipeline.before_debit = self._before_debit
        self.health.doing("warm-up")
        await asyncio.to_thread(self._pipeline.warm_up)
        self._consumer = CdrConsumer(settings, self)
        self._checkpointer = Checkpointer(
            self._pipeline, self._consumer, self._retrying, self._on_committed,
            insert_rows=settings.insert_rows, insert_wait_s=settings.insert_wait_ms / 1000,
        )  # fmt: skip
        self.health.doing("join")
        await self._consumer.start()
        log.info("worker started", worker=self.index, topic=settings.topic_cdrs,
                 incarnation=topic_id)  # fmt: skip

    async def _shutdown(self) -> None:
        """Commit what is stored and leave the group, all within shutdown_timeout_s."""
        health = self.health
        if health.stop_at is None:
            health.stop_at = time.monotonic()
        health.doing("stopping")
        ends_at = health.stop_at + self.settings.shutdown_timeout_s

        def left(reserve_s: float) -> float:
            return max(0.2, ends_at - reserve_s - time.monotonic())

        if self._checkpointer is not None:
            try:
                await asyncio.wait_for(self._checkpointer.drain(), left(3.0))
            except TimeoutError:
                self._checkpointer.abandon()
            except Exception as error:
                log.error("the last batch failed: it replays from the last commit",
                          error=repr(error))  # fmt: skip
        if self._checking is not None:
            self._checking.cancel()
        if self._consumer is not None:
            await self._consumer.stop(left(1.0))
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), left(0.0))
            except (TimeoutError, KafkaError, OSError) as error:
                log.warning("the producer did not stop cleanly", error=repr(error))
        if self._redis is not None:
            self._redis.close()

    # ------------------------------------------------------------------ rebalances (consume.py)
    async def partitions_revoked(self, partitions: list[int]) -> None:
        """Wait (bounded) for the batch in flight to store and commit before the partitions move
        away; give it up past the bound (its partitions' next owner replays it)."""
        bound = float(self.settings.drain_timeout_s)
        if self.health.stop_at is not None:  # stopping: the whole stop has its own bound
            half = self.health.stop_at + self.settings.shutdown_timeout_s / 2 - time.monotonic()
            bound = min(bound, max(0.5, half))
        try:
            async with asyncio.timeout(bound):
                async with self.gate:
                    await self.checkpointer.drain()
        except TimeoutError:
            self.fence += 1
            self.checkpointer.abandon()
            log.error(f"the batch in flight did not commit within {bound:.0f} s of a rebalance: "
                      "abandoned, its partitions replay it", partitions=partitions)  # fmt: skip
        except Exception as error:
            self.fail(WorkerFailed(f"worker {self.index}: a batch failed: {error!r}"))
        self._assigned = tuple(p for p in self._assigned if p not in partitions)
        self.pipeline.partitions_revoked(partitions)

    async def watermarks(self, partitions: list[int]) -> dict[int, int]:
        """Partition -> highest offset whose debit Redis holds, read after the incarnation (a
        broker that lost its log has a new one)."""
        deadline = time.monotonic() + self.settings.drain_timeout_s
        await self._retrying("read the topic incarnation", self._refresh_incarnation,
                             deadline=deadline)  # fmt: skip
        pipeline = self.pipeline

        async def read() -> dict[int, int]:
            return {p: await asyncio.to_thread(pipeline.watermark, p) for p in partitions}

        return await self._retrying("read watermarks", read, deadline=deadline)

    async def partitions_assigned(self, partitions: list[int]) -> None:
        self.fetched_next = dict(self.consumer.positions)
        self._assigned = tuple(sorted(self.consumer.assigned))
        self.health.progress_at = time.monotonic()  # new partitions get a whole stall period
        deadline = time.monotonic() + ASSIGNED_CHECK_S
        try:
            await self._retrying(
                "check the assigned partitions",
                functools.partial(self.check_partitions, partitions, "assigned"),
                deadline=deadline,
            )
        except Exception as error:
            if service_of(error) is None:
                raise
            # the callback cannot wait longer; no batch is debited until a check succeeded
            self._note_server_change("the check on assignment failed")
            log.warning("the check of the assigned partitions is retried before their first "
                        "debit", partitions=partitions, error=repr(error))  # fmt: skip

    async def check_partitions(self, partitions: list[int], reason: str) -> None:
        """The check of partitions' state across Redis and ClickHouse: Recovery.check_and_repair
        (rater/billing/recovery.py) re-applies the debits, corrections and ledger entries Redis
        lost. With `reason`:
        - "assigned": for the partitions just assigned, after their positions were chosen and
          before any of their records is fetched (inside the assignment callback);
        - "periodic": for every assigned partition every settings.recovery_check_s, between
          batches (under the batch gate, after the batch in flight was stored);
        - "server changed": for every assigned partition, before the first debit on a Redis
          server process other than the last one seen (`_before_debit` finds it).
        An infrastructure error it raises is retried like any step's (on assignment for
        ASSIGNED_CHECK_S, then again before the partitions' first debit, which waits for it);
        any other error stops the worker with a non-zero status.
        """
        if not partitions or self._recovery is None:
            return
        recovery, topic_id = self._recovery, self.pipeline.topic_id
        started = time.perf_counter()
        repair = await asyncio.to_thread(recovery.check_and_repair, topic_id, partitions)
        log.debug("partitions checked", reason=reason, partitions=partitions,
                  seconds=round(time.perf_counter() - started, 3),
                  applied=repair.cdrs_applied)  # fmt: skip

    def _before_debit(self) -> None:
        """In the prepare thread, right before a batch's debit: is Redis still the server
        process of the last check? One INFO per batch (0.08 ms on the local stack,
        docs/DESIGN.md section 3): a batch debited on a restarted server would raise the
        watermarks above the debits it lost, and they would never be applied again."""
        assert self._recovery is not None
        if self._recovery.server_changed():
            self._note_server_change("Redis is another server process than before")
        if self._repair_pending:
            raise RedisServerChanged(
                f"Redis at {self.settings.redis_url}: {self._pending_why}; applying what it "
                "lost again first"
            )

    async def _repair_after_server_change(self) -> None:
        """Every batch debited so far stored (the repair reads ClickHouse), then the lost
        debits of every assigned partition applied again, before the next debit."""
        log.warning(f"{self._pending_why}: checking what Redis lost before the next debit",
                    partitions=list(self._assigned))  # fmt: skip
        await self.checkpointer.drain()
        await self._retrying("apply what Redis lost again", self._repair_losses)

    async def _repair_losses(self) -> None:
        """One attempt; the server change stays pending until one succeeds (and no other
        change was seen meanwhile)."""
        seen = self._changes_seen
        await self.check_partitions(list(self._assigned), "server changed")
        if seen == self._changes_seen:
            self._repair_pending = False

    def _note_server_change(self, why: str) -> None:
        self._changes_seen += 1
        self._pending_why = why
        self._repair_pending = True

    def _server_changed(self) -> bool:
        return self._recovery is not None and self._recovery.server_changed()

    async def _periodic_check(self) -> None:
        try:
            async with self.gate:
                await self.checkpointer.drain()
                await self._retrying(
                    "check the partitions",
                    functools.partial(self.check_partitions, list(self._assigned), "periodic"),
                )
        except Exception as error:
            self.fail(WorkerFailed(f"worker {self.index}: the partition check failed: {error!r}"))
        finally:
            self.checked_at = time.monotonic()

    # ------------------------------------------------------------------ incarnation
    async def _topic_id(self) -> str:
        await kafka.ensure_topics(self.settings)
        return await topic_identity.incarnation(self.settings)

    async def _refresh_incarnation(self) -> None:
        current = await self._topic_id()
        if current != self.pipeline.topic_id:
            log.warning("topic incarnation changed", old=self.pipeline.topic_id, new=current)
            self.pipeline.new_incarnation(current)

    # ------------------------------------------------------------------ retries
    async def _retrying(
        self, what: str, step: Callable[[], Awaitable[T]], *, deadline: float | None = None
    ) -> T:
        """Run a step, again after an infrastructure error, with backoff (every effect before
        the commit is idempotent, so a half-done attempt is safe to repeat). After a Redis
        error, Redis must answer again before the step is retried; when it answers from another
        server process, what it lost is applied again before the next debit
        (`check_partitions`, "server changed")."""
        attempt = 0
        redis_lost = False
        while True:
            try:
                if redis_lost and self._redis is not None:
                    await asyncio.to_thread(self._redis.ping)
                    redis_lost = False
                    log.info("Redis answers again", step=what)
                    if await asyncio.to_thread(self._server_changed):
                        # repaired before the next debit
                        self._note_server_change("Redis is another server process than before")
                return await step()
            except Exception as error:
                service = service_of(error)
                if service is None or (deadline is not None and time.monotonic() >= deadline):
                    raise
                delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
                attempt += 1
                redis_lost = redis_lost or service == "Redis"
                self.health.infra_at, self.health.infra_what = time.monotonic(), service
                metrics.inc(metrics.RETRIES, 1, _service_label(service))
                log.warning(f"{service} unreachable: retrying to {what} in {delay} s",
                            attempt=attempt, error=repr(error))  # fmt: skip
                await asyncio.sleep(delay)

    # ------------------------------------------------------------------ heartbeat
    async def _tick(self) -> None:
        """Health for the watchdog, lag metrics, progress, the periodic check."""
        parent = os.getppid()
        reported = 0.0
        while True:
            now = time.monotonic()
            health = self.health
            health.tick_at = now
            consumer = self._consumer
            if consumer is not None:
                lags = consumer.lag()
                known = [lag for lag in lags.values() if lag is not None]
                settled = consumer.changed_at > 0 and not consumer.rebalancing
                health.lag = sum(known) if settled and (known or not lags) else None
                health.partitions = sorted(consumer.assigned)
                health.rebalancing_since = (
                    consumer.rebalancing_since if consumer.rebalancing else None
                )
                if not consumer.rebalancing and len(known) == len(lags) and not sum(known):
                    health.progress_at = now  # nothing left to do is not a stall
                for partition, lag in lags.items():
                    if lag is not None:
                        metrics.set_gauge(metrics.LAG, lag, str(partition))
                if (
                    now - self.checked_at >= self.settings.recovery_check_s
                    and not consumer.rebalancing
                    and (self._checking is None or self._checking.done())
                ):
                    self._checking = asyncio.create_task(self._periodic_check())
            if self.progress is not None and now - reported >= 1.0:
                reported = now
                self.progress(self._progress())
            if self.watch_parent and os.getppid() != parent and not self.stop.is_set():
                log.warning("the supervising process is gone: stopping", worker=self.index)
                self.stop.set()
            await asyncio.sleep(TICK_S)

    def _progress(self, *, final: bool = False) -> Progress:
        consumer = self._consumer
        if consumer is None:
            state = "starting"
        elif self.stop.is_set():
            state = "stopping"
        else:
            state = "rebalancing" if consumer.rebalancing else "running"
        summary = self.summary.without_samples()
        return Progress(
            index=self.index, run=self.run_number, summary=summary, lag=self.health.lag,
            partitions=list(self.health.partitions), state=state, final=final,
        )  # fmt: skip


def service_of(error: BaseException) -> str | None:
    """The service an infrastructure error came from; None for any other error (not retried)."""
    if isinstance(error, WorkerFailed):
        return None
    if isinstance(
        error, redis_lib.ConnectionError | redis_lib.TimeoutError | ClusterDownError | TryAgainError
    ):
        return "Redis"
    if isinstance(error, ch_errors.NetworkError | ch_errors.SocketTimeoutError | EOFError):
        return "ClickHouse"
    if isinstance(error, BrokerTimeout) or (isinstance(error, KafkaError) and error.retriable):
        return "Kafka"
    if isinstance(error, RaterError) and error.retriable:
        named = [name for name in ("Kafka", "Redis", "ClickHouse") if name in str(error)]
        return named[0] if named else "a service"
    if isinstance(error, ConnectionError | TimeoutError):
        return "a service"
    return None


#: the `service` label of rater_retries_total: the services service_of names, else "other"
_SERVICE_LABELS = frozenset({"kafka", "redis", "clickhouse"})


def _service_label(service: str) -> str:
    label = service.lower()
    return label if label in _SERVICE_LABELS else metrics.OTHER


def _timestamps(records: list[Record]) -> list[int]:
    """Producer timestamps (epoch ms) of at most 64 records of a batch."""
    sample = records[:: max(1, len(records) // 64)]
    return [r.timestamp for r in sample if r.timestamp and r.timestamp > 0]


def _latencies(timestamps: list[int]) -> list[tuple[float, float]]:
    """(publish time, publish -> committed latency) in ms; the latencies go into the histogram."""
    now_ms = time.time() * 1000
    samples = []
    for published in timestamps:
        latency = max(0.0, now_ms - published)
        metrics.observe(metrics.LATENCY, latency / 1000)
        samples.append((float(published), latency))
    return samples


async def run_worker(
    settings: Settings,
    *,
    index: int = 0,
    until_idle_s: float | None = None,
    stop: asyncio.Event | None = None,
    loss_check: LossCheckFactory | None = None,
) -> WorkerSummary:
    """Consume until `stop` is set (or idle for until_idle_s); returns what was done.
    WorkerFailed when the worker stalled or failed for good."""
    worker = Worker(
        settings, index=index, until_idle_s=until_idle_s, stop=stop, loss_check=loss_check
    )
    return await worker.run()


# ------------------------------------------------------------------------- processes
def worker_main(
    settings: Settings,
    index: int,
    until_idle_s: float | None,
    *,
    run: int = 0,
    progress: ProgressSink | None = None,
    child: bool = False,
    loss_check: LossCheckFactory | None = None,
) -> WorkerSummary:
    """One worker as the whole of its process: its own loop, metrics port, signal handlers and
    watchdog that may end the process (os._exit) when the worker cannot stop by itself."""
    configure_logging(settings)
    # the driver logs a traceback at warning level for each connection it cannot open; the
    # worker's retry line ("ClickHouse unreachable: retrying ...") says it once, in one line
    logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
    if settings.metrics_port:  # 0: no endpoint (benchmarks, several runs at once)
        metrics.serve(settings.metrics_port + index)

    async def main() -> WorkerSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # a supervisor starts its workers with these signals blocked (a Ctrl-C during start-up
        # would raise KeyboardInterrupt before any handler exists); one pending arrives now
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
        worker = Worker(
            settings, index=index, run=run, until_idle_s=until_idle_s, stop=stop,
            progress=progress, hard_exit=True, watch_parent=child, loss_check=loss_check,
        )  # fmt: skip
        return await worker.run()

    return asyncio.run(main())


def _child(
    settings: Settings,
    index: int,
    until_idle_s: float | None,
    out: Any,
    *,
    events: Any = None,
    run: int = 0,
    loss_check: LossCheckFactory | None = None,
) -> None:
    """A worker process: its summary goes to `out`, its progress to `events` (when given). Its
    exit status: 0 stopped or idle, 3 stalled, 1 any other failure."""

    def send(progress: Progress) -> None:
        # best effort: a supervisor that hears nothing for long kills and restarts the worker
        with contextlib.suppress(queue.Full, ValueError, OSError):
            events.put_nowait(progress)

    try:
        summary = worker_main(
            settings, index, until_idle_s, run=run,
            progress=send if events is not None else None, child=True, loss_check=loss_check,
        )  # fmt: skip
    except WorkerFailed as failure:
        log.error(str(failure), worker=index)
        sys.exit(failure.exit_status)
    except RaterError as error:
        log.error(str(error), worker=index)
        sys.exit(EXIT_FAILED)
    out.put(summary)


def run_workers(
    settings: Settings,
    workers: int,
    until_idle_s: float | None,
    *,
    progress: bool = False,
    loss_check: LossCheckFactory | None = None,
) -> list[WorkerSummary]:
    """Run `workers` workers until they stop (SIGTERM, SIGINT) or go idle; their summaries.

    One worker runs in this process; more run as processes under a Supervisor, which restarts
    one that dies or stalls and gives up, with a RaterError, after settings.restart_max failures
    in a row. `progress`: a live line on a terminal (records rated, CDRs/s, lag, time left),
    else a progress log line every settings.progress_interval_s. `loss_check`: what checks
    for and repairs Redis data loss (`rater run` hands in rater/billing/recovery.py's Recovery).
    """
    reporter = Reporter(interval_s=settings.progress_interval_s) if progress else None
    try:
        if workers <= 1:
            sink = reporter.update if reporter is not None else None
            return [worker_main(settings, 0, until_idle_s, progress=sink, loss_check=loss_check)]
        target = functools.partial(_child, loss_check=loss_check)  # picklable: module-level
        supervisor = Supervisor(settings, workers, until_idle_s, target=target, reporter=reporter)
        return supervisor.run()
    finally:
        if reporter is not None:
            reporter.close()
