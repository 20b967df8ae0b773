"""adjust.lua applies each ledger entry id once (what lets a repair after a Redis loss apply a
credit again without applying it twice), and no balance change leaves +-MAX_AMOUNT."""

from __future__ import annotations

import pytest

from rater.accounts.api import Accounts
from rater.accounts.balances import applied_record_args
from rater.accounts.ledger import LedgerEntry
from rater.errors import AccountError
from rater.redis import keys
from rater.redis import topology as topologies
from rater.redis.codes import AdjustCode
from rater.redis.connection import RedisLike
from rater.redis.contract import MAX_AMOUNT
from rater.settings import Settings

pytestmark = pytest.mark.integration


def _adjust(settings: Settings, redis: RedisLike, entry: LedgerEntry) -> tuple[AdjustCode, int]:
    topology = topologies.topology_of(redis)
    raw = topology.run(
        topology.script("adjust"),
        topologies.route(entry.reseller),
        ["c", entry.reseller, entry.customer, entry.amount, 0, 0,
         "1" if topology.global_keys else "0", *applied_record_args(entry, 3600)],
    )  # fmt: skip
    return AdjustCode(int(raw[0])), int(raw[1])


def test_one_entry_id_is_applied_once(settings: Settings, redis: RedisLike) -> None:
    accounts = Accounts(settings, redis, actor="test")
    accounts.create_reseller("r1", "R", credit="100", buy_tariff="none")
    accounts.create_customer("c1", "C", reseller_id="r1", tariff="none", balance="10")
    entry = LedgerEntry(
        level="customer", reseller="r1", customer="c1", card="", kind="topup",
        amount=2_000_000, currency="EUR", reason="paid",
    )  # fmt: skip
    assert _adjust(settings, redis, entry) == (AdjustCode.APPLIED, 12_000_000)
    assert _adjust(settings, redis, entry) == (AdjustCode.ALREADY_APPLIED, 12_000_000)
    day = applied_record_args(entry, 0)[1]
    assert redis.hexists(keys.ledger_applied("r1", int(str(day))), entry.entry_id)
    assert 0 < redis.ttl(keys.ledger_applied("r1", int(str(day)))) <= 86_400 + 3600


def test_no_change_leaves_the_exact_range(settings: Settings, redis: RedisLike) -> None:
    accounts = Accounts(settings, redis, actor="test")
    with pytest.raises(AccountError, match="beyond the largest amount"):
        accounts.create_reseller("r2", "R", credit=MAX_AMOUNT + 1, buy_tariff="none")
    accounts.create_reseller("r2", "R", credit=MAX_AMOUNT - 5, buy_tariff="none")
    with pytest.raises(AccountError, match="would leave"):
        accounts.credit_reseller("r2", 6, reason="one too many")
    accounts.credit_reseller("r2", 5, reason="up to the bound")
    assert accounts.get_reseller("r2").credit == MAX_AMOUNT
