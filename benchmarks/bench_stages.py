"""Where a batch's time goes: the pipeline's own stage timings, and the broker's ceiling.

One worker (`rater run`) rates a loadgen run end to end (bench_scaling's harness: its own
topic, group, ClickHouse database and Redis database). The worker times every stage of every
batch (`BatchReport.stage_seconds`: fetch, decode (with number normalisation), lookup, rate,
debit, store, dead_letter, commit); the shares and each stage's throughput on its own
(records / seconds spent in it) are reported.

Then the consume-and-decode ceiling: the same topic read back by a plain aiokafka consumer
(getmany, no group) with rater.pipeline.decode on every batch, beside reading alone. Nothing in the
pipeline can go faster than that on one core.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import TopicPartition

from benchmarks import bench_scaling, plots
from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse, kafka
from rater.kafka.ends import high_watermarks
from rater.pipeline.decode import decode, zone
from rater.settings import Settings

TITLE = "Pipeline stages: share of a batch, and the consume-and-decode ceiling"
NEEDS_STACK = True

#: stages as the worker names them, in pipeline order
ORDER = ("fetch", "decode", "lookup", "rate", "debit", "store", "dead_letter", "commit")


async def read_topic(settings: Settings, topic: str, *, with_decode: bool) -> tuple[int, float]:
    """(records, seconds) to read the whole topic from the start, decoding or not."""
    consumer = kafka.consumer(settings, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(parts)
        ends = await high_watermarks(consumer, parts)  # not end_offsets (rater/kafka/ends.py)
        await consumer.seek_to_beginning(*parts)
        total_end = sum(ends.values())
        utc = zone("UTC")
        seen = 0
        started = time.perf_counter()
        while seen < total_end:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                seen += len(records)
                if with_decode:
                    decode(records, lambda _name: utc)
        return seen, time.perf_counter() - started
    finally:
        await consumer.stop()


def storage_per_row(settings: Settings) -> dict[str, float]:
    """Bytes per rated_cdrs row from system.parts after merging into one part (active parts)."""
    client = clickhouse.client(settings, numpy=False)
    try:
        database = settings.clickhouse_database
        client.execute(f"OPTIMIZE TABLE {database}.rated_cdrs FINAL")
        rows, disk, compressed, raw = client.execute(
            "SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), "
            "sum(data_uncompressed_bytes) FROM system.parts "
            f"WHERE database = '{database}' AND table = 'rated_cdrs' AND active"
        )[0]
    finally:
        client.disconnect()
    if not rows:
        return {}
    return {"rows": rows, "disk": disk / rows, "compressed": compressed / rows, "raw": raw / rows}


def run(ctx: BenchContext) -> BenchReport:
    n = 4_000 if ctx.quick else 50_000
    world = bench_scaling.prepare(ctx, "stages")
    try:
        result = bench_scaling.end_to_end(world, 1, n)
        topic = result.topic
        plain_n, plain_s = asyncio.run(read_topic(world.settings, topic, with_decode=False))
        decoded_n, decoded_s = asyncio.run(read_topic(world.settings, topic, with_decode=True))
        storage = storage_per_row(world.settings)
    finally:
        bench_scaling.cleanup(world)
    stages = {s: result.stage_seconds[s] for s in ORDER if result.stage_seconds.get(s)}
    stages.update(
        {s: v for s, v in result.stage_seconds.items() if s not in stages and v > 0}
    )  # any stage added later still shows
    total = sum(stages.values()) or 1.0
    measurements = [
        Measurement("end to end, one worker (first fetch -> last commit)", result.rate, "CDRs/s"),
        Measurement(
            "consume + rater.pipeline.decode (aiokafka getmany, one process)",
            decoded_n / decoded_s,
            "CDRs/s",
            "consume only",
            plain_n / plain_s,
            target=">= 93,000 msgs/s (docs/DESIGN.md 7)",
        ),
    ]
    if storage:
        measurements.append(
            Measurement(
                "rated_cdrs on disk per row (system.parts bytes_on_disk, one merged part)",
                storage["disk"],
                "bytes",
                "uncompressed",
                storage["raw"],
                higher_is_better=False,
            )
        )
    for stage, spent in stages.items():
        measurements.append(
            Measurement(
                f"stage {stage}: {spent / total:.0%} of batch time",
                result.records / spent,
                "CDRs/s",
            )
        )
    shares = ", ".join(f"{s} {v / total:.0%}" for s, v in stages.items())
    report = BenchReport(
        title=TITLE,
        measurements=measurements,
        notes=[
            f"{result.records:,} records through one worker, timed by the worker per batch "
            f"(sum {total:.2f} s): {shares}. A stage's CDRs/s is records / seconds spent in "
            "it, i.e. what it would sustain alone on this loaded machine; the slowest stages "
            "bound the worker. `fetch` is time waiting in getmany (includes waiting for the "
            "publisher); `decode` includes number normalisation; `lookup` is the account and "
            "tariff look-up in Redis; `commit` is the Kafka offset commit.",
            "The consume ceiling reads the same topic back with no group and no processing "
            "beyond rater.pipeline.decode; the ratio to `consume only` is decode's cost.",
        ],
        params={
            "cdrs": n,
            "batch": world.settings.batch_max_records,
            "rated_cdrs rows measured": int(storage.get("rows", 0)),
        },
    )
    report.plots.append(plots.stage_share_plot(ctx.out_dir, stages, result.records))
    return report
