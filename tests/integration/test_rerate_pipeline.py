"""Re-rating what the real pipeline stored: CDRs go through Kafka, the workers rate, debit and
store them; then `rater rerate` changes prices and rates the unrated ones. Afterwards the
summaries equal the base table, `reconcile` proves every Redis balance against ClickHouse, and
a second run changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pipeline_world import RESELLER, SELL, START, cdr, make_world, publish, run_in_process

from rater import reference
from rater.accounts.api import Accounts
from rater.analytics.check import check
from rater.billing.reconcile import reconcile
from rater.billing.rerate import Rerater, RerateRequest
from rater.billing.rows import select_live
from rater.clickhouse.executor import DriverExecutor
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

DAY = datetime.fromtimestamp(START, UTC).date()


def _state(ex: DriverExecutor) -> list[tuple[Any, ...]]:
    return sorted(ex.rows("SELECT cdr_id, revision, sign, outcome, price, cost FROM rated_cdrs"))


def test_rerate_after_the_pipeline_keeps_every_balance_provable(
    kafka_topics: Settings, redis: RedisLike
) -> None:
    settings = kafka_topics
    ex = DriverExecutor.from_settings(settings)
    for table in ("rated_cdrs", "daily_summary", "card_summary", "rerate_audit", "ledger"):
        ex.command(f"TRUNCATE TABLE {table}")
    world = make_world(settings, redis)
    card = world.cards[0]
    messages = [
        cdr("p-1"),  # Berlin, 125 s
        cdr("p-2", callee="+442071234567", billsec=61),
        cdr("p-3", card=card, billsec=300),
        cdr("p-4", billsec=0),
        cdr("p-5", account="late1", billsec=90),  # unknown account: stored unrated
    ]
    publish(settings, messages)
    run_in_process(settings)
    outcomes = {r[0]: r[3] for r in _state(ex)}
    assert outcomes == {"p-1": "rated", "p-2": "rated", "p-3": "rated", "p-4": "unanswered",
                        "p-5": "unrated"}  # fmt: skip
    assert check(ex) == []
    assert all(c.ok for c in reconcile(settings, redis))

    # a corrected retail version in force since before the calls: everything 2x
    store = TariffStore(redis, settings, clickhouse=False)
    old = store.get(SELL)
    doubled = TariffTable(
        name=SELL,
        steps=Steps(60, 60),
        decimals=4,
        rows=tuple(
            TariffRow(prefix=r.prefix, destination=r.destination, rate=r.rate * 2) for r in old.rows
        ),
    )
    saved = store.save(doubled, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    accounts = Accounts(settings, redis)
    accounts.create_customer("late1", "Late", reseller_id=RESELLER, tariff=SELL, balance="20")

    rerater = Rerater(settings, redis, ex)
    priced = rerater.run(RerateRequest(DAY, DAY, tariff=SELL, reason="deck fix"))
    assert priced.changed == 3
    unrated = rerater.run(RerateRequest(DAY, DAY, unrated=True, reason="account created"))
    assert unrated.changed == 1
    live = {r["cdr_id"]: r for r in select_live(ex, DAY, DAY)}
    assert live["p-5"]["outcome"] == "rated"
    assert live["p-5"]["customer"] == "late1"
    assert live["p-5"]["sell_tariff"] == f"{SELL}@2"
    rated = reference.rate_cdr([saved], "+493012345678", 90, START, SwitchSettings())[1]
    assert rated is not None
    assert live["p-5"]["price"] == rated.price_micro
    assert live["p-1"]["price"] > 0
    assert check(ex) == []
    bad = [c for c in reconcile(settings, redis) if not c.ok]
    assert bad == []

    state = _state(ex)
    balances = {c.account: c.redis_balance for c in reconcile(settings, redis)}
    assert rerater.run(RerateRequest(DAY, DAY, tariff=SELL)).changed == 0
    assert rerater.run(RerateRequest(DAY, DAY, unrated=True)).changed == 0
    assert _state(ex) == state
    assert {c.account: c.redis_balance for c in reconcile(settings, redis)} == balances
