"""The streaming pipeline end to end on the local stack, beside the broker's raw ceiling.

1. The load generator publishes a backlog of realistic CDRs (its scenario: resellers,
   customers, cards, a phonenumbers-sized wholesale deck and derived sell decks).
2. Ceiling: one process reads the backlog with getmany and decodes it (orjson into columns),
   nothing else: what this broker and this machine give before any rating.
3. End to end: `workers` worker processes in one group take the same backlog through decode,
   normalise, look-up, rate, debit (Redis), store (ClickHouse) and commit; CDRs/s from the
   first fetched record to the last commit. Stage shares come from the workers' timings.
4. Latency: fresh workers, then an open-loop publisher at half the measured end-to-end rate
   (never from a backlog); publish -> committed latency of sampled records, p50 and p99.

CPU per stored CDR: the CPU seconds of every process during step 3 (the workers, from
getrusage once they exit; ClickHouse, Redis and the broker, from /proc), ClickHouse's merges of
what was stored included (the benchmark waits until they end), divided by the rows stored.
On a shared machine CDRs/s moves with the neighbours' load; CPU per CDR moves much less.

Steps 1-4 run once per insert size (RATER_INSERT_ROWS, `INSERT_ROWS`): the store gathers
prepared batches into inserts of that many rows (rater/pipeline/checkpoint.py); 1 stores every
fetched batch alone, as before the gathering. Each round has its own backlog, topics, consumer
group and ClickHouse database, dropped afterwards; the first round is the one reported in full,
the others are beside it as baselines and in the curve of insert size against CPU and p99.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
import signal
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.cpu import CpuMeter, stack_pids
from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse, kafka
from rater.loadgen.runner import LoadgenOptions
from rater.loadgen.runner import run as loadgen_run
from rater.loadgen.scenario import setup_scenario
from rater.pipeline.decode import decode, fixed_zone_of
from rater.pipeline.worker import WorkerSummary, _child
from rater.settings import Settings

TITLE = "Streaming pipeline: Kafka -> decode -> rate -> debit -> store -> commit"
NEEDS_STACK = True

TARGET_E2E = 60_000  # CDRs/s with 2 workers on this 2-core machine (stretch 80,000)
WORKERS = 2


#: rows per insert (RATER_INSERT_ROWS) of each round; 1 stores every fetched batch alone (how
#: it was before the store gathered batches). The first is the reported configuration.
INSERT_ROWS = (20_000, 1, 50_000)


@dataclass
class _Round:
    """One end-to-end round on a backlog of its own, with one insert size."""

    insert_rows: int
    e2e: float = 0.0
    ceiling: float = 0.0
    stored: int = 0
    spent: dict[str, float] = field(default_factory=dict)
    rate: float = 0.0
    latencies: list[float] = field(default_factory=list)
    stage_note: str = ""

    @property
    def cpu_us(self) -> float:
        return 1e6 * sum(self.spent.values()) / self.stored if self.stored else 0.0

    @property
    def p99_s(self) -> float:
        return _percentile(self.latencies, 0.99) / 1000 if self.latencies else 0.0


def run(ctx: BenchContext) -> BenchReport:
    backlog = 20_000 if ctx.quick else 300_000
    latency_s = 4.0 if ctx.quick else 20.0
    sizes = INSERT_ROWS[:2] if ctx.quick else INSERT_ROWS
    rounds = [_one_round(ctx, size, backlog, latency_s) for size in sizes]
    main = rounds[0]
    before = next((r for r in rounds if r.insert_rows == 1), None)
    report = BenchReport(title=TITLE, params={"backlog": backlog, "workers": WORKERS,
                                              "rows per insert": main.insert_rows})  # fmt: skip
    report.measurements.append(
        Measurement(
            f"end to end, backlog (inserts of {main.insert_rows:,} rows)",
            main.e2e,
            "CDRs/s",
            "consume + decode ceiling",
            main.ceiling,
            target=f">= {TARGET_E2E:,} CDRs/s and >= 0.6 x ceiling",
        )
    )
    if before is not None:
        report.measurements.append(
            Measurement(
                f"end to end, backlog (inserts of {main.insert_rows:,} rows)",
                main.e2e,
                "CDRs/s",
                "one insert per fetched batch (before), its own round",
                before.e2e,
            )
        )
    report.measurements.append(
        Measurement(
            "CPU per stored CDR, all processes summed",
            main.cpu_us,
            "us",
            "one insert per fetched batch (before)" if before else None,
            before.cpu_us if before else None,
            target="<= 30 us (stretch 25)",
            higher_is_better=False,
        )
    )
    report.measurements += [
        Measurement(f"  of which {name}", 1e6 * seconds / main.stored, "us", higher_is_better=False)
        for name, seconds in sorted(main.spent.items(), key=lambda item: -item[1])
        if main.stored
    ]
    if main.latencies:
        report.measurements += [
            Measurement(
                f"latency p50 at {main.rate:,.0f} CDRs/s",
                statistics.median(main.latencies) / 1000,
                "s",
                higher_is_better=False,
            ),
            Measurement(
                f"latency p99 at {main.rate:,.0f} CDRs/s",
                main.p99_s,
                "s",
                "one insert per fetched batch (before)" if before else None,
                before.p99_s if before else None,
                target="<= 1 s",
                higher_is_better=False,
            ),
        ]
    report.notes.append(main.stage_note)
    report.notes.append(
        "Rows per insert against cost, one round each on a backlog and a ClickHouse database "
        "of its own (RATER_INSERT_ROWS; 1 = every fetched batch of up to "
        "RATER_BATCH_MAX_RECORDS alone): "
        + "; ".join(
            f"{'one batch' if r.insert_rows == 1 else f'{r.insert_rows:,} rows'}: "
            f"{r.cpu_us:.1f} us CPU per stored CDR "
            f"({', '.join(f'{k} {1e6 * v / r.stored:.1f}' for k, v in sorted(r.spent.items()))}), "
            f"{r.e2e:,.0f} CDRs/s, p99 {r.p99_s:.2f} s at {r.rate:,.0f} CDRs/s"
            for r in rounds
            if r.stored
        )
        + "."
    )
    report.notes.append(
        "The levers, each measured beside the way before it in this run: insert size (the "
        "rounds above: the ClickHouse share of CPU per CDR is the part that moves); the typed "
        "decode and the minute cache of times (bench_decode, worker CPU per CDR); one ledger "
        "entry per account and insert instead of two or three per call (bench_store_views, "
        "ClickHouse CPU per row); the offline rater's blocks and jobs (bench_rate_offline). "
        "This machine's two cores are shared with other work, so CDRs/s and latencies move "
        "by tens of percent between runs and even between rounds of one run (compare the "
        "consume + decode ceiling with docs/DESIGN.md section 7); CPU seconds per stored CDR "
        "count only what the rater's processes spend, so they move much less, and they are "
        "the figure to compare."
    )
    report.notes.append(
        "CPU per stored CDR: CPU seconds of every process from the first stored row to the "
        "last (the workers' start-up and group join left out), ClickHouse's merges of them "
        "included, over the rows stored. Latency: open loop at half the round's end-to-end "
        f"rate for {latency_s:.0f} s into {WORKERS} running workers, from the producer's "
        "timestamp to the commit of the record's batch (stored, debited, offset committed); "
        f"{len(main.latencies)} sampled records in the first round."
    )
    return report


def _one_round(ctx: BenchContext, insert_rows: int, backlog: int, latency_s: float) -> _Round:
    tag = uuid.uuid4().hex[:8]
    settings = ctx.settings.replace(
        topic_cdrs=f"bench-{tag}",
        topic_dlq=f"bench-{tag}.dlq",
        topic_meta=f"bench-{tag}.meta",
        consumer_group=f"bench-{tag}",
        clickhouse_database=f"bench_{tag}",
        session_timeout_ms=6000,
        insert_rows=insert_rows,
    )
    clickhouse.migrate(settings)
    asyncio.run(kafka.ensure_topics(settings))
    result = _Round(insert_rows)
    try:
        scenario = setup_scenario(settings, name="bench", resellers=2, customers=60, cards=120)
        loadgen_run(settings, LoadgenOptions(count=backlog, progress=False), scenario)

        result.ceiling = asyncio.run(_consume_and_decode(settings, backlog))
        summaries, result.spent, result.stored = _metered_workers(settings, ctx.settings.stack_dir)
        records = sum(s.records for s in summaries)
        span = max(s.last_at for s in summaries) - min(s.first_at for s in summaries if s.first_at)
        result.e2e = records / span if span > 0 else 0.0
        result.stage_note = _stage_note(summaries, records, span)
        result.rate = max(100.0, result.e2e / 2)
        result.latencies = _open_loop(settings, scenario, result.rate, latency_s)
    finally:
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()
    return result


async def _consume_and_decode(settings: Settings, count: int) -> float:
    """CDRs/s of getmany + decode alone over the backlog (no group, all partitions)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_cdrs, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        tz = fixed_zone_of({})
        seen = 0
        started = time.perf_counter()
        while seen < count:
            batches = await consumer.getmany(
                timeout_ms=1000, max_records=settings.batch_max_records
            )
            for records in batches.values():
                decode(records, tz)
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def _metered_workers(
    settings: Settings, stack_dir: Any, idle_s: float = 10.0
) -> tuple[list[WorkerSummary], dict[str, float], int]:
    """`WORKERS` worker processes over the backlog, with the CPU seconds every process spends
    from the first stored row to the last (the workers' start-up and group join left out;
    ClickHouse's merges of the stored rows waited for), and the rows stored. The workers idle
    `idle_s` before they leave, so their /proc entries are read while they still run."""
    context = multiprocessing.get_context("spawn")
    out: Any = context.Queue()
    processes = [
        context.Process(target=_child, args=(settings.replace(metrics_port=0), i, idle_s, out))
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    while _stored(settings) == 0 and any(p.is_alive() for p in processes):
        time.sleep(0.02)
    workers = {f"worker {i + 1}": p.pid for i, p in enumerate(processes) if p.pid}
    meter = CpuMeter({**stack_pids(Path(stack_dir)), **workers}).start()
    last, quiet = -1, 0
    while quiet < 3:  # no new row for 1.5 s: the backlog is stored
        count = _stored(settings)
        quiet = quiet + 1 if count == last else 0
        last = count
        time.sleep(0.5)
    spent = meter.read(list(workers))
    _settle_merges(settings)
    spent |= meter.read([name for name in meter.pids if name not in workers])
    return _collect(processes, out), spent, last


def _collect(processes: list[Any], out: Any) -> list[WorkerSummary]:
    summaries: list[WorkerSummary] = []
    while len(summaries) < len(processes):
        try:
            summaries.append(out.get(timeout=1.0))
        except queue.Empty:
            if not any(p.is_alive() for p in processes) and out.empty():
                break
    for process in processes:
        process.join(timeout=30)
    return summaries


def _open_loop(settings: Settings, scenario: Any, rate: float, seconds: float) -> list[float]:
    """Latencies (ms) of records published at `rate` into running workers."""
    templates = asyncio.run(_templates(settings, 5_000))
    context = multiprocessing.get_context("spawn")
    out: Any = context.Queue()
    processes = [
        context.Process(target=_child, args=(settings.replace(metrics_port=0), i, None, out))
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    # a trickle until the workers have joined and stored it: the measured load never waits
    # for a join or a warm-up
    stored = _stored(settings)
    asyncio.run(_publish_paced(settings, templates[:200], 100.0, prefix=b"W"))
    _wait_stored(settings, stored + 200, timeout_s=300)
    started_ms = time.time() * 1000
    count = int(rate * seconds)
    values = [templates[i % len(templates)] for i in range(count)]
    asyncio.run(_publish_paced(settings, values, rate, prefix=b"L"))
    _wait_stored(settings, stored + 200 + count, timeout_s=120)
    for process in processes:
        if process.pid:
            os.kill(process.pid, signal.SIGTERM)  # finish the batch, commit, leave
    summaries = _collect(processes, out)
    return [
        latency
        for summary in summaries
        for published, latency in zip(
            summary.latency_published_ms, summary.latencies_ms, strict=True
        )
        if published >= started_ms
    ]


async def _templates(settings: Settings, count: int) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of the first records of the backlog: realistic CDRs to send again."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_cdrs, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[tuple[bytes | None, bytes]] = []
        while len(found) < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=count)
            for records in batches.values():
                found.extend((r.key, r.value or b"") for r in records)
        return found[:count]
    finally:
        await consumer.stop()


async def _publish_paced(
    settings: Settings, messages: list[tuple[bytes | None, bytes]], rate: float, *, prefix: bytes
) -> None:
    """Open loop: message i goes out at t0 + i / rate, whatever the consumers do. Each gets a
    fresh cdr_id (a resend would be a duplicate: counted, never stored). The producer lingers
    2 ms at most, so a record's timestamp is close to its send time."""
    producer = kafka.producer(settings, linger_ms=2)
    await producer.start()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        futures = []
        for i, (key, value) in enumerate(messages):
            due = started + i / rate
            delay = due - loop.time()
            if delay > 0.002:
                await asyncio.sleep(delay)
            fresh = value.replace(b'"cdr_id":"', b'"cdr_id":"' + prefix + str(i).encode() + b"-", 1)
            futures.append(await producer.send(settings.topic_cdrs, fresh, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _stored(settings: Settings) -> int:
    client = clickhouse.client(settings, numpy=False)
    try:
        return int(client.execute("SELECT count() FROM rated_cdrs")[0][0])
    finally:
        client.disconnect()


def _settle_merges(settings: Settings, timeout_s: float = 120.0) -> None:
    """Until no merge of the benchmark's database ran for three looks in a row (1.5 s)."""
    client = clickhouse.client(settings, numpy=False)
    try:
        quiet = 0
        deadline = time.monotonic() + timeout_s
        while quiet < 3 and time.monotonic() < deadline:
            busy = client.execute(
                "SELECT count() FROM system.merges WHERE database = %(d)s",
                {"d": settings.clickhouse_database},
            )[0][0]
            quiet = 0 if busy else quiet + 1
            time.sleep(0.5)
    finally:
        client.disconnect()


def _wait_stored(settings: Settings, count: int, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while _stored(settings) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _stage_note(summaries: list[WorkerSummary], records: int, span: float) -> str:
    stages: dict[str, float] = {}
    for summary in summaries:
        for stage, spent in summary.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + spent
    busy = sum(stages.values()) or 1.0
    shares = ", ".join(
        f"{stage} {spent / busy:.0%} ({records / spent:,.0f}/s)"
        for stage, spent in sorted(stages.items(), key=lambda kv: -kv[1])
        if spent > 0
    )
    return (
        f"Where the time goes ({len(summaries)} workers, {records:,} CDRs in {span:.1f} s; share "
        f"of the workers' busy time, and each stage's rate on one core): {shares}. Decode "
        "includes number normalisation; lookup includes the tariff loader's generation check."
    )
