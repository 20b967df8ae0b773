"""A rater worker process: one asyncio loop, one consumer in the group, one pipeline.

`run_workers(settings, n)` starts n processes (spawned, so each has its own loop, clients and
numba state) that join one consumer group. SIGTERM or SIGINT: the batch in flight finishes and
commits, then the consumer leaves the group. `until_idle_s`: a worker exits cleanly, having
committed, after that many seconds without records (the demo and tests use it).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis as redis_lib
from aiokafka.errors import KafkaError
from clickhouse_driver import errors as ch_errors

from rater import kafka, metrics
from rater.errors import RaterError
from rater.kafka import topic_identity
from rater.logs import configure_logging, get_logger
from rater.pipeline.consume import CdrConsumer
from rater.pipeline.flow import BatchReport, Pipeline, Prepared
from rater.redis import connection as redis_client
from rater.settings import Settings

log = get_logger(__name__)

T = TypeVar("T")

_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)


@dataclass
class WorkerSummary:
    """Totals of one worker's run."""

    index: int
    records: int = 0
    batches: int = 0
    stored: int = 0
    dead_lettered: int = 0
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: wall clock (epoch s) of the first fetched record and of the last commit
    first_at: float = 0.0
    last_at: float = 0.0
    #: publish -> committed, ms, sampled (at most 64 records a batch) for percentiles, with
    #: each sample's publish time (epoch ms) so a benchmark can leave a warm-up out
    latencies_ms: list[float] = field(default_factory=list)
    latency_published_ms: list[float] = field(default_factory=list)

    def add(self, report: BatchReport) -> None:
        self.records += report.records
        self.batches += 1
        self.stored += report.stored
        self.dead_lettered += report.dead_lettered
        for key, count in report.outcomes.items():
            self.outcomes[key] = self.outcomes.get(key, 0) + count
        for stage, seconds in report.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


def _retriable(error: BaseException) -> bool:
    if isinstance(error, KafkaError):
        return bool(error.retriable)
    if isinstance(error, RaterError):
        return error.retriable
    return isinstance(
        error,
        redis_lib.ConnectionError
        | redis_lib.TimeoutError
        | ch_errors.NetworkError
        | ch_errors.SocketTimeoutError
        | ConnectionError
        | EOFError
        | TimeoutError,
    )


async def run_worker(  # noqa: PLR0915 - the worker's whole lifecycle on one screen; its file belongs to the worker and consume-loop work
    settings: Settings,
    *,
    index: int = 0,
    until_idle_s: float | None = None,
    stop: asyncio.Event | None = None,
) -> WorkerSummary:
    """Consume until `stop` is set (or idle for until_idle_s); returns what was done."""
    stop = stop or asyncio.Event()
    summary = WorkerSummary(index)
    started = time.monotonic()
    await kafka.ensure_topics(settings)
    topic_id = await topic_identity.incarnation(settings)
    redis = redis_client.connect(settings)
    producer = kafka.producer(settings)
    await producer.start()
    pipeline = Pipeline(settings, topic_id, redis, producer)
    await asyncio.to_thread(pipeline.warm_up)
    #: partition -> next offset to read, as processed by this worker (lag, broker restarts)
    positions: dict[int, int] = {}

    async def watermarks(partitions: list[int]) -> dict[int, int]:
        # a broker that lost its log has a new incarnation: read it before choosing positions
        await _refresh_incarnation(pipeline, settings)
        positions.clear()
        return {
            p: await asyncio.to_thread(pipeline.debiter.watermark, pipeline.topic_id, p)
            for p in partitions
        }

    def revoked(partitions: list[int]) -> None:
        pipeline.store.forget(partitions)
        for p in partitions:
            positions.pop(p, None)

    #: the previous batch's store and commit, overlapped with this batch's prepare
    pending: asyncio.Task[None] | None = None

    async def drain() -> None:
        nonlocal pending
        if pending is not None:
            task, pending = pending, None
            await task

    async def finish(prepared: Prepared, records: list[Any], fetched: float) -> None:
        report = await _retrying(functools.partial(pipeline.finish, prepared))
        pipeline.fault("before_commit", prepared.batch)
        next_offsets: dict[int, int] = {}
        for record in records:
            next_offsets[record.partition] = record.offset + 1
        committing = time.perf_counter()
        await consumer.commit(next_offsets)
        report.stage_seconds["commit"] = time.perf_counter() - committing
        report.stage_seconds["fetch"] = fetched
        positions.update(next_offsets)
        for published, latency in _observe_latency(records):
            summary.latency_published_ms.append(published)
            summary.latencies_ms.append(latency)
        summary.add(report)
        summary.last_at = time.time()
        metrics.BATCH_SECONDS.observe(sum(report.stage_seconds.values()))
        metrics.BATCH_SIZE.observe(report.records)
        for partition, lag in consumer.lag(positions).items():
            metrics.LAG.labels(str(partition)).set(lag)

    consumer = CdrConsumer(settings, watermarks, revoked, drain)
    await consumer.start()
    loop = asyncio.get_running_loop()
    last_records = loop.time()
    log.info("worker started", worker=index, topic=settings.topic_cdrs, incarnation=topic_id)
    try:
        while not stop.is_set():
            async with consumer.lock:
                fetching = time.perf_counter()
                records = await consumer.fetch(settings.batch_timeout_ms)
                fetched = time.perf_counter() - fetching
                if records:
                    if not summary.first_at:
                        summary.first_at = time.time() - fetched
                    if any(r.offset < positions.get(r.partition, -1) for r in records):
                        # offsets went backwards without a seek: the broker started a new log
                        await drain()
                        await _refresh_incarnation(pipeline, settings)
                    prepared = await _retrying(functools.partial(pipeline.prepare, records))
                    await drain()  # batches store and commit in order
                    pending = asyncio.create_task(finish(prepared, records, fetched))
                    last_records = loop.time()
                else:
                    await drain()
            if until_idle_s is not None:
                quiet_since = max(last_records, consumer.changed_at)
                if loop.time() - quiet_since >= until_idle_s and not consumer.rebalancing:
                    log.info("idle: exiting", worker=index, idle_s=until_idle_s)
                    break
            if not records:
                await asyncio.sleep(0)  # let the rebalance listener take the lock
        await drain()
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
        await consumer.stop()  # leaves the group: the others take the partitions
        await producer.stop()
        redis.close()
        summary.seconds = time.monotonic() - started
        log.info(
            "worker stopped", worker=index, records=summary.records, batches=summary.batches,
            stored=summary.stored, dead_lettered=summary.dead_lettered,
        )  # fmt: skip
    return summary


