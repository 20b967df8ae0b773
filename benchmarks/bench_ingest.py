"""`rater ingest` of a JSONL file: records published per second, broker acknowledgements included.

A JSONL file of CDR messages is published the way `rater ingest FILE --switch NAME` does it
(rater/cli/ingest.py): split into records, each record's account read for its key, the
`rater-switch` header set, record batches sent per partition with `send_batch`, and the run
waits for every acknowledgement. The baseline is the same file through one `send` per record.
The records go to a topic of their own, so no other benchmark reads them.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import kafka
from rater.cli.ingest import _publish
from rater.ingest.files import records_of
from rater.settings import Settings
from rater.tariffs.model import SwitchSettings

TITLE = "rater ingest: a JSONL file to the cdrs topic"
NEEDS_STACK = True


def _write(path: Path, n: int) -> None:
    with path.open("w") as out:
        for i in range(n):
            start = 1_790_002_800 + i % 40_000
            out.write(json.dumps({
                "cdr_id": f"b{i}", "switch": "sw1", "account": f"cust{i % 600}",
                "caller": "+31201234567", "callee": f"+4930{i % 10**7:07d}",
                "start_time": start, "answer_time": start + 5, "end_time": start + 130,
                "billsec": 125, "disposition": "ANSWERED",
            }) + "\n")  # fmt: skip


async def _send_each(settings: Settings, path: Path) -> float:
    producer = kafka.producer(settings)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = []
        for record in records_of(path, "lines"):
            account = json.loads(record)["account"].encode()
            futures.append(
                await producer.send(
                    settings.topic_cdrs, record, key=account, headers=[("rater-switch", b"sw1")]
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def run(ctx: BenchContext) -> BenchReport:
    n = 20_000 if ctx.quick else 200_000
    baseline_n = n // 10
    topic = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    settings = ctx.settings.replace(topic_cdrs=topic)
    asyncio.run(kafka.create_topics(settings, {topic: settings.partitions}))
    switch = SwitchSettings(name="sw1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cdrs.jsonl"
        small = Path(tmp) / "small.jsonl"
        _write(path, n)
        _write(small, baseline_n)
        size = path.stat().st_size
        asyncio.run(_publish(settings, switch, "", [small]))  # connections and metadata warm
        started = time.perf_counter()
        counts = asyncio.run(_publish(settings, switch, "", [path]))
        seconds = time.perf_counter() - started
        if counts.records != n or counts.unreadable:
            raise AssertionError(f"published {counts.records} of {n} ({counts.unreadable} unread)")
        each_s = asyncio.run(_send_each(settings, small))
    return BenchReport(
        title=TITLE,
        measurements=[
            Measurement(
                "rater ingest (send_batch, keys and header)",
                n / seconds,
                "records/s",
                "one send per record",
                baseline_n / each_s,
                target=">= 100,000 records/s",
            ),
            Measurement("file read", size / seconds / 1e6, "MB/s"),
        ],
        notes=[
            "Wall time of the whole publish, producer start and every acknowledgement included "
            "(acks=all on the local broker). Per record the sender parses the JSON for the "
            "account (orjson), maps the key to its partition (murmur2, cached per account) and "
            "appends it to that partition's record batch with the header; a batch is sent when "
            "full, and at most 64 are in flight."
        ],
        params={"records": n, "baseline records": baseline_n, "file MB": round(size / 1e6, 1)},
    )
