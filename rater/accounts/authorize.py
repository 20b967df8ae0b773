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

Waits for Redis (docs/SERVE.md, "Speed"): the payer's hashes and reservation totals are read
in one pipeline (rater/accounts/payers.py) and the reservation is one script call, so an
account's authorization waits twice, a card's with its PIN and an ANI call three times.
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
from rater.accounts.payers import Payers, Snapshot
from rater.accounts.pin_guard import PinGate, PinGuard
from rater.accounts.pins import Pins
from rater.accounts.rates import Rate, RateBook, max_seconds
from rater.accounts.replies import ReserveCode
from rater.accounts.reservations import Reservations
from rater.accounts.roundtrip import RoundTrip
from rater.errors import AuthorizationError, NormalisationError, NotFound
from rater.logs import get_logger
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.cache import SwitchCache
from rater.switches.numbers import normalise_number
from rater.switches.registry import SwitchRegistry

log = get_logger(__name__)

#: a read-compute-reserve round lost to a concurrent authorization is tried again this often
_ATTEMPTS = 8

#: which resellers the asker acts for (the HTTP service's switch scopes); None: any
Scope = Callable[[str], bool] | None


class OutOfScope(AuthorizationError):
    """The payer belongs to a reseller the asker does not act for: nothing was counted or held."""

    def __init__(self, reseller_id: str) -> None:
        super().__init__(f"the payer belongs to reseller {reseller_id!r}")
        self.reseller_id = reseller_id


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


