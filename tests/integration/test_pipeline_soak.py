"""Workers leave the group in the middle of a backlog, again and again, with random timing; the
others drain it with exact totals within a bound. Real processes (`rater run`), real Tansu.

Each round publishes a backlog, starts one more worker beside the long-running ones and has it
leave while the backlog is being rated: by going idle (--until-idle), by SIGTERM or by SIGKILL,
after a random delay. The long-running workers go through every one of those rebalances (the
hang this guards against struck a worker that had been through a few); they must rate every
CDR of the round, once, with balances and rated_cdrs equal to the reference prices, and stay up.

RATER_TEST_SOAK_ROUNDS rounds per group size: a few in `make test`, many in `make soak`.
RATER_TEST_SOAK_SEED replays a run's random timing (each run prints its random seed when it fails).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pipeline_world import RESELLER, Workload, make_world, publish, spawn, workload

from rater import kafka
from rater.kafka import ends
from rater.pipeline import deadletter as dlq
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

ROUNDS = int(os.environ.get("RATER_TEST_SOAK_ROUNDS", "3"))
SEED = int(os.environ.get("RATER_TEST_SOAK_SEED", str(random.randrange(1 << 30))))
BACKLOG = 1200
#: from the leaver's exit to the round's last CDR stored (a SIGKILLed member is dropped by the
#: broker after its session timeout, 3 s here, before its partitions move)
DRAIN_BOUND_S = 60.0
MODES = ("until-idle", "sigterm", "sigkill")


def _balances(redis: RedisLike, cards: list[str]) -> dict[str, int]:
    out = {
        "cust1": int(redis.hget(keys.customer(RESELLER, "cust1"), "bal") or 0),
        "cust2": int(redis.hget(keys.customer(RESELLER, "cust2"), "bal") or 0),
        RESELLER: int(redis.hget(keys.reseller(RESELLER), "bal") or 0),
    }
    for card in cards:
        out[card] = int(redis.hget(keys.card(RESELLER, card), "bal") or 0)
    return out


def _stored(ch: Any, tag: str) -> tuple[int, int, int, int]:
    row = ch.execute(
        "SELECT count(), countDistinct(switch, cdr_id), sum(price * sign), sum(cost * sign) "
        "FROM rated_cdrs WHERE cdr_id LIKE %(p)s",
        {"p": f"{tag}-%"},
    )[0]
    return int(row[0]), int(row[1]), int(row[2] or 0), int(row[3] or 0)


async def _behind(settings: Settings) -> int:
    """Records of the cdrs topic the group has not committed yet (the ends: the high watermarks
    of fetch responses, rater/kafka/ends.py)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=settings.consumer_group,
        enable_auto_commit=False,
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_cdrs, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        highs = await ends.high_watermarks(consumer, tps)
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
        return sum(max(0, highs[tp] - committed[tp]) for tp in tps)
    finally:
        await consumer.stop()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:]


