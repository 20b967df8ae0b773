"""An operator's blocks: refused by authorization; calls already made are still debited
(docs/REDIS_KEYS.md, "States")."""

from __future__ import annotations

from rater.accounts.core import AccountStore
from rater.accounts.model import Level
from rater.errors import NotFound
from rater.redis import keys


def set_block(store: AccountStore, level: Level, account_id: str, blocked: bool) -> None:
    """Set or lift the `blk` flag of a reseller, customer or card."""
    if level is Level.RESELLER:
        key = keys.reseller(store.reseller(account_id).reseller_id)
    elif level is Level.CUSTOMER:
        key = keys.customer(store.reseller_of_customer(account_id), account_id)
    else:
        key = keys.card(store.owner_of_card(account_id)[0], account_id)
    if not store.redis.exists(key):
        raise NotFound(f"{level.value} {account_id!r} does not exist")
    store.redis.hset(key, "blk", 1 if blocked else 0)
    store.bump()
