"""Authorization for switches: may this call start, and for how many seconds?

`Authorizer.authorize(account=... | card=..., pin=... | ani=..., callee=...)` identifies the
payer, refuses with a reason when the seed's rules say so (blocked, empty, exhausted or expired
card, locked PIN, ANI disabled under the threshold, customer or reseller below zero), finds the
sell rate (customer's tariff) and buy rate (reseller's), computes the maximum seconds card,
customer and reseller can each pay (billing steps and connect fee included), and reserves the
price of the granted seconds on all three in one Lua call (rater/redis/lua/reserve.lua). Concurrent
authorizations therefore cannot promise the same money twice; a reservation expires after
settings.reservation_ttl_s, and the debit of the CDR carrying the auth_id releases it.

Each call is granted at most `max_seconds` (default settings.reservation_ttl_s): reserving an
account's whole balance for one call would stop its other lines from calling.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from rater import reference
from rater.accounts.api import Accounts, normalise_ani
from rater.accounts.model import Card, Customer, CustomerKind, Reseller
from rater.errors import AuthorizationError, NormalisationError, NotFound
from rater.money import MICRO, Rounding, from_micro, round_div
from rater.redis import cluster as debit_cluster
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.redis.scripts import Script
from rater.settings import Settings
from rater.switches.numbers import normalise_number
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import TariffRow, TariffTable
from rater.tariffs.store import TariffStore


class Reason(StrEnum):
    OK = "ok"
    UNKNOWN_ACCOUNT = "unknown_account"
    CARDS_ONLY = "cards_only"  # a card-batch customer calls only through its disposable cards
    UNKNOWN_CARD = "unknown_card"
    UNKNOWN_ANI = "unknown_ani"
    ANI_DISABLED = "ani_disabled"  # the card is under its reseller's ANI threshold
    WRONG_PIN = "wrong_pin"
    CARD_LOCKED = "card_locked"  # too many wrong PINs
    CARD_BLOCKED = "card_blocked"
    CARD_EMPTY = "card_empty"
    CARD_EXHAUSTED = "card_exhausted"
    CARD_EXPIRED = "card_expired"
    CUSTOMER_BLOCKED = "customer_blocked"
    CUSTOMER_NEGATIVE = "customer_negative"  # below zero: no new calls, with cards or without
    RESELLER_BLOCKED = "reseller_blocked"
    RESELLER_NEGATIVE = "reseller_negative"
    BAD_NUMBER = "bad_number"
    NO_RATE = "no_rate"  # the customer's tariff has no prefix for the number
    NO_BUY_RATE = "no_buy_rate"  # the reseller's buy tariff has none
    INSUFFICIENT_CREDIT = "insufficient_credit"  # cannot pay the first billing step


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    reason: Reason
    message: str
    auth_id: str = ""  # '' when refused
    number: str = ""  # the callee as E.164 digits
    customer_id: str = ""
    card_number: str = ""
    reseller_id: str = ""
    max_seconds: int = 0  # granted: the switch hangs up after this
    card_seconds: int | None = None  # what each level could pay (None: no card)
    customer_seconds: int | None = None
    reseller_seconds: int | None = None
    reserved: dict[str, int] = field(default_factory=dict)  # level -> micro-units
    expires_at: datetime | None = None
    sell_prefix: str = ""
    buy_prefix: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "reason": self.reason.value,
            "message": self.message,
            "auth_id": self.auth_id,
            "number": self.number,
            "customer": self.customer_id,
            "card": self.card_number,
            "reseller": self.reseller_id,
            "max_seconds": self.max_seconds,
            "card_seconds": self.card_seconds,
            "customer_seconds": self.customer_seconds,
            "reseller_seconds": self.reseller_seconds,
            "reserved": {k: from_micro(v) for k, v in self.reserved.items()},
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "sell_prefix": self.sell_prefix,
            "buy_prefix": self.buy_prefix,
        }


# ---------------------------------------------------------------- arithmetic (pure)
def price_of(table: TariffTable, row: TariffRow, billable: int) -> int:
    """Price in micro-units of `billable` (already on the step grid) seconds, as docs/DESIGN.md
    section 2 defines it, on integers: (fee * 60 + rates * seconds) / 60, rounded per table."""
    if billable <= 0:
        return 0
    steps = row.steps or table.steps
    if row.first_rate is None:
        numerator = row.connect_fee * 60 + row.rate * billable
    else:
        first = min(billable, steps.minimum)
        numerator = row.connect_fee * 60 + row.first_rate * first + row.rate * (billable - first)
    unit = 10 ** (6 - table.decimals)
    return round_div(numerator, 60, unit, Rounding(table.rounding))


def max_seconds(table: TariffTable, row: TariffRow, available: int, limit: int) -> int:
    """The most call seconds (<= limit) whose price, after billing steps, fits in `available`.

    Candidates are the step grid X, X+Y, X+2Y, ... (a call of s seconds costs the price of the
    grid point at or above s); the price grows with the grid, so a binary search finds the last
    affordable point. 0 when not even the first step can be paid.
    """
    if limit <= 0 or (available <= 0 and price_of(table, row, 1) > 0):
        return 0
    steps = row.steps or table.steps
    X, Y = steps.minimum, steps.increment

    def point(k: int) -> int:
        return X + k * Y

    low = 0 if X > 0 else 1  # a 0/Y grid starts at Y
    if price_of(table, row, point(low)) > available:
        return 0
    high = max(low, -(-(limit - X) // Y))  # the first grid point at or beyond the limit
    if price_of(table, row, point(high)) <= available:
        return limit
    while high - low > 1:  # invariant: point(low) affordable, point(high) not
        middle = (low + high) // 2
        if price_of(table, row, point(middle)) <= available:
            low = middle
        else:
            high = middle
    return min(point(low), limit)


def billable_of(table: TariffTable, row: TariffRow, seconds: int) -> int:
    return (row.steps or table.steps).billable(seconds)


# ---------------------------------------------------------------- rates
class RateBook(Protocol):
    def find(self, tariff: str, number: str, at: datetime) -> tuple[TariffTable, TariffRow] | None:
        """The version in force at `at` and its longest-prefix row for `number`, or None."""


class StoreRates:
    """Rates from helper B's TariffStore (Redis), matched with rater.reference.match."""

    def __init__(self, client: RedisLike, settings: Settings) -> None:
        self.store = TariffStore(client, settings, clickhouse=False)
        self._generation = -1
        self._versions: dict[str, Sequence[TariffTable]] = {}

    def find(self, tariff: str, number: str, at: datetime) -> tuple[TariffTable, TariffRow] | None:
        generation = self.store.generation()
        if generation != self._generation:
            self._versions.clear()
            self._generation = generation
        versions = self._versions.get(tariff)
        if versions is None:
            try:
                versions = self._versions[tariff] = self.store.versions(tariff)
            except NotFound:
                return None
        table = reference.version_at(versions, at)
        if table is None:
            return None
        row = reference.match(table, number, at)
        return (table, row) if row is not None else None


