"""Reservations with running totals (rater/redis/lua/common.lua, rsv_*; docs/REDIS_KEYS.md,
"Authorization"): each account keeps the sum and count of its live reservations beside them,
exact under concurrent reserve, renew, release and debit, expiring with them, and a call's
cost does not grow with the number of live reservations."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import numpy as np
import pytest
from redis_targets import Target, target  # noqa: F401 - the fixture

from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer
from rater.pipeline.debit import DebitBatch, Debiter
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

MOBILE = "31612345678"
#: 0.10 a minute, 1/1 billing: every second costs 1,667 micro-units (rounded up)
SELL = TariffTable(
    name="retail", decimals=6, steps=Steps(1, 1), rows=(TariffRow("31", "NL", rate=100_000),)
)
BUY = TariffTable(
    name="wholesale", decimals=6, steps=Steps(1, 1), rows=(TariffRow("31", "NL", rate=40_000),)
)


def _world(settings: Settings, client: Any, *, balance: str = "10") -> tuple[Accounts, str, str]:
    """Reseller R1 (credit 1,000,000), customer C1 with `balance` and a 5.00 card."""
    store = TariffStore(client, settings, clickhouse=False)
    store.save(SELL, owner="R1")
    store.save(BUY)
    accounts = Accounts(settings, client)
    accounts.create_reseller("R1", "Reseller", credit="1000000", buy_tariff="wholesale")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance=balance)
    issued = accounts.create_cards("C1", count=1, value="5").cards[0]
    return accounts, issued.number, issued.pin


def _levels(card: str) -> list[tuple[str, str]]:
    return [("r", "R1"), ("c", "C1"), ("k", card)]


def _entries(client: Any, level: str, account: str) -> dict[str, tuple[int, int]]:
    raw = client.hgetall(keys.reservations("R1", level, account))
    out = {}
    for auth, value in raw.items():
        amount, until = value.decode().split(":")
        out[auth.decode()] = (int(amount), int(until))
    return out


def _check_totals(client: Any, level: str, account: str) -> tuple[int, int]:
    """The totals equal the sum and count of the entries, the expiry index holds the same
    auth_ids with the same expiries, and the three keys expire together; (held, calls)."""
    entries = _entries(client, level, account)
    held, calls = client.hmget(keys.reservation_totals("R1", level, account), "held", "calls")
    assert int(held or 0) == sum(amount for amount, _ in entries.values()), (level, account)
    assert int(calls or 0) == len(entries), (level, account)
    index = client.zrange(keys.reservation_expiry("R1", level, account), 0, -1, withscores=True)
    assert {a.decode(): int(s) for a, s in index} == {a: u for a, (_, u) in entries.items()}
    names = [keys.reservations("R1", level, account), keys.reservation_expiry("R1", level, account),
             keys.reservation_totals("R1", level, account)]  # fmt: skip
    ttls = [client.ttl(name) for name in names]
    assert max(ttls) - min(ttls) <= 1, ttls
    return int(held or 0), int(calls or 0)


def _batch(at: tuple[int, int], card: str, price: int, cost: int, auth: str) -> DebitBatch:
    """One answered call's CDR carrying its auth_id, at (partition, offset)."""
    partition, offset = at
    return DebitBatch(
        topic_id="topic-1",
        partition=partition,
        offsets=np.array([offset], dtype=np.int64),
        switches=["sw1"],
        cdr_ids=[f"{partition}-{offset}"],
        customers=["C1"],
        cards=[card],
        resellers=["R1"],
        prices=np.array([price], dtype=np.int64),
        costs=np.array([cost], dtype=np.int64),
        auth_ids=[auth],
    )


