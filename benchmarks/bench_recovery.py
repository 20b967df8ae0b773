"""Redis-loss recovery (rater/billing/recovery.py): what the workers' check costs when nothing
was lost, and how fast a lost tail of debits is applied again from ClickHouse.

The check runs per worker on assignment, when the Redis server changed and every
RATER_RECOVERY_CHECK_S (60 s): one ClickHouse query on `stored_offsets` (one aggregate per
partition and reseller, whatever the number of CDRs) and one MGET of the resellers' watermarks.
Its cost per batch is that divided by the batches of one interval. The repair reads the lost
CDRs' rows back from ClickHouse and feeds them to the debit script in chunks of 5,000.

Runs in a ClickHouse database and a Redis database of its own, dropped and flushed afterwards.
"""

from __future__ import annotations

import statistics
import time
import uuid

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse
from rater.accounts.api import Accounts
from rater.accounts.ledger import LedgerWriter
from rater.billing.recovery import Recovery
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis import topology as topologies
from rater.settings import Settings

TITLE = "Recovery after Redis loses writes: the check, and re-applying a lost tail"
NEEDS_STACK = True

PARTITIONS = 4
RESELLERS = 20
CUSTOMERS = 200
#: batches per check interval at 50,000 CDRs/s in batches of 5,000 (10 a second, for 60 s)
BATCHES_PER_CHECK = 600


def _fill(settings: Settings, rows: int, topic: str) -> None:
    """`rows` rated CDRs over PARTITIONS partitions and RESELLERS resellers, made by the server
    (INSERT ... SELECT from numbers(): the views, stored_offsets_mv among them, see them all)."""
    ch = clickhouse.client(settings, numpy=False)
    ch.execute(
        "INSERT INTO rated_cdrs (topic_id, partition, offset, switch, cdr_id, account, callee,"
        " start_time, end_time, billsec, reseller, customer, price, cost, margin, currency,"
        " outcome, sign, rated_at)"
        f" SELECT '{topic}', number % {PARTITIONS}, intDiv(number, {PARTITIONS}), 'sw1',"
        " toString(number), concat('cust', toString(number % {c})), '493012345678',"
        " toDateTime(1790000000 + number), toDateTime(1790000060 + number), 60,"
        " concat('res', toString(number % {c} % {r})), concat('cust', toString(number % {c})),"
        " 20000, 10000, 10000, 'EUR', 'rated', 1, toDateTime(1790000000)"
        f" FROM numbers({rows})".replace("{c}", str(CUSTOMERS)).replace("{r}", str(RESELLERS))
    )
    ch.disconnect()


def run(ctx: BenchContext) -> BenchReport:
    rows = 40_000 if ctx.quick else 400_000
    lost = rows // 10
    tag = uuid.uuid4().hex[:8]
    settings = ctx.settings.replace(
        clickhouse_database=f"bench_recovery_{tag}",
        redis_url=ctx.settings.redis_url.rsplit("/", 1)[0] + f"/{ctx.settings.redis_db + 10}",
        redis_cluster_nodes="",
    )
    clickhouse.migrate(settings)
    client = redis_client.connect(settings)
    client.flushdb()
    try:
        accounts = Accounts(settings, client, LedgerWriter(settings, client), actor="bench")
        for r in range(RESELLERS):
            accounts.create_reseller(f"res{r}", f"R{r}", credit="100000000", buy_tariff="buy")
        for c in range(CUSTOMERS):
            accounts.create_customer(
                f"cust{c}", f"C{c}", reseller_id=f"res{c % RESELLERS}", tariff="sell",
                balance="1000",
            )  # fmt: skip
        topic = f"bench-{tag}"
        _fill(settings, rows, topic)
        top = rows // PARTITIONS - 1
        # Redis holds everything: the steady state the check meets every minute
        pipe = client.pipeline(transaction=False)
        for r in range(RESELLERS):
            for p in range(PARTITIONS):
                pipe.set(keys.watermark(f"res{r}", topic, p), top)
        pipe.execute()
        recovery = Recovery(settings, topologies.connect(settings))
        partitions = list(range(PARTITIONS))
        times = []
        for _ in range(21):
            started = time.perf_counter()
            assert recovery.gaps(topic, partitions) == []
            times.append(time.perf_counter() - started)
        check_s = statistics.median(times[1:])
        # Redis lost the last tenth of every partition
        cut = top - lost // PARTITIONS
        pipe = client.pipeline(transaction=False)
        for r in range(RESELLERS):
            for p in range(PARTITIONS):
                pipe.set(keys.watermark(f"res{r}", topic, p), cut)
        pipe.execute()
        started = time.perf_counter()
        report = recovery.repair_debits(recovery.gaps(topic, partitions))
        repair_s = time.perf_counter() - started
        applied = report.cdrs_applied
    finally:
        client.flushdb()
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()
    per_batch_us = check_s / BATCHES_PER_CHECK * 1e6
    return BenchReport(
        title=TITLE,
        measurements=[
            Measurement(
                "check of 4 partitions, nothing lost", check_s * 1000, "ms", higher_is_better=False
            ),
            Measurement(
                "the check per batch (60 s interval, 10 batches/s)",
                per_batch_us,
                "us/batch",
                higher_is_better=False,
                target="<= 100 us per batch",
            ),
            Measurement("lost debits applied again", applied / repair_s, "CDRs/s"),
        ],
        notes=[
            f"{rows:,} stored CDRs over {PARTITIONS} partitions and {RESELLERS} resellers; "
            f"Redis lost the last {lost:,} debits ({applied:,} applied again in "
            f"{repair_s:.2f} s, including reading them from ClickHouse). The check reads "
            "`stored_offsets`, so its cost does not grow with the number of CDRs stored.",
        ],
        params={"rows": rows, "lost": lost, "partitions": PARTITIONS, "resellers": RESELLERS},
    )
