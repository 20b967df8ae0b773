"""Debits on a real three-node Redis Cluster (`rater stack up --redis-cluster`) against one server.

The same accounts and the same batch go to the single Redis of the stack and to the cluster:
outcomes, blocked flags, balances and watermarks must be identical, with the resellers placed
on different cluster nodes so the split really spreads over the slots.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis as redis_py
from redis.cluster import RedisCluster

from rater.accounts.api import Accounts
from rater.pipeline.debit import Correction, DebitBatch, Debiter, Outcome
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.settings import Settings
from rater.stack import redis_cluster

pytestmark = pytest.mark.integration

EUR = 1_000_000


def _cluster_settings(settings: Settings) -> Settings:
    nodes = redis_cluster.nodes_of(settings)
    if not nodes:
        message = "no Redis Cluster: start it with `rater stack up --redis-cluster`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return settings.replace(redis_cluster_nodes=nodes)


@pytest.fixture
def cluster(settings: Settings) -> Iterator[tuple[Settings, RedisCluster]]:
    ours = _cluster_settings(settings)
    client = redis_client.connect(ours)
    assert isinstance(client, RedisCluster)
    client.flushall()  # every primary
    yield ours, client
    client.close()


@pytest.fixture
def single(settings: Settings) -> Iterator[tuple[Settings, redis_py.Redis]]:
    ours = settings.replace(redis_cluster_nodes="")
    client = redis_py.Redis.from_url(ours.redis_url)
    client.flushdb()
    yield ours, client
    client.close()


def spread_resellers(client: RedisCluster, count: int = 3) -> list[str]:
    """Reseller ids whose slots are served by `count` different primaries."""
    chosen: dict[str, str] = {}
    for i in range(1000):
        reseller = f"R{i}"
        node = client.get_node_from_key(keys.reseller(reseller))  # type: ignore[no-untyped-call]
        if node.name not in chosen.values():
            chosen[reseller] = node.name
        if len(chosen) == count:
            return list(chosen)
    raise AssertionError("could not place resellers on distinct nodes")


def build(settings: Settings, client: Any, resellers: list[str]) -> dict[str, str]:
    """Per reseller: 50 EUR credit, customer C<r> (2 EUR) and a 3 EUR card with an ANI."""
    accounts = Accounts(settings, client, actor="test")
    cards = {}
    for n, reseller in enumerate(resellers):
        accounts.create_reseller(reseller, reseller, credit="50", buy_tariff="wholesale")
        accounts.create_customer(
            f"C{reseller}", "SIP", reseller_id=reseller, tariff="retail", balance="2"
        )
        card = accounts.create_cards(f"C{reseller}", count=1, value="3").cards[0].number
        accounts.add_ani(card, f"3120000000{n}")
        cards[reseller] = card
    return cards


def batch_of(resellers: list[str], cards: dict[str, str], first: int = 10) -> DebitBatch:
    rows: list[tuple[str, str, str, str, int, int]] = []  # cdr_id, customer, card, reseller, $, $
    for reseller in resellers:
        customer, card = f"C{reseller}", cards[reseller]
        rows += [
            (f"{reseller}-a", customer, "", reseller, 1_500_000, 700_000),
            (f"{reseller}-b", customer, card, reseller, 2_500_000, 1_000_000),  # goes negative
            (f"{reseller}-c", customer, card, reseller, 100_000, 50_000),  # blocked now
            (f"{reseller}-a", customer, "", reseller, 1_500_000, 700_000),  # resent: duplicate
            (f"{reseller}-u", customer, "", reseller, 0, 0),  # unanswered
        ]
    rows.append(("ghost-1", "nobody", "", "", 0, 0))  # unknown account: pseudo tag {r:}
    order = np.random.default_rng(7).permutation(len(rows))  # resellers interleaved
    rows = [rows[i] for i in order]
    n = len(rows)
    return DebitBatch(
        topic_id="topic-c",
        partition=3,
        offsets=np.arange(first, first + n, dtype=np.int64),
        switches=["sw1"] * n,
        cdr_ids=[r[0] for r in rows],
        customers=[r[1] for r in rows],
        cards=[r[2] for r in rows],
        resellers=[r[3] for r in rows],
        prices=np.array([r[4] for r in rows], dtype=np.int64),
        costs=np.array([r[5] for r in rows], dtype=np.int64),
    )


def test_local_cluster_is_three_primaries_serving_every_slot(
    cluster: tuple[Settings, RedisCluster],
) -> None:
    _, client = cluster
    primaries = client.get_primaries()  # type: ignore[no-untyped-call]
    assert len(primaries) == 3
    info = client.cluster_info(target_nodes=primaries[0])
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_ok"]) == 16384


def test_split_batch_equals_one_server_and_replays_change_nothing(
    cluster: tuple[Settings, RedisCluster], single: tuple[Settings, redis_py.Redis]
) -> None:
    c_settings, c_client = cluster
    s_settings, s_client = single
    resellers = spread_resellers(c_client)
    results = {}
    targets: dict[str, tuple[Settings, Any]] = {
        "cluster": (c_settings, c_client),
        "single": (s_settings, s_client),
    }
    for name, (settings, client) in targets.items():
        cards = build(settings, client, resellers)
        debiter = Debiter(client, settings=settings)
        assert debiter.topology.name == name
        batch = batch_of(resellers, cards)
        first = debiter.apply(batch)
        again = debiter.apply(batch)  # a replay of the whole batch (worker restart)
        results[name] = (first, again, debiter.watermark("topic-c", 3), cards)

    first, again, watermark, cards = results["cluster"]
    s_first, s_again, s_watermark, _ = results["single"]
    assert first.outcome.tolist() == s_first.outcome.tolist()
    assert first.blocked.tolist() == s_first.blocked.tolist()
    assert first.count(Outcome.APPLIED) == 3 * 4
    assert first.count(Outcome.DUPLICATE) == 3
    assert first.count(Outcome.UNKNOWN_ACCOUNT) == 1
    assert first.customer_balances == s_first.customer_balances
    assert first.reseller_balances == s_first.reseller_balances
    assert sorted((e.kind, e.balance) for e in first.events) == sorted(
        (e.kind, e.balance) for e in s_first.events
    )
    assert again.replayed.all()
    assert s_again.replayed.all()
    assert again.outcome.tolist() == first.outcome.tolist()
    assert watermark == s_watermark == 10 + len(first.outcome) - 1
    accounts = Accounts(cluster[0], c_client)
    for reseller in resellers:
        customer = accounts.get_customer(f"C{reseller}")
        assert customer.balance == 2 * EUR - 4_100_000  # a, b, c; the resent a not again
        assert accounts.get_reseller(reseller).credit == 50 * EUR - 1_750_000
        assert accounts.get_card(cards[reseller]).balance == 3 * EUR - 2_600_000


def test_global_lookups_follow_the_slots(cluster: tuple[Settings, RedisCluster]) -> None:
    """card: and ani: keys live in other slots than the card; they still follow its state."""
    settings, client = cluster
    resellers = spread_resellers(client, 2)
    cards = build(settings, client, resellers)
    accounts = Accounts(settings, client, actor="test")
    reseller = resellers[1]
    card = cards[reseller]
    assert accounts.card_of_ani("31200000001") == card
    debiter = Debiter(client, settings=settings)
    debiter.apply(
        DebitBatch(
            topic_id="topic-g",
            partition=0,
            offsets=np.array([1], dtype=np.int64),
            switches=["sw1"],
            cdr_ids=["g1"],
            customers=[f"C{reseller}"],
            cards=[card],
            resellers=[reseller],
            prices=np.array([2_500_000], dtype=np.int64),
            costs=np.array([1_000_000], dtype=np.int64),
        )
    )
    assert accounts.card_of_ani("31200000001") is None  # 0.50 left: under the 1.00 threshold
    accounts.topup_card(card, "0.50", "back to 1.00")
    assert accounts.card_of_ani("31200000001") == card
    assert accounts.card_of_ani("31200000000") == cards[resellers[0]]  # the other slot untouched


def test_corrections_over_resellers_on_different_nodes_apply_once(
    cluster: tuple[Settings, RedisCluster],
) -> None:
    settings, client = cluster
    resellers = spread_resellers(client, 2)
    cards = build(settings, client, resellers)
    debiter = Debiter(client, settings=settings)
    items = [
        Correction(f"k-{r}", r, f"C{r}", cards[r], price_delta=300_000, cost_delta=100_000)
        for r in resellers
    ] + [Correction(f"k2-{resellers[0]}", resellers[0], f"C{resellers[0]}", "", -50_000, 0)]
    assert debiter.apply_corrections(items).tolist() == [True, True, True]
    assert debiter.apply_corrections(items).tolist() == [False, False, False]
    accounts = Accounts(settings, client)
    assert accounts.get_customer(f"C{resellers[0]}").balance == 2 * EUR - 250_000
    assert accounts.get_customer(f"C{resellers[1]}").balance == 2 * EUR - 300_000
    assert accounts.get_card(cards[resellers[1]]).balance == 3 * EUR - 300_000
    assert accounts.get_reseller(resellers[1]).credit == 50 * EUR - 100_000
