"""Authorization for switches: may this call start, and for how many seconds?

`Authorizer.authorize(account=... | card=..., pin=... | ani=..., callee=...)` identifies the
payer, refuses with a reason when docs/DESIGN.md section 1 says so (rater/accounts/answers.py),
finds the sell rate (customer's tariff) and buy rate (reseller's) with the kernel
(rater/accounts/rates.py), computes the most seconds card, customer and reseller can each pay,
and reserves the price of the granted seconds on all three in one Lua call
(rater/redis/lua/reserve.lua), so concurrent authorizations cannot promise the same money twice.

Lifetime (docs/DESIGN.md section 4): a reservation lives settings.reservation_ttl_s from the
server's now, whatever `at` says (`at` only chooses the tariff version). The seconds granted
never exceed that lifetime minus settings.reservation_ring_s: the switch counts from the
answer, so ringing must not outlive the hold. A longer call renews (`renew(auth_id)`): while
the credit covers it, the hold grows to pay up to `lifetime - ring` seconds past the renewal
and lives another lifetime. The debit of the CDR carrying the auth_id, `release(auth_id)`, or
the expiry frees it. At most settings.max_calls_per_card and settings.max_calls_per_account
calls hold credit at once.

PINs: settings.pin_* limits per card (rater/accounts/pins.py), per caller number and per
switch (rater/accounts/pin_guard.py); every card-or-PIN refusal is the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rater.accounts.ani import normalise_ani
from rater.accounts.answers import (
    LEVEL_NAMES,
    Authorization,
    Reason,
    card_or_pin,
    refuse,
    state_reason,
    state_refusal,
)
from rater.accounts.api import Accounts
from rater.accounts.ids import check_auth_id, new_auth_id
from rater.accounts.model import Card, Customer, CustomerKind, Reseller
from rater.accounts.pin_guard import PinGate, PinGuard
from rater.accounts.rates import Rate, RateBook, max_seconds
from rater.accounts.replies import ReserveCode
from rater.accounts.reservations import Reservations
from rater.errors import AuthorizationError, NormalisationError, NotFound
from rater.logs import get_logger
from rater.redis import connection as redis_client
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.numbers import normalise_number
from rater.switches.registry import SwitchRegistry

log = get_logger(__name__)

#: a read-compute-reserve round lost to a concurrent authorization is tried again this often
_ATTEMPTS = 8


@dataclass(frozen=True)
class Payer:
    reseller: Reseller
    customer: Customer
    card: Card | None
    via_ani: bool


@dataclass(frozen=True)
class Released:
    """The answer to a release: the same whether it held credit or had been freed already."""

    auth_id: str

    @property
    def message(self) -> str:
        return f"auth_id {self.auth_id} released: it holds no credit"


class Authorizer:
    """Answers switches' authorization requests; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        client: RedisLike | None = None,
        *,
        rates: RateBook | None = None,
        accounts: Accounts | None = None,
        pins: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """pins: this authorizer checks PINs, so it refuses to start without a PIN secret
        (ConfigError naming RATER_PIN_SECRET); sleep: how PIN answers are slowed down."""
        self.settings = settings
        self.redis: Any = client if client is not None else redis_client.connect(settings)
        self.accounts = accounts or Accounts(settings, self.redis)
        self.rates = rates if rates is not None else RateBook.from_store(self.redis, settings)
        self.reservations = Reservations(self.accounts.store)
        self.pin_gate = PinGate(self.accounts.pins, PinGuard(self.accounts.store), sleep)
        if pins:
            _ = self.accounts.pins.keys

    # ---------------------------------------------------------------- authorize
    def authorize(
        self,
        *,
        callee: str,
        account: str | None = None,
        card: str | None = None,
        pin: str | None = None,
        ani: str | None = None,
        caller: str | None = None,
        switch: str = "default",
        at: datetime | None = None,
        max_seconds: int | None = None,
    ) -> Authorization:
        """caller: the caller number of a card call (PIN guesses are also counted per caller);
        at: the time to rate at (the tariff version), default now; max_seconds: at most this
        long (never more than the reservation's lifetime minus the ring allowance)."""
        given = [x for x in (account, card, ani) if x]
        if len(given) != 1:
            raise AuthorizationError("give exactly one of an account, a card (with PIN) or an ANI")
        if card and pin is None:
            raise AuthorizationError(f"card {card}: a PIN is required (or authorize by ANI)")
        now = datetime.now(UTC)
        at = at or now
        limit = self._limit(max_seconds)

        payer = self._payer(
            account=account, card=card, pin=pin, ani=ani, caller=caller, switch=switch
        )
        if isinstance(payer, Authorization):
            return payer
        reseller, customer, found_card = payer.reseller, payer.customer, payer.card
        refusal = state_refusal(reseller, customer, found_card, now)
        if refusal is not None:
            return refusal

        # --- what it costs
        try:
            number = normalise_number(callee, SwitchRegistry(self.redis).get(switch))
        except NormalisationError as error:
            return refuse(Reason.BAD_NUMBER, f"callee {callee!r}: {error}")
        ids: dict[str, Any] = {
            "customer_id": customer.customer_id,
            "reseller_id": reseller.reseller_id,
            "card_number": found_card.number if found_card else "",
            "number": number,
        }
        rated = self._rates(customer, reseller, number, at, ids)
        if isinstance(rated, Authorization):
            return rated
        sell, buy = rated

        # --- how long, and reserve it (optimistic: read, compute, reserve-if-still-available)
        settings = self.settings
        for _attempt in range(_ATTEMPTS):
            available, calls = self.reservations.available(
                payer.reseller.reseller_id,
                payer.customer.customer_id,
                payer.card.number if payer.card else "",
            )
            busy = _too_many_calls(calls, settings, ids)
            if busy is not None:
                return busy
            seconds = self._seconds(sell, buy, available, limit, found_card)
            granted = min(s for s in seconds.values() if s is not None)
            base = {
                **ids,
                "card_seconds": seconds["card"],
                "customer_seconds": seconds["customer"],
                "reseller_seconds": seconds["reseller"],
                "sell_prefix": sell.prefix,
                "buy_prefix": buy.prefix,
            }
            if granted <= 0:
                short = ", ".join(name for name, s in seconds.items() if s == 0)
                return refuse(
                    Reason.INSUFFICIENT_CREDIT,
                    f"{short} cannot pay the first billing step to {number}",
                    **base,
                )
            sell_amount, buy_amount = sell.price(granted), buy.price(granted)
            auth_id = new_auth_id()
            code, details = self.reservations.reserve(reseller.reseller_id, [
                customer.customer_id, ids["card_number"], auth_id, settings.reservation_ttl_s,
                buy_amount, sell_amount, sell_amount if found_card else 0,
                1 if payer.via_ani else 0, granted, settings.max_calls_per_card,
                settings.max_calls_per_account, number, int(at.timestamp()),
            ])  # fmt: skip
            if code is ReserveCode.DONE:
                reserved = {"reseller": buy_amount, "customer": sell_amount}
                if found_card:
                    reserved["card"] = sell_amount
                return Authorization(
                    True, Reason.OK, f"{granted} s to {number}", auth_id=auth_id,
                    max_seconds=granted, reserved=reserved,
                    expires_at=datetime.fromtimestamp(int(details[0]), UTC), **base,
                )  # fmt: skip
            if code is ReserveCode.REFUSED:  # blocked or emptied since it was read
                level, state = str(details[0]), str(details[1])
                return refuse(
                    state_reason(level, state), f"{LEVEL_NAMES[level]} is {state}", **base
                )
            if code is ReserveCode.TOO_MANY_CALLS:
                level, count = str(details[0]), int(details[1])
                return refuse(Reason.TOO_MANY_CALLS, _too_many(level, count, ids), **base)
            # SHORT: another call reserved meanwhile; compute again with what is left
        return refuse(
            Reason.INSUFFICIENT_CREDIT, "too many concurrent authorizations; try again", **ids
        )

    def _limit(self, asked: int | None) -> int:
        most = self.settings.reservation_ttl_s - self.settings.reservation_ring_s
        if asked is None:
            return most
        if asked <= 0:
            raise AuthorizationError(f"max_seconds must be positive, not {asked}")
        return min(asked, most)

    # ---------------------------------------------------------------- renew, release
    def renew(self, auth_id: str) -> Authorization:
        """Extend a live reservation for a longer call: it then lives another
        settings.reservation_ttl_s from now and pays up to `lifetime - ring` seconds past now,
        as far as the credit covers. Refused (with the reason) when the credit no longer
        covers what is granted, or the reservation is unknown, expired, released or debited.
        The answer's max_seconds is the call's total."""
        check_auth_id(auth_id)
        settings = self.settings
        ttl, ring = settings.reservation_ttl_s, settings.reservation_ring_s
        cap_hint: int | None = None
        for _attempt in range(_ATTEMPTS):
            record = self.reservations.record(auth_id)
            if record is None:
                return _unknown_auth(auth_id, "unknown")
            try:
                payer = Payer(
                    self.accounts.get_reseller(record.reseller_id),
                    self.accounts.get_customer(record.customer_id),
                    self.accounts.get_card(record.card_number) if record.card_number else None,
                    record.via_ani,
                )
            except NotFound as error:
                return _unknown_auth(auth_id, str(error))
            ids: dict[str, Any] = {
                "auth_id": auth_id,
                "customer_id": record.customer_id,
                "reseller_id": record.reseller_id,
                "card_number": record.card_number,
                "number": record.number,
            }
            refusal = state_refusal(payer.reseller, payer.customer, payer.card, datetime.now(UTC))
            if refusal is not None:
                return refuse(refusal.reason, refusal.message, **ids)
            rated = self._rates(payer.customer, payer.reseller, record.number, record.rated_at, ids)
            if isinstance(rated, Authorization):
                return rated
            sell, buy = rated
            cap = self.reservations.server_now(record.reseller_id) - record.start + ttl - ring
            cap = min(cap, cap_hint) if cap_hint is not None else cap
            available, _ = self.reservations.available(
                payer.reseller.reseller_id,
                payer.customer.customer_id,
                payer.card.number if payer.card else "",
            )
            for level, name in LEVEL_NAMES.items():  # what this reservation holds is its own
                available[name] += record.amounts[level]
            seconds = self._seconds(sell, buy, available, cap, payer.card)
            total = min(s for s in seconds.values() if s is not None)
            base = {
                **ids,
                "card_seconds": seconds["card"],
                "customer_seconds": seconds["customer"],
                "reseller_seconds": seconds["reseller"],
                "sell_prefix": sell.prefix,
                "buy_prefix": buy.prefix,
            }
            if total < record.seconds:
                short = ", ".join(
                    n for n, s in seconds.items() if s is not None and s < record.seconds
                )
                return refuse(
                    Reason.INSUFFICIENT_CREDIT,
                    f"{short} no longer covers the {record.seconds} s granted to {record.number}",
                    max_seconds=record.seconds, **base,
                )  # fmt: skip
            sell_amount, buy_amount = sell.price(total), buy.price(total)
            code, details = self.reservations.renew(record.reseller_id, [
                auth_id, ttl, ring, total, record.seconds, buy_amount, sell_amount,
                sell_amount if payer.card else 0,
            ])  # fmt: skip
            if code is ReserveCode.DONE:
                reserved = {"reseller": buy_amount, "customer": sell_amount}
                if payer.card:
                    reserved["card"] = sell_amount
                return Authorization(
                    True, Reason.OK, f"renewed: {total} s in all to {record.number}",
                    max_seconds=total, reserved=reserved,
                    expires_at=datetime.fromtimestamp(int(details[0]), UTC), **base,
                )  # fmt: skip
            if code is ReserveCode.GONE:
                return _unknown_auth(auth_id, str(details[0]))
            if code is ReserveCode.REFUSED:
                level, state = str(details[0]), str(details[1])
                return refuse(
                    state_reason(level, state), f"{LEVEL_NAMES[level]} is {state}", **base
                )
            if code is ReserveCode.OVER_LIFETIME:  # the server's clock is ahead of ours
                cap_hint = int(details[0])
            # SHORT or CHANGED: another call or renewal changed it meanwhile; again
        return refuse(Reason.INSUFFICIENT_CREDIT, "too many concurrent renewals; try again")

    def release(self, auth_id: str) -> Released:
        """Free what an authorization holds (a call that did not happen). Idempotent."""
        self.reservations.release(auth_id)
        return Released(auth_id)

    # ---------------------------------------------------------------- parts
    def _payer(
        self,
        *,
        account: str | None,
        card: str | None,
        pin: str | None,
        ani: str | None,
        caller: str | None,
        switch: str,
    ) -> Payer | Authorization:
        """Who pays, or the refusal that says why nobody does."""
        accounts = self.accounts
        found_card: Card | None = None
        if card and not self.pin_gate.check(card, pin or "", caller=caller, switch=switch):
            return card_or_pin(card)
        try:
            if ani:
                digits = normalise_ani(ani)
                number = accounts.card_of_ani(digits)
                if number is None:
                    owner = accounts.anis.owner_of(digits)
                    if owner is None:
                        return refuse(Reason.UNKNOWN_ANI, f"caller {digits} is not on any card")
                    return refuse(
                        Reason.ANI_DISABLED,
                        f"caller {digits}: card {owner} is under its ANI threshold; "
                        "dial with the PIN or top the card up",
                        card_number=owner,
                    )
                found_card = accounts.get_card(number)
                if not found_card.ani_on:
                    return refuse(
                        Reason.ANI_DISABLED, f"card {number}: ANI recognition is off",
                        card_number=number,
                    )  # fmt: skip
            elif card:
                found_card = accounts.get_card(card)
            customer = accounts.get_customer(
                found_card.customer_id if found_card else account or ""
            )
            reseller = accounts.get_reseller(customer.reseller_id)
        except NotFound as error:
            if card:
                return card_or_pin(card)
            kind = Reason.UNKNOWN_CARD if ani else Reason.UNKNOWN_ACCOUNT
            return refuse(kind, str(error))
        if found_card is None and customer.kind is CustomerKind.CARD_BATCH:
            return refuse(
                Reason.CARDS_ONLY,
                f"customer {customer.customer_id} holds disposable cards: call with a card",
                customer_id=customer.customer_id,
            )
        return Payer(reseller, customer, found_card, bool(ani))

    def _rates(
        self, customer: Customer, reseller: Reseller, number: str, at: datetime, ids: dict[str, Any]
    ) -> tuple[Rate, Rate] | Authorization:
        sell, buy = self.rates.find_both(customer.tariff, reseller.buy_tariff, number, at)
        if sell is None:
            message = f"tariff {customer.tariff!r} has no rate for {number}"
            return refuse(Reason.NO_RATE, message, **ids)
        if buy is None:
            message = f"buy tariff {reseller.buy_tariff!r} has no rate for {number}"
            return refuse(Reason.NO_BUY_RATE, message, **ids)
        return sell, buy

    @staticmethod
    def _seconds(
        sell: Rate, buy: Rate, available: dict[str, int], limit: int, card: Card | None
    ) -> dict[str, int | None]:
        """The most seconds (<= limit) each level can pay; None for the card of a card-less
        call."""
        return {
            "card": max_seconds(sell, available["card"], limit) if card else None,
            "customer": max_seconds(sell, available["customer"], limit),
            "reseller": max_seconds(buy, available["reseller"], limit),
        }


def _unknown_auth(auth_id: str, why: str) -> Authorization:
    return refuse(
        Reason.UNKNOWN_AUTH,
        f"auth_id {auth_id}: no live reservation ({why}); authorize the call again",
        auth_id=auth_id,
    )


def _too_many(level: str, calls: int, ids: dict[str, Any]) -> str:
    who = f"card {ids['card_number']}" if level == "k" else f"customer {ids['customer_id']}"
    return f"too many calls: {who} already has {calls} authorized call(s) in progress"


def _too_many_calls(
    calls: dict[str, int], settings: Settings, ids: dict[str, Any]
) -> Authorization | None:
    """The refusal when the card or the customer already holds its most calls (the script
    checks again atomically)."""
    for level, name, most in (
        ("k", "card", settings.max_calls_per_card),
        ("c", "customer", settings.max_calls_per_account),
    ):
        if (name != "card" or ids["card_number"]) and calls[name] >= most:
            return refuse(Reason.TOO_MANY_CALLS, _too_many(level, calls[name], ids), **ids)
    return None


__all__ = ["Authorization", "Authorizer", "Reason", "Released"]
