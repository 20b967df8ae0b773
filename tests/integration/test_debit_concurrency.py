"""Several processes debiting the same customer, card and reseller at once end exact."""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import pytest

from rater.accounts.api import Accounts
from rater.pipeline.debit import DebitBatch, Debiter, Outcome
from rater.redis import connection as redis_client
from rater.settings import Settings

pytestmark = pytest.mark.integration

WORKERS = 4
BATCHES = 6
PER_BATCH = 250
SHARED = 300  # CDRs every worker sends (a switch resending to several partitions)


def _price(i: int) -> int:
    return 10_000 + i % 977


def _cost(i: int) -> int:
    return 6_000 + i % 313


def _worker(args: tuple[Settings, int, str]) -> list[tuple[str, int]]:
    settings, worker, card = args
    debiter = Debiter(redis_client.connect(settings), settings=settings)
    outcomes: list[tuple[str, int]] = []
    offset = 0
    for b in range(BATCHES):
        ids = [f"w{worker}-{b}-{i}" for i in range(PER_BATCH)]
        ids += [f"shared-{j}" for j in range(b * SHARED // BATCHES, (b + 1) * SHARED // BATCHES)]
        n = len(ids)
        numbers = [
            int(x.rsplit("-", 1)[1]) + (0 if x.startswith("shared") else 100_000) for x in ids
        ]
        batch = DebitBatch(
            topic_id="topic-c",
            partition=worker,
            offsets=np.arange(offset, offset + n, dtype=np.int64),
            switches=["sw"] * n,
            cdr_ids=ids,
            customers=["C1"] * n,
            cards=[card if i % 3 == 0 else "" for i in range(n)],
            resellers=["R1"] * n,
            prices=np.array([_price(k) for k in numbers], dtype=np.int64),
            costs=np.array([_cost(k) for k in numbers], dtype=np.int64),
        )
        offset += n
        result = debiter.apply(batch)
        outcomes += list(zip(ids, result.outcome.tolist(), strict=True))
    return outcomes


def test_parallel_debits_end_with_exact_balances(settings: Settings, redis: Any) -> None:
    accounts = Accounts(settings, redis)
    accounts.create_reseller("R1", "R", credit="1000", buy_tariff="w")
    accounts.create_customer("C1", "C", reseller_id="R1", tariff="s", balance="50")
    card = accounts.create_cards("C1", count=1, value="30").cards[0].number
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
        results = pool.map(_worker, [(settings, w, card) for w in range(WORKERS)])

    applied: dict[str, int] = {}
    for outcomes in results:
        for cdr_id, outcome in outcomes:
            assert outcome in (Outcome.APPLIED, Outcome.DUPLICATE)
            if outcome == Outcome.APPLIED:
                applied[cdr_id] = applied.get(cdr_id, 0) + 1
    # every own CDR once, every shared CDR once in total, whichever worker won it
    assert len(applied) == WORKERS * BATCHES * PER_BATCH + SHARED
    assert set(applied.values()) == {1}

    # the Python sum, independent of the script
    own = [100_000 + i for i in range(PER_BATCH)] * (WORKERS * BATCHES)
    shared = list(range(SHARED))
    price_total = sum(_price(k) for k in own + shared)
    cost_total = sum(_cost(k) for k in own + shared)
    assert accounts.get_customer("C1").balance == 50_000_000 - price_total
    assert accounts.get_reseller("R1").credit == 1_000_000_000 - cost_total
    # card debits: the card column depends on the position in each worker's batch
    card_total = 0
    for worker_outcomes in results:
        position = 0
        for _ in range(BATCHES):
            n = PER_BATCH + SHARED // BATCHES
            for i in range(n):
                cdr_id, outcome = worker_outcomes[position + i]
                if i % 3 == 0 and outcome == Outcome.APPLIED:
                    k = int(cdr_id.rsplit("-", 1)[1]) + (
                        0 if cdr_id.startswith("shared") else 100_000
                    )
                    card_total += _price(k)
            position += n
    assert accounts.get_card(card).balance == 30_000_000 - card_total
