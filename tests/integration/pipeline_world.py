"""A small world for the pipeline's integration tests: tariffs, accounts, CDRs, a publisher,
workers run in-process or as `rater run` subprocesses, and expected totals from rater.reference.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from rater import kafka, reference
from rater.accounts.api import Accounts
from rater.pipeline.worker import WorkerSummary, run_worker
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

BUY = "wholesale"
SELL = "retail"
RESELLER = "res1"
START = 1_790_000_000  # 2026-09-21
#: the clock of the pipeline in these tests (rater/clock.py): half a day after START, so CDRs of
#: START .. START + 12 h are neither late nor in the future (docs/DESIGN.md section 4)
CLOCK_START = START + 13 * 3600


def own_topics(settings: Settings, name: str) -> Settings:
    """The settings with topics and a consumer group of their own (created here), for a test
    whose dead letters or leftovers must not meet another test's."""
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    ours = settings.replace(
        topic_cdrs=tag, topic_dlq=f"{tag}.dlq", topic_meta=f"{tag}.meta", consumer_group=tag
    )
    asyncio.run(kafka.ensure_topics(ours))
    return ours


def pipeline_settings(settings: Settings) -> Settings:
    """The settings with the world's clock, unless a test set one of its own."""
    return settings if settings.clock_start else settings.replace(clock_start=str(CLOCK_START))


