"""`Accounts`: the account API in one object, for callers that want all of it.

Each concern lives in its own module of rater/accounts/ on one shared AccountStore (core.py):
resellers.py, customers.py, batches.py (card batches), card_admin.py (one card), ani.py
(caller numbers), pins.py (PIN checks), balances.py (credits and corrections with the
coverage rule), reservations.py (credit held by authorized calls). This facade only forwards;
the parts are also reachable as attributes (`accounts.resellers`, `accounts.pins`, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rater.accounts.ani import AniNumbers, normalise_ani
from rater.accounts.balances import Balances
from rater.accounts.batches import CARD_CHUNK, MAX_BATCH, CardBatches
from rater.accounts.blocks import set_block
from rater.accounts.card_admin import CardAdmin
from rater.accounts.core import AccountStore, Amount
from rater.accounts.customers import Customers
from rater.accounts.ledger import LedgerWriter
from rater.accounts.model import (
    Card,
    CardBatch,
    Coverage,
    Customer,
    CustomerKind,
    Level,
    Reseller,
    Standing,
)
from rater.accounts.pins import PinCheck, Pins
from rater.accounts.resellers import Resellers
from rater.accounts.reservations import Hold, Reservations
from rater.redis.connection import RedisLike
from rater.settings import Settings


class Accounts:
    """Resellers, customers, cards, ANI, PINs and balance changes; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        redis_client: RedisLike | None = None,
        ledger: LedgerWriter | None = None,
        *,
        actor: str = "",
    ) -> None:
        self.store = AccountStore(settings, redis_client, ledger, actor=actor)
        self.balances = Balances(self.store)
        self.customers = Customers(self.store, self.balances)
        self.cards = CardAdmin(self.store, self.balances)
        self.resellers = Resellers(self.store, self.balances, self.customers, self.cards)
        self.batches = CardBatches(self.store, self.balances)
        self.anis = AniNumbers(self.store)
        self.pins = Pins(self.store)
        self.reservations = Reservations(self.store)

    @property
    def settings(self) -> Settings:
        return self.store.settings

    @property
    def redis(self) -> Any:
        return self.store.redis

    @property
    def ledger(self) -> LedgerWriter:
        return self.store.ledger

    @property
    def actor(self) -> str:
        return self.store.actor

    # ---------------------------------------------------------------- resellers
    def create_reseller(
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
        return self.resellers.create(
            reseller_id, name, credit=credit, buy_tariff=buy_tariff, currency=currency,
            ani_threshold=ani_threshold, timezone=timezone,
        )  # fmt: skip

    def credit_reseller(self, reseller_id: str, amount: Amount, reason: str) -> Reseller:
        return self.resellers.credit(reseller_id, amount, reason)

    def get_reseller(self, reseller_id: str) -> Reseller:
        return self.store.reseller(reseller_id)

    def list_resellers(self) -> list[Reseller]:
        return self.resellers.list()

    def coverage(self, reseller_id: str) -> Coverage:
        return self.resellers.coverage(reseller_id)

    def standing(self, reseller_id: str, named: int = 50) -> Standing:
        """Credit, coverage without the cards, and the customers at or below zero: one call."""
        return self.resellers.standing(reseller_id, named)

    # ---------------------------------------------------------------- customers
    def create_customer(
        self,
        customer_id: str,
        name: str,
        *,
        reseller_id: str,
        tariff: str,
        kind: CustomerKind | str = CustomerKind.NORMAL,
        balance: Amount = "0",
    ) -> Customer:
        return self.customers.create(
            customer_id, name, reseller_id=reseller_id, tariff=tariff, kind=kind, balance=balance
        )

    def topup_customer(self, customer_id: str, amount: Amount, reason: str) -> Customer:
        return self.customers.topup(customer_id, amount, reason)

    def get_customer(self, customer_id: str) -> Customer:
        return self.store.customer(customer_id)

    def list_customers(self, reseller_id: str) -> list[Customer]:
        return self.customers.list(reseller_id)

    # ---------------------------------------------------------------- cards
    def create_cards(
        self,
        customer_id: str,
        *,
        count: int,
        value: Amount,
        disposable: bool = False,
        expires: datetime | None = None,
        batch_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> CardBatch:
        return self.batches.create(
            customer_id, count=count, value=value, disposable=disposable, expires=expires,
            batch_id=batch_id, progress=progress,
        )  # fmt: skip

    def topup_card(self, card_number: str, amount: Amount, reason: str) -> Card:
        return self.cards.topup(card_number, amount, reason)

    def get_card(self, number: str) -> Card:
        return self.store.card(number)

    def list_cards(
        self, customer_id: str | None = None, *, batch_id: str | None = None
    ) -> list[Card]:
        return self.cards.list(customer_id, batch_id=batch_id)

    def block_card(self, number: str) -> Card:
        return self.cards.block(number)

    def unblock_card(self, number: str) -> Card:
        return self.cards.unblock(number)

    def block(self, level: Level | str, account_id: str) -> None:
        set_block(self.store, Level(level), account_id, True)

    def unblock(self, level: Level | str, account_id: str) -> None:
        set_block(self.store, Level(level), account_id, False)

    def verify_pin(self, number: str, pin: str) -> PinCheck:
        return self.pins.verify(number, pin)

    # ---------------------------------------------------------------- ANI
    def add_ani(self, number: str, ani: str) -> Card:
        return self.anis.add(number, ani)

    def remove_ani(self, number: str, ani: str) -> Card:
        return self.anis.remove(number, ani)

    def card_of_ani(self, ani: str) -> str | None:
        return self.anis.card_of(ani)

    def holds(self, level: Level | str, account_id: str) -> list[Hold]:
        """Credit held by authorized calls on one reseller, customer or card."""
        return self.reservations.holds(level, account_id)

    # ---------------------------------------------------------------- adjustments
    def adjust(self, level: Level | str, account_id: str, amount: Amount, reason: str) -> int:
        """A signed correction to one balance; returns the new balance (micro-units)."""
        return self.balances.adjust(level, account_id, amount, reason)


__all__ = ["CARD_CHUNK", "MAX_BATCH", "Accounts", "PinCheck", "normalise_ani"]