@pytest.mark.parametrize("workers", [2, 3])
def test_the_others_drain_the_backlog_when_a_worker_leaves(  # noqa: PLR0912, PLR0915 - rounds of one scenario, read top to bottom
    workers: int, kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = kafka_topics.replace(
        topic_cdrs=f"soak-{tag}", topic_dlq=f"soak-{tag}.dlq", topic_meta=f"soak-{tag}.meta",
        consumer_group=f"soak-{tag}", session_timeout_ms=3000, heartbeat_interval_ms=500,
        stall_timeout_s=30,
    )  # fmt: skip
    asyncio.run(kafka.ensure_topics(settings))
    world = make_world(settings, redis)
    opening = _balances(redis, world.cards)
    rng = random.Random(SEED + workers)
    log = tmp_path / "workers.log"
    context = f"seed {SEED} (RATER_TEST_SOAK_SEED), {workers} workers"
    # the long-running workers wait in their fetch longer than the broker's fetch long-poll
    # (500 ms): a rebalance nearly always starts while they wait there and records arrive,
    # the moment a loop holding a lock across the fetch deadlocked
    stayers = [
        spawn(settings, "--batch-size", "50", log=log, batch_timeout_ms="1000")
        for _ in range(workers - 1)
    ]
    expected = Workload()
    invalid = 0
    try:
        for round_ in range(ROUNDS):
            mode = MODES[round_ % len(MODES)]
            prefix = f"{tag}-{round_}"
            load = workload(world, BACKLOG, seed=rng.randrange(1 << 30), prefix=prefix)
            invalid += load.invalid
            extra = ["--until-idle", "1"] if mode == "until-idle" else []
            leaver = spawn(settings, "--batch-size", "50", *extra, log=log)
            # the backlog in two parts with a random pause: the leaver joins, rates, leaves at
            # any point of it (an idle leaver leaves during a long enough pause)
            half = len(load.messages) // 2
            publish(settings, load.messages[:half])
            time.sleep(rng.uniform(0.0, 4.0))
            rest = load.messages[half:]
            for i in range(0, len(rest), 60):  # a trickle: records arrive during rebalances
                publish(settings, rest[i : i + 60])
                time.sleep(0.1)
            if mode != "until-idle":
                time.sleep(rng.uniform(0.0, 3.0))
                leaver.send_signal(signal.SIGTERM if mode == "sigterm" else signal.SIGKILL)
            try:
                code = leaver.wait(timeout=90)
            except subprocess.TimeoutExpired:
                leaver.kill()
                pytest.fail(f"round {round_} ({mode}): the leaver did not exit; {context}\n"
                            + _tail(log))  # fmt: skip
            # SIGTERM before the interpreter has its handler (while importing) ends it by the
            # signal: it had not joined the group, it has nothing to commit
            wanted = {"until-idle": {0}, "sigterm": {0, -signal.SIGTERM},
                      "sigkill": {-signal.SIGKILL}}[mode]  # fmt: skip
            assert code in wanted, f"round {round_} ({mode}): exit {code}; {context}\n{_tail(log)}"

            deadline = time.monotonic() + DRAIN_BOUND_S
            while _stored(ch, prefix)[0] < load.unique:
                for stayer in stayers:
                    assert stayer.poll() is None, f"a worker died; {context}\n{_tail(log)}"
                assert time.monotonic() < deadline, (
                    f"round {round_} ({mode}): {_stored(ch, prefix)[0]} of {load.unique} stored "
                    f"{DRAIN_BOUND_S:.0f} s after the leaver left; {context}\n{_tail(log)}"
                )
                time.sleep(0.2)
            # invalid records are not stored: the round is done when the group committed all
            while (behind := asyncio.run(_behind(settings))) != 0:
                assert time.monotonic() < deadline, (
                    f"round {round_} ({mode}): {behind} records not committed "
                    f"{DRAIN_BOUND_S:.0f} s after the leaver left; {context}\n{_tail(log)}"
                )
                time.sleep(0.2)
            count, distinct, price, cost = _stored(ch, prefix)
            assert count == distinct == load.unique, f"round {round_} ({mode}); {context}"
            assert price == sum(load.price.values()), f"round {round_} ({mode}); {context}"
            assert cost == sum(load.cost.values()), f"round {round_} ({mode}); {context}"
            for key, value in load.price.items():
                expected.price[key] = expected.price.get(key, 0) + value
            for key, value in load.card_price.items():
                expected.card_price[key] = expected.card_price.get(key, 0) + value
            for key, value in load.cost.items():
                expected.cost[key] = expected.cost.get(key, 0) + value
            # the debits precede the store: every row stored means every debit applied
            now = _balances(redis, world.cards)
            for customer in ("cust1", "cust2"):
                spent = opening[customer] - now[customer]
                assert spent == expected.price.get(customer, 0), f"{customer}; {context}"
            for card in world.cards:
                spent = opening[card] - now[card]
                assert spent == expected.card_price.get(card, 0), f"{card}; {context}"
            assert opening[RESELLER] - now[RESELLER] == expected.cost.get(RESELLER, 0), context
            letters = asyncio.run(dlq.read_all(settings))
            assert len(letters) == invalid, f"round {round_} ({mode}): dead letters; {context}"
    finally:
        for stayer in stayers:
            if stayer.poll() is None:
                stayer.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        codes = []
        for stayer in stayers:
            try:
                codes.append(stayer.wait(timeout=30))
            except subprocess.TimeoutExpired:
                stayer.kill()
                codes.append(None)
        took = time.monotonic() - stopping
    assert codes == [0] * len(stayers), f"{codes}; {context}\n{_tail(log)}"
    assert took < settings.shutdown_timeout_s + 3, f"stopping took {took:.1f} s; {context}"
