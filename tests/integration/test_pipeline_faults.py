"""Workers killed with SIGKILL at each named point and at random moments, then restarted:
nothing lost, nothing charged or stored twice (docs/DESIGN.md section 3, "Replays")."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import RESELLER, make_world, pipeline_settings, publish, spawn, totals, workload

from rater.billing.reconcile import reconcile
from rater.pipeline import deadletter as dlq
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

CHUNK = 400
BATCH = "60"  # small batches: many kill points per chunk


def _stored(ch: Any) -> int:
    return int(ch.execute("SELECT count() FROM rated_cdrs")[0][0])


def _wait_exit(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 120.0) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        tail = log.read_text(errors="replace")[-3000:]
        raise AssertionError(f"worker did not exit in {timeout_s} s:\n{tail}") from None


def test_kills_at_every_point_lose_nothing_and_charge_nothing_twice(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    # short sessions: a killed member is dropped from the group sooner (joins take ~half)
    settings = kafka_topics.replace(session_timeout_ms=3000, heartbeat_interval_ms=500)
    ch.execute("TRUNCATE TABLE rated_cdrs")  # this test owns the table's totals
    ch.execute("TRUNCATE TABLE ledger")
    redis.flushdb()
    world = make_world(settings, redis)
    # the other tests' records are already consumed (committed); start from the topic's end
    asyncio.run(_drain(settings))
    opening = {
        "cust1": int(redis.hget(keys.customer(RESELLER, "cust1"), "bal") or 0),
        "cust2": int(redis.hget(keys.customer(RESELLER, "cust2"), "bal") or 0),
        "res": int(redis.hget(keys.reseller(RESELLER), "bal") or 0),
        **{card: int(redis.hget(keys.card(RESELLER, card), "bal") or 0) for card in world.cards},
    }
    load = workload(world, 5 * CHUNK, seed=7, prefix="f")
    dlq_before = len(asyncio.run(dlq.read_all(settings)))
    chunks = [load.messages[i : i + CHUNK] for i in range(0, len(load.messages), CHUNK)]
    rng = random.Random(11)

    # 1-3: a kill at each named point, in the second batch of a fresh worker
    for point, chunk in zip(("after_debit", "after_store", "before_commit"), chunks, strict=False):
        publish(settings, chunk)
        worker = spawn(
            settings, "--batch-size", BATCH, log=log, fault_point=point, fault_after_batches="2"
        )
        code = _wait_exit(worker, log)
        assert code == -signal.SIGKILL, f"{point}: exit {code}"
    # 4-6: kills at random moments while a worker is storing
    for chunk in chunks[3:]:
        publish(settings, chunk)
        before = _stored(ch)
        worker = spawn(settings, "--batch-size", BATCH, log=log)
        deadline = time.monotonic() + 60
        while _stored(ch) == before and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # finally a clean worker takes everything to the end. Its idle limit outlasts the broker's
    # eviction of the killed member (a few session timeouts), which may hold partitions at first
    final = spawn(settings, "--until-idle", "12", log=log)
    assert _wait_exit(final, log, 180) == 0, log.read_text(errors="replace")[-3000:]

    sums = totals(ch)
    assert sums["count"] == sums["distinct"] == load.unique, (
        f"a CDR was lost or stored twice:\n{log.read_text(errors='replace')[-4000:]}"
    )
    dup_rows = ch.execute(
        "SELECT count() FROM (SELECT switch, cdr_id FROM rated_cdrs GROUP BY switch, cdr_id "
        "HAVING count() > 1)"
    )[0][0]
    assert dup_rows == 0
    expected_price = sum(load.price.values())
    assert sums["price"] == expected_price
    assert sums["cost"] == sum(load.cost.values())
    per_customer = dict(
        ch.execute(
            "SELECT customer, sum(price * sign) FROM rated_cdrs WHERE outcome = 'rated' "
            "GROUP BY customer"
        )
    )
    assert {k: v for k, v in per_customer.items() if v} == {
        k: v for k, v in load.price.items() if v
    }
    # Redis debits == ClickHouse sums == the reference totals
    for customer in ("cust1", "cust2"):
        balance = int(redis.hget(keys.customer(RESELLER, customer), "bal") or 0)
        assert opening[customer] - balance == load.price.get(customer, 0), customer
    for card in world.cards:
        balance = int(redis.hget(keys.card(RESELLER, card), "bal") or 0)
        assert opening[card] - balance == load.card_price.get(card, 0), card
    reseller = int(redis.hget(keys.reseller(RESELLER), "bal") or 0)
    assert opening["res"] - reseller == load.cost[RESELLER]
    # every invalid record dead-lettered once (by identity), every account reconciled
    letters = asyncio.run(dlq.read_all(settings))
    assert len(letters) - dlq_before == load.invalid
    bad = [c for c in reconcile(settings, redis) if not c.ok]
    assert bad == []


async def _drain(settings: Settings) -> None:
    """Run one worker until idle so earlier tests' records are committed."""
    from rater.pipeline.worker import run_worker

    await run_worker(pipeline_settings(settings), until_idle_s=1.5)
