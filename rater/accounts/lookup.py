"""Per-CDR account look-up for the pipeline: account / card -> customer, reseller, tariffs.

Account and card names come from CDRs, so they reach keys only in key form (rater/redis/keys.py
`name`): an account named `generation` or `{r:R1}` is looked up under a key of its own, in the
slot its own text hashes to.

Answers are cached in a dict per process. Every Accounts change that affects them bumps the
Redis counter `accounts:generation`; `resolve` reads it once per batch and drops the cache when
it moved, so a new customer or card is seen by the next batch without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from rater.reasons import Kind, Reason, quote
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.redis.topology import Topology, topology_of


@dataclass(frozen=True)
class _Customer:
    reseller_id: str
    sell_tariff: str
    buy_tariff: str
    currency: str


@dataclass(frozen=True)
class Resolved:
    """One entry per CDR; unknown ones have known False, a reason and '' elsewhere."""

    known: npt.NDArray[np.bool_]
    reason: list[Reason | None]
    customer_id: list[str]
    card_number: list[str]  # '' when the CDR names no card
    reseller_id: list[str]
    sell_tariff: list[str]  # the customer's tariff table name
    buy_tariff: list[str]  # the reseller's wholesale tariff table name
    currency: list[str]


class AccountLookup:
    """Resolves CDR accounts and cards; see the module doc for caching."""

    def __init__(self, redis_client: RedisLike | Topology) -> None:
        self.topology = (
            redis_client if isinstance(redis_client, Topology) else topology_of(redis_client)
        )
        self.redis: Any = self.topology.client  # bytes replies (redis-py's stubs: bytes | str)
        self._generation: bytes | None = None
        self._customers: dict[str, _Customer | None] = {}
        self._cards: dict[str, str | None] = {}  # card number -> customer id

    def resolve(self, accounts: Sequence[str], cards: Sequence[str]) -> Resolved:
        if len(accounts) != len(cards):
            raise ValueError(f"{len(accounts)} accounts but {len(cards)} cards")
        generation = self.redis.get(keys.GENERATION)
        if generation != self._generation:
            self._customers.clear()
            self._cards.clear()
            self._generation = generation
        self._fetch_cards({c for c in cards if c and c not in self._cards})
        wanted = set(accounts) | {self._cards.get(c) or "" for c in cards if c}
        self._fetch_customers({a for a in wanted if a and a not in self._customers})

        n = len(accounts)
        out = Resolved(np.zeros(n, dtype=np.bool_), [], [], [], [], [], [], [])
        for i, (account, card) in enumerate(zip(accounts, cards, strict=True)):
            reason: Reason | None = None
            customer_id = account
            if card:
                owner = self._cards.get(card)
                if owner is None:
                    reason = Reason(Kind.UNKNOWN_CARD, quote(card))
                elif account and owner != account:
                    reason = Reason(
                        Kind.FOREIGN_CARD,
                        f"card {quote(card)} of customer {quote(owner)}, not {quote(account)}",
                    )
                else:
                    customer_id = owner
            info = self._customers.get(customer_id) if customer_id else None
            if reason is None and info is None:
                missing = Reason(Kind.UNKNOWN_ACCOUNT, quote(account))
                reason = missing if account else Reason(Kind.NO_ACCOUNT)
            if reason is not None or info is None:
                out.reason.append(reason)
                for column in (
                    out.customer_id,
                    out.card_number,
                    out.reseller_id,
                    out.sell_tariff,
                    out.buy_tariff,
                    out.currency,
                ):
                    column.append("")
                continue
            out.known[i] = True
            out.reason.append(None)
            out.customer_id.append(customer_id)
            out.card_number.append(card)
            out.reseller_id.append(info.reseller_id)
            out.sell_tariff.append(info.sell_tariff)
            out.buy_tariff.append(info.buy_tariff)
            out.currency.append(info.currency)
        return out

    def _fetch_cards(self, numbers: set[str]) -> None:
        if not numbers:
            return
        ordered = sorted(numbers)
        owners = self.topology.mget([keys.card_index(n) for n in ordered])
        for number, owner in zip(ordered, owners, strict=True):
            self._cards[number] = owner.decode().split(":", 1)[1] if owner is not None else None

    def _fetch_customers(self, customer_ids: set[str]) -> None:
        if not customer_ids:
            return
        ordered = sorted(customer_ids)
        resellers = self.topology.mget([keys.account_index(c) for c in ordered])
        pipe = self.redis.pipeline(transaction=False)
        found: list[tuple[str, str]] = []
        for customer_id, raw in zip(ordered, resellers, strict=True):
            if raw is None:
                self._customers[customer_id] = None
                continue
            reseller_id = raw.decode()
            found.append((customer_id, reseller_id))
            pipe.hget(keys.customer(reseller_id, customer_id), "tariff")
            pipe.hmget(keys.reseller(reseller_id), ["buy", "cur"])
        replies = pipe.execute()
        for j, (customer_id, reseller_id) in enumerate(found):
            tariff, (buy, currency) = replies[2 * j], replies[2 * j + 1]
            if tariff is None or buy is None:
                self._customers[customer_id] = None
                continue
            self._customers[customer_id] = _Customer(
                reseller_id, tariff.decode(), buy.decode(), (currency or b"EUR").decode()
            )