async def _refresh_incarnation(pipeline: Pipeline, settings: Settings) -> None:
    await kafka.ensure_topics(settings)
    current = await topic_identity.incarnation(settings)
    if current != pipeline.topic_id:
        log.warning("topic incarnation changed", old=pipeline.topic_id, new=current)
        pipeline.topic_id = current
        pipeline.store.forget(list(range(65536)))


async def _retrying(step: Callable[[], Awaitable[T]]) -> T:
    """Run a step, again after a retriable service error (every effect before the commit is
    idempotent, so a half-done attempt is safe to repeat)."""
    attempt = 0
    while True:
        try:
            return await step()
        except Exception as error:
            if not _retriable(error):
                raise
            delay = _BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)]
            attempt += 1
            metrics.RETRIES.labels(type(error).__module__.split(".")[0]).inc()
            log.warning("retrying batch", error=repr(error), attempt=attempt, delay_s=delay)
            await asyncio.sleep(delay)


def _observe_latency(records: list[Any]) -> list[tuple[float, float]]:
    """(publish time, publish -> committed latency) in ms of a sample of the batch; the
    latencies also go into the histogram."""
    now_ms = time.time() * 1000
    samples = []
    for record in records[:: max(1, len(records) // 64)]:  # a sample keeps this cheap
        if record.timestamp and record.timestamp > 0:
            latency = max(0.0, now_ms - record.timestamp)
            metrics.LATENCY.observe(latency / 1000)
            samples.append((float(record.timestamp), latency))
    return samples


# ------------------------------------------------------------------------- processes
def worker_main(settings: Settings, index: int, until_idle_s: float | None) -> WorkerSummary:
    """Entry point of one worker process: its own loop, metrics port and signal handlers."""
    configure_logging(settings)
    if settings.metrics_port:  # 0: no endpoint (benchmarks, several runs at once)
        metrics.serve(settings.metrics_port + index)

    async def main() -> WorkerSummary:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run_worker(settings, index=index, until_idle_s=until_idle_s, stop=stop)

    return asyncio.run(main())


def _child(settings: Settings, index: int, until_idle_s: float | None, out: Any) -> None:
    summary = worker_main(settings, index, until_idle_s)
    out.put(summary)


def run_workers(
    settings: Settings, workers: int, until_idle_s: float | None
) -> list[WorkerSummary]:
    """Run `workers` processes (1: in this process) until they stop; their summaries."""
    if workers <= 1:
        return [worker_main(settings, 0, until_idle_s)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(
            target=_child, args=(settings, i, until_idle_s, results), name=f"rater-worker-{i}"
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    summaries: list[WorkerSummary] = []
    try:
        while any(p.is_alive() for p in processes) or not results.empty():
            try:
                summaries.append(results.get(timeout=0.5))
            except queue.Empty:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for process in processes:
            process.join(timeout=30)
    failed = [p for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise RaterError(
            "worker(s) failed: " + ", ".join(f"{p.name} exit {p.exitcode}" for p in failed)
        )
    return summaries
