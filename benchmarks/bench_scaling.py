"""End-to-end throughput of `rater run` with 1, 2 and 4 partitions and workers, and latency.

Each run gets a topic of its own with N partitions, a consumer group of its own, and CDRs of
its own (a loadgen scenario: resellers, customers, cards, a phonenumbers deck; new cdr_ids per
run). The N workers (`rater.pipeline.worker.run_workers`, the code behind
`rater run --workers N`) start first and join the group; once it has settled the CDRs are
published with send_batch; when the group's committed offsets reach the end of every
partition the workers get SIGTERM, finish their batch, commit and leave. Throughput is
records / (last commit - first fetch) over all workers, so group joins and the idle tail do
not count.

Latency (publish time -> offsets committed, sampled per batch by the worker) comes from a
separate paced run with one worker at half its flat-out rate: a backlog run measures queueing,
not latency.

On this 2-core machine the workers share the cores with the broker, Redis, ClickHouse and the
publisher: more workers than cores cannot add throughput, and the numbers say so.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from aiokafka import TopicPartition

from benchmarks import plots
from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse, kafka
from rater.kafka.ends import high_watermarks
from rater.loadgen.generate import GenerationOptions, Generator
from rater.loadgen.numbers import NumberBook
from rater.loadgen.population import Scenario
from rater.loadgen.publish import Publisher
from rater.loadgen.scenario import load_tariffs, setup_scenario
from rater.logs import configure_logging
from rater.pipeline.worker import WorkerSummary, run_workers
from rater.redis import connection as redis_client
from rater.settings import Settings

TITLE = "Scaling: end-to-end throughput against workers, and latency"
NEEDS_STACK = True

WORKERS = (1, 2, 4)
#: seconds between starting the workers and publishing: a Tansu join takes about
#: session_timeout / 2 and a second round when members arrive apart
SETTLE_S = 8.0
#: a run that has not committed everything by then is stopped and reported
RUN_TIMEOUT_S = 240.0


@dataclass
class World:
    """What every end-to-end run shares: settings on a database of its own, the scenario."""

    settings: Settings
    scenario: Scenario
    book: NumberBook
    runs: int = 0


@dataclass
class RunResult:
    workers: int
    records: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    topic: str = ""  #: the run's cdrs topic (its messages stay for a read-back)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def prepare(ctx: BenchContext, name: str) -> World:
    """Bench settings (own ClickHouse database, own Redis database), scenario, number book."""
    base = ctx.settings
    tag = uuid.uuid4().hex[:6]
    settings = base.replace(
        redis_cluster_nodes="",
        redis_url=base.redis_url.rsplit("/", 1)[0] + f"/{(base.redis_db + 11) % 16}",
        clickhouse_database=f"bench_{name}_{tag}",
        log_level="WARNING",
        batch_max_records=5000,
    )
    configure_logging(settings)  # warnings only: the scenario logs every account it makes
    client = redis_client.connect(settings)
    client.flushdb()
    clickhouse.migrate(settings)
    scenario = setup_scenario(
        settings,
        name=f"bench{name}",
        resellers=3,
        customers=60 if ctx.quick else 300,
        cards=100 if ctx.quick else 1000,
        redis=client,
        reuse=False,
    )
    tariffs = load_tariffs(settings, scenario, client)
    prefixes = sorted(
        {row.prefix for r in scenario.resellers for t in tariffs[r.buy_tariff] for row in t.rows}
    )
    client.close()
    return World(settings, scenario, NumberBook.from_prefixes(prefixes, seed=3))


def cleanup(world: World) -> None:
    client = redis_client.connect(world.settings)
    client.flushdb()
    client.close()
    admin = clickhouse.client(world.settings, database="default", numpy=False)
    admin.execute(f"DROP DATABASE IF EXISTS {world.settings.clickhouse_database}")
    admin.disconnect()


def messages(world: World, n: int) -> tuple[list[bytes], list[bytes]]:
    """n new CDR messages (fresh cdr_ids each call): 1% resent, 0.2% invalid."""
    world.runs += 1
    options = GenerationOptions(seed=world.runs, duplicate_fraction=0.01, invalid_fraction=0.002)
    generator = Generator(
        world.scenario,
        world.book,
        options,
        f"b{uuid.uuid4().hex[:8]}",
        now=int(datetime.now(UTC).timestamp()),
    )
    chunk = generator.chunk(n)
    return chunk.keys, chunk.values


async def _publish_and_wait(
    settings: Settings, keys: list[bytes], values: list[bytes], rate: float | None
) -> str:
    """Publish, then wait until the group committed every partition's end; '' or a problem."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        publisher = Publisher(producer, settings.topic_cdrs, rate=rate)
        await publisher.start()
        await publisher.publish(keys, values)
        await publisher.flush()
    finally:
        await producer.stop()
    watcher = kafka.consumer(settings)
    await watcher.start()
    try:
        parts = [TopicPartition(settings.topic_cdrs, p) for p in range(settings.partitions)]
        watcher.assign(parts)
        ends = await high_watermarks(watcher, parts)  # not end_offsets (rater/kafka/ends.py)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            done = [((await watcher.committed(tp)) or 0) >= ends[tp] for tp in parts]
            if all(done):
                return ""
            await asyncio.sleep(0.25)
        return f"not everything committed within {RUN_TIMEOUT_S:.0f} s"
    finally:
        await watcher.stop()