def test_totals_stay_exact_under_concurrent_reserve_renew_release_and_debit(
    target: Target,  # noqa: F811
) -> None:
    """Six threads, each its own client, authorize on the card or the account and then renew,
    release, debit (as the CDR of the call would) or keep the reservation, at random."""
    settings = target.settings.replace(max_calls_per_card=1000, max_calls_per_account=1000)
    accounts, card, pin = _world(settings, target.client)
    kept: set[str] = set()
    lock = threading.Lock()
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            client = redis_client.connect(settings)
            authorizer = Authorizer(settings, client)
            debiter = Debiter(client, settings=settings)
            rng = random.Random(worker)
            for i in range(40):
                by_card = rng.random() < 0.5
                answer = (
                    authorizer.authorize(card=card, pin=pin, callee=MOBILE, max_seconds=30)
                    if by_card
                    else authorizer.authorize(account="C1", callee=MOBILE, max_seconds=30)
                )
                if not answer.allowed:
                    continue
                roll = rng.random()
                if roll < 0.25:
                    authorizer.release(answer.auth_id)
                elif roll < 0.5:
                    half = {level: amount // 2 for level, amount in answer.reserved.items()}
                    debiter.apply(
                        _batch((worker, i), card if by_card else "", half["customer"],
                               half["reseller"], answer.auth_id)
                    )  # fmt: skip
                else:
                    if roll < 0.75:
                        assert authorizer.renew(answer.auth_id).allowed
                    with lock:
                        kept.add(answer.auth_id)
            client.close()
        except BaseException as error:  # reported by the test thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    client = target.client
    assert set(_entries(client, "r", "R1")) == kept
    balances = {
        "r": accounts.get_reseller("R1").credit,
        "c": accounts.get_customer("C1").balance,
        "k": accounts.get_card(card).balance,
    }
    for level, account in _levels(card):
        held, _ = _check_totals(client, level, account)
        assert held <= balances[level]  # never promised more than there is


def test_expired_reservations_leave_the_totals_and_free_the_credit_exactly(
    target: Target,  # noqa: F811
) -> None:
    # a 3 s lifetime with a 1 s ring allowance: calls of at most 2 s
    settings = target.settings.replace(
        reservation_ttl_s=3, reservation_ring_s=1, max_calls_per_account=2
    )
    # two 2 s calls hold 2 x 3,334 micro-units of the 7,000; 332 would pay no second
    _world(settings, target.client, balance="0.007")
    authorizer = Authorizer(settings, target.client)
    first = authorizer.authorize(account="C1", callee=MOBILE)
    second = authorizer.authorize(account="C1", callee=MOBILE)
    assert first.allowed
    assert second.allowed
    assert authorizer.authorize(account="C1", callee=MOBILE).reason.value == "too_many_calls"
    time.sleep(4.2)  # both expired (server time); nothing has touched the account since
    # Python subtracts the expired entries before the script drops them: the balance and both
    # call slots are free again (counted as held, 332 micro-units would pay no second)
    again = authorizer.authorize(account="C1", callee=MOBILE)
    assert again.allowed, again.message
    assert again.customer_seconds == 2  # the cap
    held, calls = _check_totals(target.client, "c", "C1")
    assert (held, calls) == (again.reserved["customer"], 1)
    ttl = target.client.ttl(keys.reservation_totals("R1", "c", "C1"))
    assert 60 <= ttl <= 63  # the newest reservation's 3 s and a minute


def test_reservations_written_before_the_totals_are_summed_on_first_touch(
    target: Target,  # noqa: F811
) -> None:
    """A reservation of the former layout (the entries hash alone) still holds its credit:
    the first script that touches the account indexes and sums it."""
    accounts, card, _ = _world(target.settings, target.client)
    until = int(time.time()) + 3600
    for level, account in _levels(card):
        target.client.hset(keys.reservations("R1", level, account), "old1", f"4500000:{until}")
    authorizer = Authorizer(target.settings, target.client)
    answer = authorizer.authorize(account="C1", callee=MOBILE, max_seconds=7000)
    assert answer.allowed
    # 10.00 less the old 4.50 leaves 5.50: 3,300 s at 0.10 a minute
    assert answer.customer_seconds == 3300
    for level, account in _levels(card)[:2]:  # the card's entries wait for a script on it
        _check_totals(target.client, level, account)
    Debiter(target.client, settings=target.settings).apply(
        _batch((0, 1), card, 1_000_000, 400_000, "old1")
    )
    assert set(_entries(target.client, "c", "C1")) == {answer.auth_id}
    for level, account in _levels(card):
        _, calls = _check_totals(target.client, level, account)
        assert calls == (0 if level == "k" else 1)
    assert accounts.get_customer("C1").balance == 9_000_000


def test_a_reservation_costs_the_same_with_two_thousand_calls_up(
    settings: Settings, redis: Any
) -> None:
    """reserve.lua read every live reservation of the reseller, customer and card on each call
    (HGETALL, then a pattern match per entry): with 2,000 calls up that took about 40 times
    as long as with a few. Redis' own time per EVALSHA (INFO commandstats) may now grow by
    little: the bound is loose for a loaded machine."""
    ours = settings.replace(max_calls_per_account=5000)
    _world(ours, redis, balance="100000")
    authorizer = Authorizer(ours, redis)

    def usec_per_reservation(count: int) -> float:
        redis.config_resetstat()
        for _ in range(count):
            assert authorizer.authorize(account="C1", callee=MOBILE, max_seconds=60).allowed
        return float(redis.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])

    few = usec_per_reservation(100)
    usec_per_reservation(1900)
    many = usec_per_reservation(100)
    assert redis.hget(keys.reservation_totals("R1", "c", "C1"), "calls") == b"2100"
    assert many < 3 * few + 20, (few, many)
