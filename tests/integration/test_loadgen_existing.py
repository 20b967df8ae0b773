"""`--use-existing`: the load generator calls from accounts someone else created."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from rater import kafka
from rater.accounts.api import Accounts
from rater.accounts.model import CustomerKind
from rater.errors import NotFound
from rater.loadgen import LoadgenOptions, run, scenario_from_accounts
from rater.loadgen.prefixes import wholesale_table
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration


def test_scenario_from_existing_accounts(kafka_topics: Settings, redis: RedisLike) -> None:
    settings = kafka_topics
    store = TariffStore(redis, settings)
    store.save(wholesale_table("ex-buy", limit=120, seed=5))
    accounts = Accounts(settings, redis)
    accounts.create_reseller("ex-r", "Existing reseller", credit="500", buy_tariff="ex-buy")
    store.save(wholesale_table("ex-sell", limit=120, seed=6), owner="ex-r")
    accounts.create_customer(
        "ex-c1", "SIP one", reseller_id="ex-r", tariff="ex-sell", balance="100"
    )
    accounts.create_customer("ex-c2", "SIP two", reseller_id="ex-r", tariff="ex-sell")
    accounts.create_cards("ex-c1", count=3, value="5")
    accounts.create_customer(
        "ex-b", "Calling card user batch 1", reseller_id="ex-r", tariff="ex-sell",
        kind=CustomerKind.CARD_BATCH,
    )  # fmt: skip
    accounts.create_cards("ex-b", count=4, value="10", disposable=True)
    # another reseller's accounts stay out when --reseller names one
    accounts.create_reseller("ex-other", "Other", credit="0", buy_tariff="ex-buy")

    scenario = scenario_from_accounts(settings, reseller_ids=["ex-r"], accounts=accounts)
    assert {c.customer_id for c in scenario.customers} == {"ex-c1", "ex-c2", "ex-b"}
    assert scenario.card_count == 7
    batch = next(c for c in scenario.customers if c.customer_id == "ex-b")
    assert batch.disposable
    assert SwitchRegistry(redis).get(scenario.switches[0].name).country_code == "31"

    topic = f"{settings.topic_cdrs}-lgex-{uuid.uuid4().hex[:6]}"
    asyncio.run(kafka.create_topics(settings, {topic: settings.partitions}))
    manifest = run(settings, LoadgenOptions(count=500, topic=topic, progress=False), scenario)
    assert set(manifest.customers) == {"ex-c1", "ex-c2", "ex-b"}
    assert set(manifest.resellers) == {"ex-r"}
    assert len(manifest.cards) == 7
    assert manifest.customers["ex-b"].calls > 0  # disposable cards are used
    assert manifest.rated > 0
    assert manifest.price_micro == sum(c.price_micro for c in manifest.customers.values())

    with pytest.raises(NotFound, match="nobody"):
        scenario_from_accounts(settings, reseller_ids=["nobody"], accounts=accounts)
