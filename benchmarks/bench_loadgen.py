"""The load generator: publishing with send_batch beside one `send` per message (same messages,
same broker, same run), plus generation and the manifest's memoised reference pricing beside
`reference.rate` called once per CDR.

The messages are generated once (the ~29,000-prefix phonenumbers deck, 4 switches, 200
customers, 500 cards, 1% invalid, 1% duplicates) and published to two fresh topics of the
benchmark's own, so nothing else on the broker sees them.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import kafka, reference
from rater.loadgen.generate import Chunk, GenerationOptions, Generator
from rater.loadgen.numbers import NumberBook
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.loadgen.prefixes import wholesale_table
from rater.loadgen.pricing import ReferencePricer
from rater.loadgen.publish import Publisher, PublishStats, send_each
from rater.settings import Settings
from rater.switches.numbers import normalise_number
from rater.tariffs.derive import derive
from rater.tariffs.model import Steps, TariffTable

TITLE = "Load generator: publishing, generation and reference manifest"
NEEDS_STACK = True

#: messages/s the load generator should reach with send_batch on this machine (docs/DESIGN.md s. 7)
TARGET_PUBLISH = 200_000


def _scenario() -> Scenario:
    customers = []
    for i in range(200):
        cards = tuple(f"8{i:04d}{j:03d}" for j in range(5)) if i < 100 else ()
        customers.append(CustomerPlan(f"bench-c{i:04d}", f"bench-r{i % 3}", f"sell{i % 3}", cards))
    resellers = tuple(ResellerPlan(f"bench-r{i}", "buy") for i in range(3))
    return Scenario("bench", resellers, tuple(customers))


def _generate(n: int, scenario: Scenario, book: NumberBook) -> tuple[list[Chunk], float]:
    options = GenerationOptions(seed=5, invalid_fraction=0.01, duplicate_fraction=0.01)
    gen = Generator(scenario, book, options, "bench", now=int(time.time()))
    started = time.perf_counter()
    chunks = [gen.chunk(min(50_000, n - done)) for done in range(0, n, 50_000)]
    return chunks, time.perf_counter() - started


async def _publish(settings: Settings, chunks: list[Chunk], batched: bool) -> PublishStats:
    topic = f"bench-loadgen-{uuid.uuid4().hex[:8]}"
    await kafka.create_topics(settings, {topic: settings.partitions})
    producer = kafka.producer(settings)
    await producer.start()
    try:
        keys = [k for c in chunks for k in c.keys]
        values = [v for c in chunks for v in c.values]
        if not batched:
            return await send_each(producer, topic, keys, values)
        publisher = Publisher(producer, topic)
        await publisher.publish(keys, values)
        return await publisher.flush()
    finally:
        await producer.stop()


def run(ctx: BenchContext) -> BenchReport:
    n = 10_000 if ctx.quick else 1_000_000
    baseline_n = 3_000 if ctx.quick else 100_000
    reference_sample = 20 if ctx.quick else 200
    report = BenchReport(TITLE, params={"messages": n, "per-message baseline messages": baseline_n})

    buy = wholesale_table("buy", limit=1_000 if ctx.quick else None)
    tariffs = {"buy": [buy]}
    for i in range(3):
        sell = derive(buy, name=f"sell{i}", markup=Decimal(20 + 10 * i), steps=Steps(30, 6))
        tariffs[f"sell{i}"] = [sell]
    scenario = _scenario()
    book = NumberBook.from_prefixes([row.prefix for row in buy.rows], seed=5)
    report.params["prefixes"] = len(buy.rows)

    chunks, gen_s = _generate(n, scenario, book)
    report.measurements.append(
        Measurement("generate CDR messages (vectorised, JSON)", n / gen_s, "msgs/s")
    )

    batched = asyncio.run(_publish(ctx.settings, chunks, batched=True))
    single = asyncio.run(_publish(ctx.settings, _first(chunks, baseline_n), batched=False))
    report.measurements.append(
        Measurement(
            "publish with send_batch (one batch per partition)",
            batched.rate,
            "msgs/s",
            baseline_name="one send() per message",
            baseline_value=single.rate,
            target=f">= {TARGET_PUBLISH:,} msgs/s",
        )
    )

    pricer = ReferencePricer(scenario, tariffs)
    started = time.perf_counter()
    calls = 0
    for chunk in chunks:
        pricer.price(chunk.calls)
        calls += len(chunk.calls)
    memo_s = time.perf_counter() - started
    ref_rate = _reference_per_cdr(chunks[0], scenario, tariffs, reference_sample)
    report.measurements.append(
        Measurement(
            "manifest pricing (reference, memoised)",
            calls / memo_s,
            "CDRs/s",
            baseline_name="reference.rate once per CDR",
            baseline_value=ref_rate,
        )
    )
    report.notes.append(
        f"{n:,} messages were generated in {gen_s:.1f} s and published in {batched.seconds:.1f} s "
        f"with send_batch ({batched.rate:,.0f}/s); one send() per message managed "
        f"{single.rate:,.0f}/s on {baseline_n:,} messages. Pricing the manifest took "
        f"{memo_s:.1f} s with {pricer.reference_calls:,} reference calls for {calls:,} calls: "
        "`reference.match` is called once per (table, time bucket, longest prefix) and "
        "`reference.price_micro` once per distinct (rates, steps, rounding, billable seconds). "
        "Where the time goes in generation: one f-string per message (about 1.5 us) and the "
        "numpy string work for numbers and times; the rest is the broker."
    )
    return report


def _first(chunks: list[Chunk], n: int) -> list[Chunk]:
    keys = [k for c in chunks for k in c.keys][:n]
    values = [v for c in chunks for v in c.values][:n]
    return [Chunk(keys=keys, values=values, calls=chunks[0].calls)]


def _reference_per_cdr(
    chunk: Chunk, scenario: Scenario, tariffs: dict[str, list[TariffTable]], sample: int
) -> float:
    """CDRs/s of reference.rate called for sell and buy on each CDR (a sample, answered ones)."""
    calls = chunk.calls
    answered = [i for i in range(len(calls)) if calls.billsec[i] > 0]
    picks = random.Random(1).sample(answered, min(sample, len(answered)))
    switches = [s.settings() for s in scenario.switches]
    buy_of = {r.reseller_id: r.buy_tariff for r in scenario.resellers}
    started = time.perf_counter()
    for i in picks:
        customer = scenario.customers[int(calls.customer[i])]
        number = normalise_number(str(calls.callee[i]), switches[int(calls.switch[i])])
        at = datetime.fromtimestamp(int(calls.start[i]), UTC)
        billsec = int(calls.billsec[i])
        reference.rate(tariffs[customer.tariff], number, billsec, at)
        reference.rate(tariffs[buy_of[customer.reseller_id]], number, billsec, at)
    return len(picks) / (time.perf_counter() - started)
