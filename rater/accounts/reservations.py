"""Reservations of authorized calls in Redis (rater/redis/lua/reserve.lua): reserve, renew,
release, and the holds shown by `card show`, `customer show` and `reseller show`.

A reservation's keys are the reseller's (docs/REDIS_KEYS.md); the global key
`auth:<auth_id>` names that reseller, so `renew` and `release` need nothing but the auth_id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rater.accounts.core import AccountStore
from rater.accounts.ids import check_auth_id
from rater.accounts.model import Level
from rater.accounts.replies import ReserveCode, reply
from rater.redis import keys


def auth_index(auth_id: str) -> str:
    """auth_id -> the reseller whose keys hold the reservation (global; expires with it)."""
    return keys.auth_index(auth_id)


def auth_record(reseller_id: str, auth_id: str) -> str:
    """The reservation itself: customer, card, number, start, expiry, seconds, amounts."""
    return keys.auth_record(reseller_id, auth_id)


@dataclass(frozen=True)
class Hold:
    """One live reservation on one account."""

    auth_id: str
    amount: int  # micro-units
    expires_at: datetime

    def as_dict(self) -> dict[str, object]:
        from rater.money import display  # noqa: PLC0415 - only for output

        return {
            "auth_id": self.auth_id,
            "amount": display(self.amount),
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class Reserved:
    """The record of a live reservation, as renew reads it."""

    reseller_id: str
    customer_id: str
    card_number: str
    via_ani: bool
    number: str
    rated_at: datetime
    start: int  # epoch s (server) the reservation was made
    seconds: int  # granted so far
    amounts: dict[str, int]  # level code (r, c, k) -> micro-units held


class Reservations:
    """The script calls and reads of reservations; see the module doc."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def reserve(self, reseller_id: str, args: Sequence[Any]) -> tuple[ReserveCode, list[Any]]:
        """reserve.lua 'reserve' (see its header for `args`); on success the auth_id's index."""
        store = self.store
        code, details = reply(
            ReserveCode,
            store.script("reserve")(store.route(reseller_id), ["reserve", reseller_id, *args]),
        )
        if code is ReserveCode.DONE:
            auth_id, ttl = str(args[2]), int(args[3])
            store.redis.set(auth_index(auth_id), reseller_id, ex=ttl + 60)
        return code, details

    def renew(self, reseller_id: str, args: Sequence[Any]) -> tuple[ReserveCode, list[Any]]:
        """reserve.lua 'renew'; on success the index lives as long as the reservation."""
        store = self.store
        code, details = reply(
            ReserveCode,
            store.script("reserve")(store.route(reseller_id), ["renew", reseller_id, *args]),
        )
        if code is ReserveCode.DONE:
            store.redis.expire(auth_index(str(args[0])), int(args[1]) + 60)
        return code, details

    def release(self, auth_id: str) -> bool:
        """Free what an authorization holds; True when it held something. Idempotent."""
        store = self.store
        check_auth_id(auth_id)
        reseller_id = self.reseller_of(auth_id)
        if reseller_id is None:
            return False
        code, details = reply(
            ReserveCode,
            store.script("reserve")(store.route(reseller_id), ["release", reseller_id, auth_id]),
        )
        store.redis.delete(auth_index(auth_id))
        return code is ReserveCode.DONE and int(details[0]) == 1

    def reseller_of(self, auth_id: str) -> str | None:
        raw = self.store.redis.get(auth_index(check_auth_id(auth_id)))
        return raw.decode() if raw is not None else None

    def record(self, auth_id: str) -> Reserved | None:
        """The live reservation of an auth_id, or None (unknown, expired, released)."""
        reseller_id = self.reseller_of(auth_id)
        if reseller_id is None:
            return None
        fields = self.store.redis.hgetall(auth_record(reseller_id, auth_id))
        if not fields:
            return None
        get = {k.decode(): v.decode() for k, v in fields.items()}
        return Reserved(
            reseller_id=reseller_id,
            customer_id=get["cust"],
            card_number=get["card"],
            via_ani=get["ani"] == "1",
            number=get["num"],
            rated_at=datetime.fromtimestamp(int(get["at"]), UTC),
            start=int(get["start"]),
            seconds=int(get["secs"]),
            amounts={level: int(get[level]) for level in ("r", "c", "k")},
        )

    def holds(self, level: Level | str, account_id: str) -> list[Hold]:
        """Live reservations on one reseller, customer or card, soonest expiry first."""
        store, level = self.store, Level(level)
        if level is Level.RESELLER:
            reseller_id = account_id
        elif level is Level.CUSTOMER:
            reseller_id = store.reseller_of_customer(account_id)
        else:
            reseller_id = store.owner_of_card(account_id)[0]
        raw = store.redis.hgetall(keys.reservations(reseller_id, level.code, account_id))
        return live_holds(raw, time.time())

    def available(
        self, reseller_id: str, customer_id: str, card_number: str
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Per level (card, customer, reseller): balance minus live reservations, and how many
        live reservations there are (card: 0 and 0 for a card-less call). One round trip; the
        script checks the same again atomically."""
        wanted = [
            (
                "reseller",
                keys.reseller(reseller_id),
                keys.reservations(reseller_id, "r", reseller_id),
            ),
            (
                "customer",
                keys.customer(reseller_id, customer_id),
                keys.reservations(reseller_id, "c", customer_id),
            ),
        ]
        if card_number:
            wanted.append(
                (
                    "card",
                    keys.card(reseller_id, card_number),
                    keys.reservations(reseller_id, "k", card_number),
                )
            )
        pipe = self.store.redis.pipeline(transaction=False)
        for _, hash_key, rsv_key in wanted:
            pipe.hget(hash_key, "bal")
            pipe.hgetall(rsv_key)
        replies = pipe.execute()
        now = time.time()
        available, calls = {"card": 0}, {"card": 0}
        for i, (level, _, _) in enumerate(wanted):
            holds = live_holds(replies[2 * i + 1], now)
            available[level] = int(replies[2 * i] or 0) - total_held(holds)
            calls[level] = len(holds)
        return available, calls

    def server_now(self, reseller_id: str) -> int:
        """Redis' clock (epoch s) on the node of the reseller's slot."""
        if self.store.cluster:
            node = self.store.redis.get_node_from_key(keys.reseller(reseller_id))
            seconds, _ = self.store.redis.time(target_nodes=node)
        else:
            seconds, _ = self.store.redis.time()
        return int(seconds)


def live_holds(raw: dict[bytes, bytes], now: float) -> list[Hold]:
    """The unexpired entries of an `rsv` hash ('<micro>:<expires>' per auth_id)."""
    out = []
    for auth, value in raw.items():
        amount, until = value.decode().split(":")
        if int(until) > now:
            out.append(Hold(auth.decode(), int(amount), datetime.fromtimestamp(int(until), UTC)))
    return sorted(out, key=lambda h: (h.expires_at, h.auth_id))


def total_held(holds: Sequence[Hold]) -> int:
    return sum(h.amount for h in holds)
