"""Customers: SIP accounts and card-batch customers under a reseller (docs/DESIGN.md section 1).

Search by id or name (the portal's customer list) reads an index, `{r:R}:customers:search`: a
set with one member per customer, '<id lowered>\x1f<name lowered>\x1f<id>', matched inside
Redis by SSCAN with a glob pattern, so a search costs one or two commands and sends back only
the matches (docs/PORTAL.md, "Speed": one HGET per customer took 232 ms p95 for 10,000).
Ids and names hold no \x1f (ids are id characters; names lose their control characters in the
index), so a query cannot match across two fields.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime

from rater.accounts.balances import Balances
from rater.accounts.core import AccountStore, Amount, amount_micro, required_reason
from rater.accounts.model import Customer, CustomerKind, Level
from rater.accounts.tariff_check import check_customer_tariff
from rater.errors import AccountError, CoverageError
from rater.money import from_micro
from rater.redis import keys

#: the index's field separator (a control character: never in an id, removed from names)
_SEP = "\x1f"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: glob characters of SSCAN MATCH, taken literally in a query
_GLOB = re.compile(r"([\\*?\[\]])")
#: SSCAN's COUNT: buckets looked at per call (10,000 customers: one or two calls)
_SCAN_COUNT = 10_000


def _search_member(customer_id: str, name: str) -> str:
    return f"{customer_id.lower()}{_SEP}{_CONTROL.sub(' ', name).lower()}{_SEP}{customer_id}"


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
        store.redis.sadd(keys.customer_search(reseller_id), _search_member(customer_id, name))
        if opening:
            try:
                self.balances.change(
                    Level.CUSTOMER, customer_id, opening, "opening balance", "topup"
                )
            except CoverageError:
                # nothing of a refused customer stays behind
                store.redis.srem(keys.customers_of(reseller_id), customer_id)
                store.redis.srem(
                    keys.customer_search(reseller_id), _search_member(customer_id, name)
                )
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

    def search(self, reseller_id: str, query: str) -> builtins.list[str]:
        """The ids, sorted, of the reseller's customers whose id or name holds `query` (any
        case). The index is built here when it is missing or counts other than the customers
        set (customers written by an earlier version): one HGET per customer, once."""
        redis = self.store.redis
        index = keys.customer_search(reseller_id)
        pipe = redis.pipeline(transaction=False)
        pipe.scard(index)
        pipe.scard(keys.customers_of(reseller_id))
        indexed, customers = pipe.execute()
        if indexed != customers:
            self._index(reseller_id)
        needle = _GLOB.sub(r"\\\1", _CONTROL.sub(" ", query).lower())
        found: set[str] = set()
        cursor = 0
        while True:
            cursor, members = redis.sscan(index, cursor, match=f"*{needle}*", count=_SCAN_COUNT)
            for member in members:
                found.add(member.decode().rsplit(_SEP, 1)[1])
            if cursor == 0:
                break
        return sorted(found)

    def _index(self, reseller_id: str) -> None:
        ids = self.ids(reseller_id)
        names = self.names(reseller_id, ids)
        index = keys.customer_search(reseller_id)
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.delete(index)
        for at in range(0, len(ids), 2_000):
            members = [
                _search_member(c, n)
                for c, n in zip(ids[at : at + 2_000], names[at : at + 2_000], strict=True)
            ]
            pipe.sadd(index, *members)
        pipe.execute()

    def get_many(self, reseller_id: str, ids: builtins.list[str]) -> builtins.list[Customer]:
        """These customers of one reseller (those that exist), in the order given."""
        pipe = self.store.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(keys.customer(reseller_id, cid))
        return [Customer.from_hash(cid, f) for cid, f in zip(ids, pipe.execute(), strict=True) if f]
