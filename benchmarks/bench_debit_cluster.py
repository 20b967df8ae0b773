"""The debit stage on one Redis node and on the three-node Redis Cluster, same CDRs, same run.

On the cluster each batch is split per slot (rater/redis/topology.py): the cross-reseller
de-duplication claims first (one claim.lua call per claim shard, rater/redis/claims.py), then one
debit call per reseller slot, each set sent in one cluster pipeline so the three nodes work at
once, and the partition watermark. The mix is bench_debit's (Zipf-skewed
customers, a third on cards, unanswered, unknown accounts, resent duplicates) over 12
resellers, so every node owns some. Balances are checked against a Python sum on both.

Needs `rater stack up --redis-cluster` (make bench starts it); the single node is the stack's
Redis, database (db + 10) % 16, flushed before and after.
"""

from __future__ import annotations

import time
from typing import Any

from redis.cluster import RedisCluster

from benchmarks import bench_debit
from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater.errors import ServiceUnavailable
from rater.pipeline.debit import Debiter, Outcome
from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.stack import redis_cluster

TITLE = "Debit on Redis Cluster: one node vs three"
NEEDS_STACK = True

RESELLERS = 12
BATCH = 4000


def node_cpu(client: Any) -> dict[str, float]:
    """CPU seconds (user + sys) used so far by each server behind client."""
    if not isinstance(client, RedisCluster):
        info = client.info("cpu")
        return {"single": float(info["used_cpu_user"]) + float(info["used_cpu_sys"])}
    info = client.info("cpu", target_nodes=RedisCluster.PRIMARIES)
    return {
        str(node): float(v["used_cpu_user"]) + float(v["used_cpu_sys"]) for node, v in info.items()
    }


def measure(settings: Settings, client: Any, n: int, n_customers: int) -> dict[str, Any]:
    """Accounts, then n CDRs in batches of BATCH; wall rate, server CPU per node, checks."""
    # bench_debit's helpers read its RESELLERS at call time: spread the mix over more
    # resellers so each cluster node owns several
    bench_debit.RESELLERS = RESELLERS
    customers, cards = bench_debit.setup_accounts(settings, client, n_customers)
    mix = bench_debit.make_mix(n, customers, cards)
    debiter = Debiter(client, settings=settings)
    work = bench_debit.batches(mix, "bench-cluster", BATCH)
    debiter.apply(work[0])  # loads the script on every node
    before = node_cpu(client)
    started = time.perf_counter()
    duplicates = 0
    for batch in work[1:]:
        duplicates += debiter.apply(batch).count(Outcome.DUPLICATE)
    wall = time.perf_counter() - started
    after = node_cpu(client)
    cpu = {node: after[node] - before.get(node, 0.0) for node in after}
    checked = bench_debit.check_balances(client, settings, [mix], customers, cards)
    applied = n - len(work[0])
    return {
        "rate": applied / wall,
        "cpu": cpu,
        "applied": applied,
        "checked": checked,
        "duplicates": duplicates,
        "wall": wall,
    }


def run(ctx: BenchContext) -> BenchReport:
    nodes = redis_cluster.nodes_of(ctx.settings)
    if not nodes:
        raise ServiceUnavailable(
            "no Redis Cluster: start it with `rater stack up --redis-cluster` (make bench does)"
        )
    n = 8_000 if ctx.quick else 200_000
    n_customers = 24 if ctx.quick else 300
    single_settings = ctx.settings.replace(
        redis_cluster_nodes="",
        redis_url=ctx.settings.redis_url.rsplit("/", 1)[0]
        + f"/{(ctx.settings.redis_db + 10) % 16}",
    )
    cluster_settings = ctx.settings.replace(redis_cluster_nodes=nodes)
    single = redis_client.connect(single_settings)
    cluster = redis_client.connect(cluster_settings)
    single.flushdb()
    cluster.flushall()
    try:
        one = measure(single_settings, single, n, n_customers)
        three = measure(cluster_settings, cluster, n, n_customers)
    finally:
        single.flushdb()
        cluster.flushall()
        single.close()
        cluster.close()
    one_cpu = sum(one["cpu"].values())
    three_cpu = sum(three["cpu"].values())
    busiest = max(three["cpu"].values())
    # what each setup gives when every Redis has a core of its own: the busiest server bounds it
    one_core_rate = one["applied"] / one_cpu if one_cpu else 0.0
    three_core_rate = three["applied"] / busiest if busiest else 0.0
    shares = ", ".join(f"{cpu / three_cpu:.0%}" for cpu in sorted(three["cpu"].values()))
    return BenchReport(
        title=TITLE,
        measurements=[
            Measurement(
                "three-node cluster, split per reseller slot (wall clock)",
                three["rate"],
                "CDRs/s",
                "one node, one call per batch",
                one["rate"],
            ),
            Measurement(
                "three nodes, per second of the busiest node's CPU",
                three_core_rate,
                "CDRs/s",
                "one node, per second of its CPU",
                one_core_rate,
                target="scales with nodes when each has a core",
            ),
            Measurement(
                "Redis CPU per CDR, all three nodes",
                1e6 * three_cpu / three["applied"],
                "us",
                "one node",
                1e6 * one_cpu / one["applied"],
                higher_is_better=False,
            ),
        ],
        notes=[
            f"The same {n:,} CDRs ({RESELLERS} resellers, {n_customers} customers, batches of "
            f"{BATCH}) on one Redis and on the three-node cluster; every balance was checked "
            f"against a Python sum on both ({one['checked']:,} and {three['checked']:,} "
            f"accounts; {one['duplicates']:,} and {three['duplicates']:,} resent CDRs caught). "
            f"Share of the cluster's Redis CPU per node: {shares}. This machine has 2 cores for "
            "three Redis servers, the Python client and everything else, so the wall-clock "
            "ratio shows the split's overhead (the claims, a call per reseller slot, the "
            "partition watermark) more than the gain; the per-busiest-node rate is what the "
            "split gives when each node has a core of its own.",
        ],
        params={
            "cdrs": n,
            "batch": BATCH,
            "resellers": RESELLERS,
            "customers": n_customers,
            "cluster": nodes,
        },
    )
