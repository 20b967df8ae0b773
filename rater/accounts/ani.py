"""Caller numbers (ANI) that use a card without its PIN, while the card holds at least its
reseller's ANI threshold (docs/DESIGN.md section 1, tip 1)."""

from __future__ import annotations

import re

from rater.accounts.core import AccountStore
from rater.accounts.model import Card
from rater.errors import AccountError, NotFound
from rater.redis import keys


def normalise_ani(ani: str) -> str:
    """Caller numbers as E.164 digits: '+31 20-123' -> '3120123', '0031...' -> '31...'."""
    digits = re.sub(r"[\s\-().]", "", ani)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not 3 <= len(digits) <= 20:
        raise AccountError(f"caller number {ani!r} is not a phone number")
    return digits


def ani_owner_key(digits: str) -> str:
    """Caller number -> the card that owns it, permanently (uniqueness)."""
    return f"aniown:{digits}"


class AniNumbers:
    """Add and remove caller numbers; find the card answering for one."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def add(self, number: str, ani: str) -> Card:
        """Let calls from `ani` use the card without a PIN (while it holds >= the threshold)."""
        store = self.store
        digits = normalise_ani(ani)
        card = store.card(number)
        if not store.redis.set(ani_owner_key(digits), number, nx=True):
            owner = store.redis.get(ani_owner_key(digits))
            if owner is not None and owner.decode() != number:
                raise AccountError(
                    f"caller number {digits} already belongs to card {owner.decode()}"
                )
        store.redis.sadd(keys.card_anis(card.reseller_id, number), digits)
        if card.ani_on:
            store.redis.set(keys.ani_index(digits), number)
        store.bump()
        return store.card(number)

    def remove(self, number: str, ani: str) -> Card:
        store = self.store
        digits = normalise_ani(ani)
        card = store.card(number)
        if not store.redis.srem(keys.card_anis(card.reseller_id, number), digits):
            raise NotFound(f"caller number {digits} is not on card {number}")
        store.redis.delete(keys.ani_index(digits), ani_owner_key(digits))
        store.bump()
        return store.card(number)

    def card_of(self, ani: str) -> str | None:
        """The card answering for a caller number, or None (unknown, or card under threshold)."""
        raw = self.store.redis.get(keys.ani_index(normalise_ani(ani)))
        return raw.decode() if raw is not None else None

    def owner_of(self, ani: str) -> str | None:
        """The card a caller number belongs to, whether ANI recognition answers or not."""
        raw = self.store.redis.get(ani_owner_key(normalise_ani(ani)))
        return raw.decode() if raw is not None else None
