"""Resellers: creation, credit, and whether the credit covers what they issued
(docs/DESIGN.md section 1)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from rater.accounts.balances import Balances
from rater.accounts.card_admin import CardAdmin
from rater.accounts.core import AccountStore, Amount, amount_micro, required_reason
from rater.accounts.customers import Customers
from rater.accounts.ledger import LedgerEntry
from rater.accounts.model import Coverage, CustomerKind, Level, Reseller, Standing
from rater.accounts.tariff_check import check_tariff
from rater.errors import AccountError, NotFound
from rater.redis import keys

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Resellers:
    """Create resellers, add or correct their credit, compute coverage."""

    def __init__(
        self, store: AccountStore, balances: Balances, customers: Customers, cards: CardAdmin
    ) -> None:
        self.store = store
        self.balances = balances
        self.customers = customers
        self.cards = cards

    def create(
        self,
        reseller_id: str,
        name: str,
        *,
        credit: Amount,
        buy_tariff: str,
        currency: str = "EUR",
        ani_threshold: Amount = "1.00",
        timezone: str = "UTC",
    ) -> Reseller:
        store = self.store
        keys.check_id("reseller", reseller_id)
        if not _CURRENCY.match(currency):
            raise AccountError(f"currency {currency!r} is not an ISO 4217 code like EUR")
        credit_micro = amount_micro(credit, "credit")
        threshold = amount_micro(ani_threshold, "ani_threshold")
        if threshold < 0:
            raise AccountError("the ANI threshold cannot be negative")
        check_tariff(store, buy_tariff, currency)
        key = keys.reseller(reseller_id)
        if not store.redis.hsetnx(key, "name", name):
            raise AccountError(f"reseller {reseller_id!r} already exists")
        store.redis.hset(
            key,
            mapping={
                "bal": credit_micro,
                "cur": currency,
                "buy": buy_tariff,
                "ani": threshold,
                "tz": timezone,
                "st": "active" if credit_micro >= 0 else "negative",
                "blk": 0,
                "created": int(datetime.now(UTC).timestamp()),
            },
        )
        store.redis.sadd(keys.RESELLERS, reseller_id)
        store.bump()
        if credit_micro:
            entry = LedgerEntry(
                level=Level.RESELLER.value, reseller=reseller_id, customer="", card="",
                kind="initial", amount=credit_micro, currency=currency, reason="initial credit",
                actor=store.actor,
            )  # fmt: skip
            store.ledger.write([entry])
        return store.reseller(reseller_id)

    def credit(self, reseller_id: str, amount: Amount, reason: str) -> Reseller:
        """Add credit (or correct it downwards, never below what the customers hold)."""
        micro = amount_micro(amount, "amount")
        self.balances.change(Level.RESELLER, reseller_id, micro, required_reason(reason), "credit")
        return self.store.reseller(reseller_id)

    def list(self) -> list[Reseller]:
        ids = sorted(m.decode() for m in self.store.redis.smembers(keys.RESELLERS))
        return [self.store.reseller(i) for i in ids]

    def standing(self, reseller_id: str, named: int = 50) -> Standing:
        """Credit, coverage (without the cards) and the `named` lowest customers at or below
        zero, in one read-only script call (rater/redis/lua/standing.lua)."""
        store = self.store
        reseller = store.reseller(reseller_id)
        raw = store.script("standing")(store.route(reseller_id), [reseller_id, named])
        if int(raw[0]) == 0:
            raise NotFound(f"reseller {reseller_id!r} does not exist")
        credit, total, customers, stopped, listed = raw[1:]
        reseller = replace(reseller, credit=int(credit))  # read with the sum, in one call
        pairs = [(listed[i].decode(), int(listed[i + 1])) for i in range(0, len(listed), 2)]
        return Standing(
            reseller=reseller, coverage=Coverage.of_total(reseller, int(total), 0),
            customers=int(customers), stopped=int(stopped), lowest=tuple(pairs),
        )  # fmt: skip

    def coverage(self, reseller_id: str) -> Coverage:
        """Credit against the customers' positive balances (normal cards' value shown only)."""
        reseller = self.store.reseller(reseller_id)
        customers = self.customers.list(reseller_id)
        cards_total = 0
        for customer in customers:
            if customer.kind is CustomerKind.NORMAL:
                on_cards = self.cards.list(customer.customer_id)
                cards_total += sum(max(k.balance, 0) for k in on_cards)
        return Coverage.of(reseller, customers, cards_total)
