"""Reservations of authorized calls in Redis (rater/redis/lua/reserve.lua): reserve, renew,
release, and the holds shown by `card show`, `customer show` and `reseller show`.

A reservation's keys are the reseller's (docs/REDIS_KEYS.md, "Authorization"): per account the
entries, the same auth_ids by expiry, and their running sum and count, so neither Python nor
the script reads every live reservation of an account to know what it holds. The global key
`auth:<auth_id>` names the reseller, so `renew` and `release` need nothing but the auth_id.
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
from rater.accounts.roundtrip import RoundTrip
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


@dataclass(frozen=True)
class Totals:
    """One account's reservations as read beside other reads: the running sum and count, and
    the auth_ids already expired but not yet dropped (a script drops them on its next touch)."""

    held: int
    calls: int
    expired: tuple[bytes, ...]


class Reservations:
    """The script calls and reads of reservations; see the module doc."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    # ---------------------------------------------------------------- reads for authorize
    @staticmethod
    def totals(replies: list[Any], at: tuple[int, int]) -> Totals:
        """The Totals from the replies of `HMGET <totals> held calls` and `ZRANGEBYSCORE
        <expiry> -inf <now>` (keys.reservation_totals, keys.reservation_expiry)."""
        held, calls = replies[at[0]]
        return Totals(int(held or 0), int(calls or 0), tuple(replies[at[1]]))

    def live(self, reseller_id: str, found: dict[tuple[str, str], Totals]) -> dict[str, Totals]:
        """The totals of each (level, id) without their expired entries: one more wait, only
        when an entry expired unreleased and no script touched its account since."""
        stale = [(lv, i, t) for (lv, i), t in found.items() if t.expired]
        if not stale:
            return {lv: t for (lv, _), t in found.items()}
        rt = RoundTrip(self.store.redis)
        for lv, i, t in stale:
            rt.command("HMGET", keys.reservations(reseller_id, lv, i), *t.expired)
        replies = rt.run()
        out = {lv: t for (lv, _), t in found.items()}
        for (lv, _, t), values in zip(stale, replies, strict=True):
            gone = [int(v.split(b":")[0]) for v in values if v is not None]
            out[lv] = Totals(t.held - sum(gone), t.calls - len(gone), ())
        return out

    # ---------------------------------------------------------------- scripts
    def reserve(self, reseller_id: str, args: Sequence[Any],
                also: RoundTrip | None = None) -> tuple[ReserveCode, list[Any]]:  # fmt: skip
        """reserve.lua 'reserve' (see its header for `args`), sent with whatever `also` holds
        (one wait). The auth_id's index is written by the script on one server; on Redis
        Cluster beside it, and taken back when the script refused."""
        store = self.store
        rt = also if also is not None else RoundTrip(store.redis)
        auth_id, ttl = str(args[2]), int(args[3])
        at = rt.script(store.script("reserve"), store.route(reseller_id),
                       ["reserve", reseller_id, *args, 0 if store.cluster else 1])  # fmt: skip
        if store.cluster:
            rt.command("SET", auth_index(auth_id), reseller_id, "EX", ttl + 60)
        code, details = reply(ReserveCode, rt.run()[at])
        if code is not ReserveCode.DONE and store.cluster:
            store.redis.delete(auth_index(auth_id))
        return code, details

    def renew(self, reseller_id: str, args: Sequence[Any]) -> tuple[ReserveCode, list[Any]]:
        """reserve.lua 'renew'; on success the index lives as long as the reservation."""
        store = self.store
        rt = RoundTrip(store.redis)
        at = rt.script(store.script("reserve"), store.route(reseller_id),
                       ["renew", reseller_id, *args, 0 if store.cluster else 1])  # fmt: skip
        code, details = reply(ReserveCode, rt.run()[at])
        if code is ReserveCode.DONE and store.cluster:
            store.redis.expire(auth_index(str(args[0])), int(args[1]) + 60)
        return code, details

    def release(self, auth_id: str, reseller_id: str | None = None) -> bool:
        """Free what an authorization holds; True when it held something. Idempotent.
        reseller_id: the auth_id's reseller when the caller looked it up already."""
        store = self.store
        check_auth_id(auth_id)
        reseller_id = reseller_id or self.reseller_of(auth_id)
        if reseller_id is None:
            return False
        rt = RoundTrip(store.redis)
        at = rt.script(store.script("reserve"), store.route(reseller_id),
                       ["release", reseller_id, auth_id, 0 if store.cluster else 1])  # fmt: skip
        if store.cluster:
            rt.command("DEL", auth_index(auth_id))
        code, details = reply(ReserveCode, rt.run()[at])
        return code is ReserveCode.DONE and int(details[0]) == 1

    def reseller_of(self, auth_id: str) -> str | None:
        raw = self.store.redis.get(auth_index(check_auth_id(auth_id)))
        return raw.decode() if raw is not None else None

    def record(self, auth_id: str, reseller_id: str | None = None) -> Reserved | None:
        """The live reservation of an auth_id, or None (unknown, expired, released)."""
        reseller_id = reseller_id or self.reseller_of(auth_id)
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