class StaticRates:
    """Rates from tables held in memory (offline checks, tests of the arithmetic)."""

    def __init__(self, tables: dict[str, TariffTable]) -> None:
        self.tables = tables

    def find(self, tariff: str, number: str, at: datetime) -> tuple[TariffTable, TariffRow] | None:
        table = self.tables.get(tariff)
        if table is None:
            return None
        row = reference.match(table, number, at)
        return (table, row) if row is not None else None


# ---------------------------------------------------------------- the authorizer
class Authorizer:
    """Answers switches' authorization requests; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        redis_client: RedisLike | None = None,
        *,
        rates: RateBook | None = None,
        accounts: Accounts | None = None,
    ) -> None:
        self.settings = settings
        self.redis: Any = redis_client if redis_client is not None else redis_client_of(settings)
        self.accounts = accounts or Accounts(settings, self.redis)
        self.rates: RateBook = rates if rates is not None else StoreRates(self.redis, settings)
        self._reserve = Script(self.redis, "reserve")
        self._cluster = debit_cluster.is_cluster(self.redis)

    def authorize(
        self,
        *,
        callee: str,
        account: str | None = None,
        card: str | None = None,
        pin: str | None = None,
        ani: str | None = None,
        switch: str = "default",
        at: datetime | None = None,
        max_seconds: int | None = None,
    ) -> Authorization:
        given = [x for x in (account, card, ani) if x]
        if len(given) != 1:
            raise AuthorizationError("give exactly one of an account, a card (with PIN) or an ANI")
        if card and pin is None:
            raise AuthorizationError(f"card {card}: a PIN is required (or authorize by ANI)")
        at = at or datetime.now(UTC)
        limit = max_seconds if max_seconds is not None else self.settings.reservation_ttl_s
        if limit <= 0:
            raise AuthorizationError(f"max_seconds must be positive, not {limit}")

        # --- who pays
        found_card: Card | None = None
        via_ani = False
        try:
            if ani:
                digits = normalise_ani(ani)
                number = self.accounts.card_of_ani(digits)
                if number is None:
                    owner = self.redis.get(f"aniown:{digits}")
                    if owner is None:
                        return _refuse(Reason.UNKNOWN_ANI, f"caller {digits} is not on any card")
                    return _refuse(
                        Reason.ANI_DISABLED,
                        f"caller {digits}: card {owner.decode()} is under its ANI threshold; "
                        "dial with the PIN or top the card up",
                        card_number=owner.decode(),
                    )
                found_card = self.accounts.get_card(number)
                via_ani = True
                if not found_card.ani_on:
                    return _refuse(
                        Reason.ANI_DISABLED,
                        f"card {number}: ANI recognition is off",
                        card_number=number,
                    )
            elif card:
                found_card = self.accounts.get_card(card)
                check = self.accounts.verify_pin(card, pin or "")
                if check.locked_until is not None:
                    return _refuse(
                        Reason.CARD_LOCKED,
                        f"card {card}: locked after wrong PINs until "
                        f"{check.locked_until:%Y-%m-%d %H:%M:%S} UTC",
                        card_number=card,
                    )
                if not check.ok:
                    return _refuse(Reason.WRONG_PIN, f"card {card}: wrong PIN", card_number=card)
            customer = self.accounts.get_customer(
                found_card.customer_id if found_card else account or ""
            )
            reseller = self.accounts.get_reseller(customer.reseller_id)
            if found_card is None and customer.kind is CustomerKind.CARD_BATCH:
                return _refuse(
                    Reason.CARDS_ONLY,
                    f"customer {customer.customer_id} holds disposable cards: call with a card",
                    customer_id=customer.customer_id,
                )
        except NotFound as error:
            kind = Reason.UNKNOWN_CARD if (card or ani) else Reason.UNKNOWN_ACCOUNT
            return _refuse(kind, str(error), card_number=card or "")

        refusal = _state_refusal(reseller, customer, found_card, at)
        if refusal is not None:
            return refusal

        # --- what it costs
        try:
            number = normalise_number(callee, SwitchRegistry(self.redis).get(switch))
        except NormalisationError as error:
            return _refuse(Reason.BAD_NUMBER, f"callee {callee!r}: {error}")
        ids = {
            "customer_id": customer.customer_id,
            "reseller_id": reseller.reseller_id,
            "card_number": found_card.number if found_card else "",
        }
        sell = self.rates.find(customer.tariff, number, at)
        if sell is None:
            return _refuse(
                Reason.NO_RATE,
                f"tariff {customer.tariff!r} has no rate for {number}",
                number=number,
                **ids,
            )
        buy = self.rates.find(reseller.buy_tariff, number, at)
        if buy is None:
            return _refuse(
                Reason.NO_BUY_RATE,
                f"buy tariff {reseller.buy_tariff!r} has no rate for {number}",
                number=number,
                **ids,
            )

        # --- how long, and reserve it (optimistic: read, compute, reserve-if-still-available)
        for _attempt in range(8):
            available = self._available(reseller, customer, found_card)
            card_s = max_seconds_of(sell, available["k"], limit) if found_card else None
            customer_s = max_seconds_of(sell, available["c"], limit)
            reseller_s = max_seconds_of(buy, available["r"], limit)
            granted = min(s for s in (card_s, customer_s, reseller_s, limit) if s is not None)
            base: dict[str, Any] = {
                "number": number,
                "card_seconds": card_s,
                "customer_seconds": customer_s,
                "reseller_seconds": reseller_s,
                "sell_prefix": sell[1].prefix,
                "buy_prefix": buy[1].prefix,
                **ids,
            }
            if granted <= 0:
                short = [
                    name
                    for name, s in (
                        ("card", card_s),
                        ("customer", customer_s),
                        ("reseller", reseller_s),
                    )
                    if s == 0
                ]
                return _refuse(
                    Reason.INSUFFICIENT_CREDIT,
                    f"{', '.join(short)} cannot pay the first billing step to {number}",
                    **base,
                )
            sell_amount = price_of(sell[0], sell[1], billable_of(sell[0], sell[1], granted))
            buy_amount = price_of(buy[0], buy[1], billable_of(buy[0], buy[1], granted))
            auth_id = "a" + secrets.token_hex(8)
            expires = int(at.timestamp()) + self.settings.reservation_ttl_s
            route = debit_cluster.route(reseller.reseller_id) if self._cluster else []
            reply = self._reserve(route, [
                reseller.reseller_id, customer.customer_id, ids["card_number"], auth_id, expires,
                buy_amount, sell_amount, sell_amount if found_card else 0, 1 if via_ani else 0,
            ])  # fmt: skip
            code = int(reply[0])
            if code == 0:
                reserved = {"reseller": buy_amount, "customer": sell_amount}
                if found_card:
                    reserved["card"] = sell_amount
                return Authorization(
                    True,
                    Reason.OK,
                    f"{granted} s to {number}",
                    auth_id=auth_id,
                    max_seconds=granted,
                    reserved=reserved,
                    expires_at=datetime.fromtimestamp(expires, UTC),
                    **base,
                )
            if code == 2:  # blocked or emptied since it was read
                level, state = reply[1].decode(), reply[2].decode()
                return _refuse(_state_reason(level, state), f"{level} is {state}", **base)
            # code 1: another call reserved meanwhile; compute again with what is left
        return _refuse(
            Reason.INSUFFICIENT_CREDIT,
            "too many concurrent authorizations; try again",
            number=number,
            **ids,
        )

    def _available(
        self, reseller: Reseller, customer: Customer, card: Card | None
    ) -> dict[str, int]:
        """Balance minus live reservations per level ('r', 'c', 'k')."""
        now = datetime.now(UTC).timestamp()
        r = reseller.reseller_id
        wanted = [
            ("r", keys.reseller(r), keys.reservations(r, "r", r)),
            (
                "c",
                keys.customer(r, customer.customer_id),
                keys.reservations(r, "c", customer.customer_id),
            ),
        ]
        if card is not None:
            wanted.append(("k", keys.card(r, card.number), keys.reservations(r, "k", card.number)))
        pipe = self.redis.pipeline(transaction=False)
        for _, hash_key, rsv_key in wanted:
            pipe.hget(hash_key, "bal")
            pipe.hvals(rsv_key)
        replies = pipe.execute()
        out = {"k": 0}
        for i, (level, _, _) in enumerate(wanted):
            balance = int(replies[2 * i] or 0)
            held = 0
            for raw in replies[2 * i + 1]:
                amount, until = raw.decode().split(":")
                if int(until) > now:
                    held += int(amount)
            out[level] = balance - held
        return out


def max_seconds_of(rate: tuple[TariffTable, TariffRow], available: int, limit: int) -> int:
    return max_seconds(rate[0], rate[1], available, limit)


def _refuse(reason: Reason, message: str, **fields: Any) -> Authorization:
    return Authorization(False, reason, message, **fields)


def _state_refusal(
    reseller: Reseller, customer: Customer, card: Card | None, at: datetime
) -> Authorization | None:
    ids = {
        "customer_id": customer.customer_id,
        "reseller_id": reseller.reseller_id,
        "card_number": card.number if card else "",
    }
    if card is not None:
        if card.blocked:
            return _refuse(Reason.CARD_BLOCKED, f"card {card.number} is blocked", **ids)
        if card.state == "exhausted":
            return _refuse(
                Reason.CARD_EXHAUSTED,
                f"card {card.number} is used up (disposable); issue a new card",
                **ids,
            )
        if card.state == "empty" or card.balance <= 0:
            return _refuse(Reason.CARD_EMPTY, f"card {card.number} is empty; top it up", **ids)
        if card.expired(at):
            return _refuse(
                Reason.CARD_EXPIRED, f"card {card.number} expired on {card.expires:%Y-%m-%d}", **ids
            )
    if customer.blocked:
        return _refuse(
            Reason.CUSTOMER_BLOCKED, f"customer {customer.customer_id} is blocked", **ids
        )
    if customer.state == "negative" or customer.balance < 0:
        return _refuse(
            Reason.CUSTOMER_NEGATIVE,
            f"customer {customer.customer_id} is below zero "
            f"({from_micro(customer.balance, 2)}): no new calls until a top-up",
            **ids,
        )
    if reseller.blocked:
        return _refuse(
            Reason.RESELLER_BLOCKED, f"reseller {reseller.reseller_id} is blocked", **ids
        )
    if reseller.state == "negative" or reseller.credit < 0:
        return _refuse(
            Reason.RESELLER_NEGATIVE,
            f"reseller {reseller.reseller_id} is below zero: no new calls",
            **ids,
        )
    return None


def _state_reason(level: str, state: str) -> Reason:
    table = {
        ("k", "blocked"): Reason.CARD_BLOCKED,
        ("k", "empty"): Reason.CARD_EMPTY,
        ("k", "exhausted"): Reason.CARD_EXHAUSTED,
        ("k", "expired"): Reason.CARD_EXPIRED,
        ("k", "ani_off"): Reason.ANI_DISABLED,
        ("k", "unknown"): Reason.UNKNOWN_CARD,
        ("c", "blocked"): Reason.CUSTOMER_BLOCKED,
        ("c", "negative"): Reason.CUSTOMER_NEGATIVE,
        ("c", "unknown"): Reason.UNKNOWN_ACCOUNT,
        ("r", "blocked"): Reason.RESELLER_BLOCKED,
        ("r", "negative"): Reason.RESELLER_NEGATIVE,
        ("r", "unknown"): Reason.UNKNOWN_ACCOUNT,
    }
    return table.get((level, state), Reason.CUSTOMER_BLOCKED)


def redis_client_of(settings: Settings) -> RedisLike:
    return redis_client.connect(settings)


__all__ = ["MICRO", "Authorization", "Authorizer", "Reason", "max_seconds", "price_of"]