def _rows(scale: int) -> tuple[TariffRow, ...]:
    # rates in micro-units per minute; the sell side is the buy side with a 40% markup
    base = {"49": ("Germany", 10_000), "4930": ("Berlin", 8_000), "31": ("Netherlands", 20_000),
            "44": ("United Kingdom", 15_000)}  # fmt: skip
    return tuple(
        TariffRow(prefix=p, destination=d, rate=rate * scale // 10) for p, (d, rate) in base.items()
    )


def tables() -> dict[str, TariffTable]:
    return {
        BUY: TariffTable(name=BUY, steps=Steps(1, 1), decimals=6, rows=_rows(10)),
        SELL: TariffTable(name=SELL, steps=Steps(60, 60), decimals=4, rows=_rows(14)),
    }


@dataclass
class World:
    settings: Settings
    redis: RedisLike
    versions: dict[str, list[TariffTable]] = field(default_factory=dict)
    cards: list[str] = field(default_factory=list)

    def expected(self, tariff: str, callee: str, billsec: int, start: int = START) -> int:
        """Price in micro-units by the reference rater (0 when nothing matches)."""
        _, rated = reference.rate_cdr(
            self.versions[tariff], callee, billsec, start, SwitchSettings()
        )
        return rated.price_micro if rated else 0


def make_world(settings: Settings, redis: RedisLike, *, cards: int = 2) -> World:
    """Tariffs wholesale (buy) and retail (sell), reseller res1 with customers cust1 (100 EUR,
    `cards` cards of 10 EUR) and cust2 (0.01 EUR: goes negative on its first call)."""
    store = TariffStore(redis, settings, clickhouse=False)
    world = World(settings, redis)
    accounts = Accounts(settings, redis, actor="test")
    for name, table in tables().items():
        if name == BUY:
            world.versions[name] = [store.save(table)]
            accounts.create_reseller(RESELLER, "Reseller one", credit="10000", buy_tariff=BUY)
    for name, table in tables().items():
        if name != BUY:  # the reseller's own sell tables (docs/DESIGN.md section 1)
            world.versions[name] = [store.save(table, owner=RESELLER)]
    accounts.create_customer(
        "cust1", "Customer one", reseller_id=RESELLER, tariff=SELL, balance="100"
    )
    accounts.create_customer(
        "cust2", "Customer two", reseller_id=RESELLER, tariff=SELL, balance="0.01"
    )
    if cards:
        batch = accounts.create_cards("cust1", count=cards, value="10")
        world.cards = [card.number for card in batch.cards]
    return world


def cdr(cdr_id: str, **changes: Any) -> dict[str, Any]:
    """An answered 125-second call of cust1 to Berlin; `changes` override fields."""
    billsec = changes.get("billsec", 125)
    seconds = billsec if type(billsec) is int and billsec > 0 else 0
    message: dict[str, Any] = {
        "cdr_id": cdr_id,
        "switch": "sw1",
        "account": "cust1",
        "caller": "+31201234567",
        "callee": "+493012345678",
        "start_time": START,
        "answer_time": START + 5 if seconds else "",
        "end_time": START + 5 + seconds,
        "billsec": billsec,
        "disposition": "ANSWERED" if billsec else "NO ANSWER",
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not None}


async def publish_async(settings: Settings, messages: Iterable[dict[str, Any] | bytes]) -> int:
    producer = kafka.producer(settings)
    await producer.start()
    count = 0
    try:
        futures = []
        for message in messages:
            value = message if isinstance(message, bytes) else orjson.dumps(message)
            key = message.get("account", "").encode() if isinstance(message, dict) else None
            futures.append(await producer.send(settings.topic_cdrs, value, key=key or None))
            count += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


def publish(settings: Settings, messages: Iterable[dict[str, Any] | bytes]) -> int:
    return asyncio.run(publish_async(settings, messages))


def run_in_process(settings: Settings, idle_s: float = 1.5) -> WorkerSummary:
    """One worker in this process until idle (everything committed). Short sessions: joins
    take about half the session timeout on Tansu."""
    fast = settings.replace(session_timeout_ms=3000, heartbeat_interval_ms=500)
    return asyncio.run(run_worker(pipeline_settings(fast), until_idle_s=idle_s))


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `rater run` subprocess using these settings."""
    env = dict(os.environ)
    for name in (
        "kafka_bootstrap", "topic_cdrs", "topic_dlq", "topic_meta", "consumer_group",
        "redis_url", "clickhouse_host", "clickhouse_port", "clickhouse_database",
        "session_timeout_ms", "heartbeat_interval_ms", "batch_max_records", "partitions",
        "metrics_port", "clock_start",
    ):  # fmt: skip
        env[f"RATER_{name.upper()}"] = str(getattr(settings, name))
    env.update({f"RATER_{k.upper()}": v for k, v in extra.items()})
    return env


def spawn(
    settings: Settings, *args: str, log: Path | None = None, **extra: str
) -> subprocess.Popen[bytes]:
    """`rater run ARGS` as a subprocess (killable), on the world's clock. Its logs go to `log`
    (appended), or to a pipe the caller must keep reading (a full pipe would stall the worker)."""
    settings = pipeline_settings(settings)
    if log is None:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "rater"), "run", *args],
            env=env_of(settings, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    with log.open("ab") as sink:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "rater"), "run", *args],
            env=env_of(settings, **extra),
            stdout=sink,
            stderr=sink,
        )


def totals(ch: Any) -> dict[str, int]:
    """Sums over rated_cdrs (x * sign), as the analysts read them."""
    rows = ch.execute(
        "SELECT sum(price * sign), sum(cost * sign), sum(sign), "
        "countDistinct((topic_id, partition, offset)), count() FROM rated_cdrs"
    )
    price, cost, signed, distinct, count = rows[0]
    return {"price": int(price), "cost": int(cost), "rows": int(signed),
            "distinct": int(distinct), "count": int(count)}  # fmt: skip


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass
class Workload:
    """Messages to publish and what the pipeline must make of them."""

    messages: list[dict[str, Any] | bytes] = field(default_factory=list)
    price: dict[str, int] = field(default_factory=dict)  # customer -> sell total
    card_price: dict[str, int] = field(default_factory=dict)  # card -> sell total
    cost: dict[str, int] = field(default_factory=dict)  # reseller -> buy total
    unique: int = 0  # distinct valid CDRs: rows rated_cdrs must hold
    duplicates: int = 0
    invalid: int = 0


_CALLEES = ("+493012345678", "+4989123456", "0031201234567", "+442071234567", "00493055512345")


def workload(world: World, count: int, *, seed: int, prefix: str) -> Workload:
    """`count` messages: rated, unanswered, unrated, duplicate and invalid ones, shuffled."""
    import random

    rng = random.Random(seed)
    out = Workload()
    sent: list[dict[str, Any]] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.08 and sent:
            out.messages.append(rng.choice(sent))
            out.duplicates += 1
            continue
        if roll < 0.15:
            out.messages.append(
                rng.choice(
                    [b"{oops", cdr(f"{prefix}-{i}", billsec=-3), cdr(f"{prefix}-{i}", callee="+12")]
                )
            )
            out.invalid += 1
            continue
        billsec = 0 if roll < 0.25 else rng.randint(1, 900)
        account = rng.choice(
            ["cust1", "cust1", "cust2", "nobody"] if roll < 0.3 else ["cust1", "cust2"]
        )
        card = (
            rng.choice(world.cards)
            if account == "cust1" and world.cards and rng.random() < 0.4
            else None
        )
        callee = "+8613912345678" if roll < 0.27 else rng.choice(_CALLEES)
        start = START + rng.randint(0, 12 * 3600)
        message = cdr(f"{prefix}-{i}", account=account, card=card, callee=callee, billsec=billsec,
                      start_time=start, answer_time=start + 3 if billsec else "",
                      end_time=start + 3 + billsec)  # fmt: skip
        out.messages.append(message)
        sent.append(message)
        out.unique += 1
        if account == "nobody" or not billsec:
            continue
        price = world.expected(SELL, callee, billsec, start)
        cost = world.expected(BUY, callee, billsec, start)
        if not price or not cost:
            continue  # unrated: no match
        out.price[account] = out.price.get(account, 0) + price
        out.cost[RESELLER] = out.cost.get(RESELLER, 0) + cost
        if card:
            out.card_price[card] = out.card_price.get(card, 0) + price
    return out
