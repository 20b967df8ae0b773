"""Customers: SIP accounts and card-batch customers under a reseller (docs/DESIGN.md section 1)."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime

from rater.accounts.balances import Balances
from rater.accounts.core import AccountStore, Amount, amount_micro, required_reason
from rater.accounts.model import Customer, CustomerKind, Level
from rater.accounts.tariff_check import check_customer_tariff
from rater.errors import AccountError, CoverageError
from rater.money import from_micro
from rater.redis import keys


class Customers:
    """Create customers, top them up, read them."""

    def __init__(self, store: AccountStore, balances: Balances) -> None:
        self.store = store
        self.balances = balances

    def create(
        self,
        customer_id: str,
        name: str,
        *,
        reseller_id: str,
        tariff: str,
        kind: CustomerKind | str = CustomerKind.NORMAL,
        balance: Amount = "0",
    ) -> Customer:
        store = self.store
        keys.check_id("customer", customer_id)
        kind = CustomerKind(kind)
        reseller = store.reseller(reseller_id)
        check_customer_tariff(store, tariff, reseller)
        opening = amount_micro(balance, "balance")
        if opening < 0:
            raise AccountError("an opening balance cannot be negative")
        if not store.redis.set(keys.account_index(customer_id), reseller_id, nx=True):
            raise AccountError(f"customer {customer_id!r} already exists")
        key = keys.customer(reseller_id, customer_id)
        store.redis.hset(
            key,
            mapping={
                "name": name,
                "res": reseller_id,
                "bal": 0,
                "tariff": tariff,
                "kind": kind.value,
                "st": "active",
                "blk": 0,
                "created": int(datetime.now(UTC).timestamp()),
            },
        )
        store.redis.sadd(keys.customers_of(reseller_id), customer_id)
        if opening:
            try:
                self.balances.change(
                    Level.CUSTOMER, customer_id, opening, "opening balance", "topup"
                )
            except CoverageError:
                # nothing of a refused customer stays behind
                store.redis.srem(keys.customers_of(reseller_id), customer_id)
                store.redis.delete(key, keys.account_index(customer_id))
                raise
        store.bump()
        return store.customer(customer_id)

    def topup(self, customer_id: str, amount: Amount, reason: str) -> Customer:
        """Issue customer credit; CoverageError naming the shortfall when not covered."""
        micro = amount_micro(amount, "amount")
        if micro <= 0:
            raise AccountError(f"a top-up must be positive, not {from_micro(micro)}")
        self.balances.change(Level.CUSTOMER, customer_id, micro, required_reason(reason), "topup")
        return self.store.customer(customer_id)

    def list(self, reseller_id: str) -> list[Customer]:
        return self.get_many(reseller_id, self.ids(reseller_id))

    def ids(self, reseller_id: str) -> builtins.list[str]:
        """The reseller's customer ids, sorted (a page of 10,000 customers reads only its own
        hashes with get_many)."""
        members = self.store.redis.smembers(keys.customers_of(reseller_id))
        return sorted(m.decode() for m in members)

    def names(self, reseller_id: str, ids: builtins.list[str]) -> builtins.list[str]:
        """The display names of these customers, in order ('' for one that is gone)."""
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hget(keys.customer(reseller_id, cid), "name")
        return [(raw or b"").decode() for raw in pipe.execute()]

    def get_many(self, reseller_id: str, ids: builtins.list[str]) -> builtins.list[Customer]:
        """These customers of one reseller (those that exist), in the order given."""
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(keys.customer(reseller_id, cid))
        return [Customer.from_hash(cid, f) for cid, f in zip(ids, pipe.execute(), strict=True) if f]