def end_to_end(world: World, workers: int, n: int, *, rate: float | None = None) -> RunResult:
    """One run of `workers` workers over n new CDRs on a topic with `workers` partitions."""
    tag = uuid.uuid4().hex[:8]
    settings = world.settings.replace(
        topic_cdrs=f"bench-{tag}",
        topic_dlq=f"bench-{tag}.dlq",
        topic_meta=f"bench-{tag}.meta",
        consumer_group=f"bench-{tag}",
        partitions=workers,
        metrics_port=world.settings.metrics_port + 10 * world.runs,
    )
    keys, values = messages(world, n)
    asyncio.run(kafka.ensure_topics(settings))
    problem: list[str] = []

    def drive() -> None:
        time.sleep(SETTLE_S)
        try:
            problem.append(asyncio.run(_publish_and_wait(settings, keys, values, rate)))
        except Exception as error:  # reported below; the workers must be stopped regardless
            problem.append(f"publisher: {error!r}")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # run_workers forwards it to every worker

    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: None)  # until a worker's own handler is in place
    thread = threading.Thread(target=drive, name="bench-publisher", daemon=True)
    thread.start()
    try:
        summaries = run_workers(settings, workers, until_idle_s=RUN_TIMEOUT_S + SETTLE_S + 30)
    finally:
        thread.join()
        signal.signal(signal.SIGTERM, previous)
    if problem and problem[0]:
        raise RuntimeError(f"{workers} worker(s): {problem[0]}")
    result = summarise(workers, summaries)
    result.topic = settings.topic_cdrs
    return result


def summarise(workers: int, summaries: list[WorkerSummary]) -> RunResult:
    busy = [s for s in summaries if s.records]
    first = min(s.first_at for s in busy)
    last = max(s.last_at for s in busy)
    result = RunResult(workers, sum(s.records for s in summaries), last - first)
    for summary in summaries:
        for stage, spent in summary.stage_seconds.items():
            result.stage_seconds[stage] = result.stage_seconds.get(stage, 0.0) + spent
        for key, count in summary.outcomes.items():
            result.outcomes[key] = result.outcomes.get(key, 0) + count
        result.latencies_ms += summary.latencies_ms
    return result


def run(ctx: BenchContext) -> BenchReport:
    n = 4_000 if ctx.quick else 60_000
    world = prepare(ctx, "scaling")
    try:
        results = [end_to_end(world, w, n) for w in (WORKERS[:1] if ctx.quick else WORKERS)]
        paced_rate = max(1000.0, results[0].rate / 2)
        paced_n = max(2000, int(paced_rate * (2 if ctx.quick else 6)))
        paced = end_to_end(world, 1, paced_n, rate=paced_rate)
    finally:
        cleanup(world)
    one = results[0]
    measurements = [
        Measurement(
            f"{r.workers} partition(s), {r.workers} worker process(es)",
            r.rate,
            "CDRs/s",
            "1 partition, 1 worker" if r.workers > 1 else None,
            one.rate if r.workers > 1 else None,
        )
        for r in results
    ]
    lat = np.asarray(paced.latencies_ms, dtype=np.float64)
    if lat.size:
        for q in (50, 90, 99):
            measurements.append(
                Measurement(
                    f"latency p{q}, publish -> committed, at {paced_rate:,.0f} CDRs/s",
                    float(np.percentile(lat, q)),
                    "ms",
                    higher_is_better=False,
                )
            )
    report = BenchReport(
        title=TITLE,
        measurements=measurements,
        params={
            "cdrs per run": n,
            "cores": os.cpu_count(),
            "batch": world.settings.batch_max_records,
            "customers": len(world.scenario.customers),
            "paced run": f"{paced.records:,} CDRs at {paced_rate:,.0f}/s",
        },
    )
    best = max(results, key=lambda r: r.rate)
    report.notes.append(
        f"{os.cpu_count()} cores are shared by the workers, the Tansu broker, Redis, ClickHouse "
        "and the publisher (which sends while the workers consume). "
        f"The best run was {best.workers} worker(s) at {best.rate:,.0f} CDRs/s; "
        "with more worker processes than free cores the extra workers only add context "
        "switches and smaller batches, so this machine cannot show scale-out: that needs "
        "cores (or machines) per worker, see SCALING.md."
    )
    report.plots.append(plots.workers_plot(ctx.out_dir, [(r.workers, r.rate) for r in results]))
    if lat.size:
        report.plots.append(plots.latency_plot(ctx.out_dir, lat, paced_rate))
    return report
