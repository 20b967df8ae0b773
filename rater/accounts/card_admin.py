"""One card at a time: read, list, top up, block and unblock (docs/DESIGN.md section 1).

A card's balance is a spending limit on its customer's money; disposable cards are never
topped up. Creating cards is rater/accounts/batches.py.
"""

from __future__ import annotations

import builtins

from rater.accounts.balances import Balances
from rater.accounts.blocks import set_block
from rater.accounts.core import AccountStore, Amount, amount_micro, required_reason
from rater.accounts.model import Card, Level
from rater.errors import AccountError, DisposableCardError, NotFound
from rater.money import from_micro
from rater.redis import keys


class CardAdmin:
    """Cards after their creation; see the module doc."""

    def __init__(self, store: AccountStore, balances: Balances) -> None:
        self.store = store
        self.balances = balances

    def get(self, number: str) -> Card:
        return self.store.card(number)

    def list(self, customer_id: str | None = None, *, batch_id: str | None = None) -> list[Card]:
        """The cards of a customer, or of a batch, by number."""
        reseller_id, numbers = self.numbers(customer_id, batch_id=batch_id)
        return self.get_many(reseller_id, numbers)

    def numbers(
        self, customer_id: str | None = None, *, batch_id: str | None = None
    ) -> tuple[str, builtins.list[str]]:
        """(reseller id, the card numbers in order) of a customer or a batch: a page of a
        100,000-card batch reads only its cards (get_many), not all of them."""
        redis = self.store.redis
        if batch_id is not None:
            owner = redis.get(keys.batch_index(batch_id))
            if owner is None:
                raise NotFound(f"batch {batch_id!r} does not exist")
            reseller_id = owner.decode().split(":", 1)[0]
            members = redis.smembers(keys.batch(reseller_id, batch_id))
        elif customer_id is not None:
            reseller_id = self.store.reseller_of_customer(customer_id)
            members = redis.smembers(keys.cards_of(reseller_id, customer_id))
        else:
            raise AccountError("list_cards needs a customer id or a batch id")
        return reseller_id, sorted(m.decode() for m in members)

    def get_many(self, reseller_id: str, numbers: builtins.list[str]) -> builtins.list[Card]:
        """These cards of one reseller (those that exist), in the order given."""
        redis = self.store.redis
        pipe = redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(keys.card(reseller_id, number))
            pipe.smembers(keys.card_anis(reseller_id, number))
        raw = pipe.execute()
        cards = []
        for i, number in enumerate(numbers):
            fields, anis = raw[2 * i], raw[2 * i + 1]
            if fields:
                cards.append(
                    Card.from_hash(number, fields, tuple(sorted(a.decode() for a in anis)))
                )
        return cards

    def topup(self, number: str, amount: Amount, reason: str) -> Card:
        """Raise a normal card's limit; DisposableCardError for a disposable card."""
        micro = amount_micro(amount, "amount")
        if micro <= 0:
            raise AccountError(f"a top-up must be positive, not {from_micro(micro)}")
        card = self.get(number)
        if card.disposable:
            raise DisposableCardError(
                f"card {number} is disposable: it is never topped up; issue a new card"
            )
        self.balances.change(
            Level.CARD, number, micro, required_reason(reason), "topup", refuse_disposable=True
        )
        return self.get(number)

    def block(self, number: str) -> Card:
        set_block(self.store, Level.CARD, number, True)
        return self.get(number)

    def unblock(self, number: str) -> Card:
        """Lift an operator's block and a block or lock after wrong PINs (their count too)."""
        reseller_id, _ = self.store.owner_of_card(number)
        set_block(self.store, Level.CARD, number, False)
        self.store.redis.hset(
            keys.card(reseller_id, number),
            mapping={"pinblk": 0, "pinfail": 0, "pinlock": 0},
        )
        return self.get(number)