class _Carry:
    """Commands that go with the next wait (a PIN attempt taken back, a refusal counted), or
    alone at the end when no wait follows."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.rt = RoundTrip(client)

    def take(self) -> RoundTrip:
        rt, self.rt = self.rt, RoundTrip(self.client)
        return rt

    def flush(self) -> None:
        if len(self.rt):
            self.take().run()


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
        self.payers = Payers(self.accounts.store, self.reservations)
        self.switches = SwitchCache(SwitchRegistry(self.redis))
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
        scope: Scope = None,
    ) -> Authorization:
        """caller: the caller number of a card call (PIN guesses are also counted per caller);
        at: the time to rate at (the tariff version), default now; max_seconds: at most this
        long (never more than the reservation's lifetime minus the ring allowance); scope:
        the resellers the asker acts for (OutOfScope, before anything is counted or held).

        Waits for Redis (docs/SERVE.md, "Speed"): an account call one pipeline of reads and
        the reservation; a card call with its PIN one more before them (the card's owner, the
        caller's attempt counted), an ANI call the caller number's card."""
        given = [x for x in (account, card, ani) if x]
        if len(given) != 1:
            raise AuthorizationError("give exactly one of an account, a card (with PIN) or an ANI")
        if card and pin is None:
            raise AuthorizationError(f"card {card}: a PIN is required (or authorize by ANI)")
        now = datetime.now(UTC)
        at = at or now
        limit = self._limit(max_seconds)
        carry = _Carry(self.redis)
        try:
            if card:
                payer = self._card(
                    carry, card, pin or "", caller=caller, switch=switch, scope=scope
                )
            elif ani:
                payer = self._ani(ani, scope)
            else:
                payer = self._account(account or "", scope)
            if isinstance(payer, Authorization):
                return payer
            return self._reserve(
                carry, payer, callee=callee, switch=switch, at=at, now=now, limit=limit
            )
        finally:
            carry.flush()

    def _reserve(
        self,
        carry: _Carry,
        payer: tuple[Snapshot, bool],
        *,
        callee: str,
        switch: str,
        at: datetime,
        now: datetime,
        limit: int,
    ) -> Authorization:
        """The snapshot's payer may call: how long, and reserve it (optimistic: compute from
        what was read, reserve if still available, read again when another call won)."""
        snap, via_ani = payer
        reseller, customer, found_card = snap.reseller, snap.customer, snap.card
        refusal = state_refusal(reseller, customer, found_card, now)
        if refusal is not None:
            return refusal

        # --- what it costs
        try:
            number = normalise_number(callee, self.switches.get(switch))
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

        settings = self.settings
        for attempt in range(_ATTEMPTS):
            if attempt:
                snap = self.payers.read(reseller.reseller_id, customer.customer_id,
                                        ids["card_number"])  # fmt: skip
            busy = _too_many_calls(snap.calls, settings, ids)
            if busy is not None:
                return busy
            seconds = self._seconds(sell, buy, snap.available, limit, found_card)
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
                1 if via_ani else 0, granted, settings.max_calls_per_card,
                settings.max_calls_per_account, number, int(at.timestamp()),
            ], also=carry.take())  # fmt: skip
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

    # ---------------------------------------------------------------- the payer
    def _account(self, account: str, scope: Scope) -> tuple[Snapshot, bool] | Authorization:
        """One wait: the customer's and reseller's hashes and reservations (and the switch
        generation); the customer's reseller is known from earlier calls of this process."""
        payers = self.payers
        reseller_id = payers.reseller_of_customer(account)
        for _attempt in range(2):
            if reseller_id is None:
                return refuse(Reason.UNKNOWN_ACCOUNT, f"customer {account!r} does not exist")
            _check_scope(scope, reseller_id)
            rt = RoundTrip(self.redis)
            generation = rt.command("GET", SwitchCache.GENERATION_KEY)
            pending = payers.queue(rt, reseller_id, account, "")
            replies = rt.run()
            self.switches.seen(replies[generation])
            try:
                snap = payers.snapshot(replies, pending)
            except NotFound as error:
                payers.forget(account)  # remembered wrongly? look it up once more
                again = payers.reseller_of_customer(account)
                if again == reseller_id:
                    return refuse(Reason.UNKNOWN_ACCOUNT, str(error))
                reseller_id = again
                continue
            if snap.customer.kind is CustomerKind.CARD_BATCH:
                return refuse(
                    Reason.CARDS_ONLY,
                    f"customer {account} holds disposable cards: call with a card",
                    customer_id=account,
                )
            return snap, False
        return refuse(Reason.UNKNOWN_ACCOUNT, f"customer {account!r} does not exist")

    def _card(
        self, carry: _Carry, card: str, pin: str, *, caller: str | None, switch: str, scope: Scope
    ) -> tuple[Snapshot, bool] | Authorization:
        """Two waits before the reservation, the same for a known and an unknown number:
        1. the switch's delay, the caller's attempt counted, the card's owner, the switch
           generation; 2. pin.lua and the snapshot reads (used only when the PIN is right).
        What the PIN check leaves to do (the attempt taken back, the refusal counted) goes
        with the reservation, or alone."""
        gate = self.pin_gate
        rt = RoundTrip(self.redis)
        start = gate.queue_start(rt, caller, switch)
        owner_at = rt.command("GET", keys.card_index(card))
        generation = rt.command("GET", SwitchCache.GENERATION_KEY)
        replies = rt.run()
        self.switches.seen(replies[generation])
        owner = self.payers.remember_card(card, replies[owner_at])
        if owner is not None and scope is not None and not scope(owner[0]):
            turn = (
                gate.guard.turn(start.caller[0], replies[start.caller[1]]) if start.caller else None
            )
            if turn is not None and turn.go:
                gate.guard.queue_undo(carry.rt, turn)
            raise OutOfScope(owner[0])
        turn = gate.started(replies, start)
        check, snap = None, None
        if turn is None or turn.go:
            reseller_id, customer_id = owner or ("", "")
            rt = carry.take()
            pin_at = gate.queue_check(rt, reseller_id, card, pin)
            pending = self.payers.queue(rt, reseller_id, customer_id, card)
            replies = rt.run()
            check = Pins.result(replies[pin_at])
            if check.ok:
                try:
                    snap = self.payers.snapshot(replies, pending)
                except NotFound:
                    snap = None
        right = gate.queue_finish(carry.rt, check, turn, card=card, caller=caller, switch=switch)
        if not right or snap is None:
            return card_or_pin(card)
        return snap, False

    def _ani(self, ani: str, scope: Scope) -> tuple[Snapshot, bool] | Authorization:
        """The caller number's card (and the switch generation) in one wait, the snapshot in
        another; the card's owner is known from earlier calls of this process."""
        digits = normalise_ani(ani)
        rt = RoundTrip(self.redis)
        card_at = rt.command("GET", keys.ani_index(digits))
        generation = rt.command("GET", SwitchCache.GENERATION_KEY)
        replies = rt.run()
        self.switches.seen(replies[generation])
        raw = replies[card_at]
        if raw is None:
            owner_card = self.accounts.anis.owner_of(digits)
            if owner_card is None:
                return refuse(Reason.UNKNOWN_ANI, f"caller {digits} is not on any card")
            return refuse(
                Reason.ANI_DISABLED,
                f"caller {digits}: card {owner_card} is under its ANI threshold; "
                "dial with the PIN or top the card up",
                card_number=owner_card,
            )
        number = raw.decode()
        owner = self.payers.owner_of_card(number)
        if owner is None:
            return refuse(Reason.UNKNOWN_CARD, f"card {number} does not exist")
        _check_scope(scope, owner[0])
        try:
            snap = self.payers.read(owner[0], owner[1], number)
        except NotFound as error:
            return refuse(Reason.UNKNOWN_CARD, str(error))
        if snap.card is not None and not snap.card.ani_on:
            return refuse(
                Reason.ANI_DISABLED, f"card {number}: ANI recognition is off", card_number=number
            )
        return snap, True

    # ---------------------------------------------------------------- renew, release
    def renew(self, auth_id: str, reseller_id: str | None = None) -> Authorization:
        """Extend a live reservation for a longer call: it then lives another
        settings.reservation_ttl_s from now and pays up to `lifetime - ring` seconds past now,
        as far as the credit covers. Refused (with the reason) when the credit no longer
        covers what is granted, or the reservation is unknown, expired, released or debited.
        The answer's max_seconds is the call's total. reseller_id: the auth_id's reseller when
        the caller looked it up already."""
        check_auth_id(auth_id)
        settings = self.settings
        ttl, ring = settings.reservation_ttl_s, settings.reservation_ring_s
        cap_hint: int | None = None
        for _attempt in range(_ATTEMPTS):
            record = self.reservations.record(auth_id, reseller_id)
            if record is None:
                return _unknown_auth(auth_id, "unknown")
            try:
                snap = self.payers.read(record.reseller_id, record.customer_id,
                                        record.card_number)  # fmt: skip
            except NotFound as error:
                return _unknown_auth(auth_id, str(error))
            ids: dict[str, Any] = {
                "auth_id": auth_id,
                "customer_id": record.customer_id,
                "reseller_id": record.reseller_id,
                "card_number": record.card_number,
                "number": record.number,
            }
            refusal = state_refusal(snap.reseller, snap.customer, snap.card, datetime.now(UTC))
            if refusal is not None:
                return refuse(refusal.reason, refusal.message, **ids)
            rated = self._rates(snap.customer, snap.reseller, record.number, record.rated_at, ids)
            if isinstance(rated, Authorization):
                return rated
            sell, buy = rated
            cap = self.reservations.server_now(record.reseller_id) - record.start + ttl - ring
            cap = min(cap, cap_hint) if cap_hint is not None else cap
            available = dict(snap.available)
            for level, name in LEVEL_NAMES.items():  # what this reservation holds is its own
                available[name] += record.amounts[level]
            seconds = self._seconds(sell, buy, available, cap, snap.card)
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
                sell_amount if snap.card else 0,
            ])  # fmt: skip
            if code is ReserveCode.DONE:
                reserved = {"reseller": buy_amount, "customer": sell_amount}
                if snap.card:
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

    def release(self, auth_id: str, reseller_id: str | None = None) -> Released:
        """Free what an authorization holds (a call that did not happen). Idempotent.
        reseller_id: the auth_id's reseller when the caller looked it up already."""
        self.reservations.release(auth_id, reseller_id)
        return Released(auth_id)

    # ---------------------------------------------------------------- parts
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


def _check_scope(scope: Scope, reseller_id: str) -> None:
    if scope is not None and not scope(reseller_id):
        raise OutOfScope(reseller_id)


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


__all__ = ["Authorization", "Authorizer", "OutOfScope", "Reason", "Released"]
