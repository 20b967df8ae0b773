"""The account calls the HTTP service makes, behind one small interface.

Endpoints talk to `CallControl` only; `AuthorizerControl` implements it over
rater.accounts.authorize.Authorizer (the same object `rater authorize` uses, so the rules are
the same) and rater.accounts.api.Accounts. Renewing and releasing a reservation are
`Authorizer.renew(auth_id)` and `Authorizer.release(auth_id)`; until the Authorizer has them,
those calls raise NotWired and the endpoints answer 501.

Rates come from `PolledRates`: the tariff store's generation counter is read at most once a
second instead of on every look-up (StoreRates reads it twice per authorization), so a new
tariff version reaches the service within a second. Two Redis round trips of the eight an
account authorization makes. Versions are also read again after MAX_AGE_S whatever the
counter says (a flushed or restored Redis can bring back a counter value seen before).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rater import reference
from rater.accounts.api import Accounts, normalise_ani
from rater.accounts.authorize import Authorization, Authorizer, Reason
from rater.errors import AccountError, NotFound, RaterError
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.model import TariffRow, TariffTable
from rater.tariffs.store import TariffStore


class NotWired(RaterError):
    """The account layer has no such call yet (the endpoint answers 501)."""


@dataclass(frozen=True)
class AuthorizeAsk:
    """One authorization request, checked for shape (calls.py) but not yet for money."""

    callee: str
    switch: str
    account: str | None = None
    card: str | None = None
    pin: str | None = None
    ani: str | None = None
    caller: str | None = None
    max_seconds: int | None = None


@dataclass(frozen=True)
class Renewal:
    auth_id: str
    expires_at: datetime
    max_seconds: int | None = None


@dataclass(frozen=True)
class Hold:
    """A live reservation on an account."""

    auth_id: str
    amount: int  # micro-units
    expires_at: datetime


@dataclass(frozen=True)
class AccountView:
    account: str
    name: str
    reseller: str
    currency: str
    status: str
    balance: int  # booked, micro-units
    available: int  # balance minus live holds
    holds: tuple[Hold, ...]


@dataclass(frozen=True)
class CardBalance:
    ok: bool  # the PIN was right and the card exists
    reason: Reason
    message: str
    card: str
    status: str = ""
    currency: str = ""
    balance: int = 0  # the card's limit left, booked
    available: int = 0  # minus live holds on the card
    expires_at: datetime | None = None


class CallControl(Protocol):
    """What the endpoints need from the account layer."""

    def reseller_of(
        self, *, account: str | None = None, card: str | None = None, ani: str | None = None
    ) -> str | None:
        """The reseller id of the payer named, or None when it does not exist."""

    def authorize(self, ask: AuthorizeAsk) -> Authorization: ...

    def renew(self, auth_id: str) -> Renewal: ...

    def release(self, auth_id: str) -> None:
        """Drop the reservation; nothing (and no error) when there is none any more."""

    def card_balance(self, number: str, pin: str) -> CardBalance: ...

    def account(self, account_id: str) -> AccountView:
        """NotFound when the account does not exist."""


class PolledRates:
    """A RateBook (rater.accounts.authorize) over the tariff store; see the module doc."""

    MAX_AGE_S = 60.0

    def __init__(
        self,
        client: RedisLike,
        settings: Settings,
        *,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = TariffStore(client, settings, clickhouse=False)
        self.poll_s = poll_s
        self.clock = clock
        self._checked_at = float("-inf")
        self._filled_at = float("-inf")
        self._generation = -1
        self._versions: dict[str, Sequence[TariffTable]] = {}

    def find(self, tariff: str, number: str, at: datetime) -> tuple[TariffTable, TariffRow] | None:
        now = self.clock()
        if now - self._checked_at >= self.poll_s:
            generation = self.store.generation()
            if generation != self._generation or now - self._filled_at >= self.MAX_AGE_S:
                self._versions = {}
                self._generation = generation
                self._filled_at = now
            self._checked_at = now
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


class AuthorizerControl:
    """CallControl over the Authorizer and Accounts of one Redis client.

    The reseller of a customer or a card never changes (docs/DESIGN.md section 1: ids are
    unique in the deployment and a card stays with its customer), so `reseller_of` keeps the
    ones it found, up to OWNERS_CACHED: one Redis round trip less per authorization. Unknown
    payers are not kept (they may be created any moment); ANIs are looked up every time (they
    move between cards).
    """

    OWNERS_CACHED = 200_000

    def __init__(self, settings: Settings, client: RedisLike) -> None:
        self.settings = settings
        self.redis: Any = client
        self._owners: dict[str, str] = {}
        self.accounts = Accounts(settings, client)
        self.authorizer = Authorizer(
            settings, client, accounts=self.accounts, rates=PolledRates(client, settings)
        )

    def reseller_of(
        self, *, account: str | None = None, card: str | None = None, ani: str | None = None
    ) -> str | None:
        if account is not None:
            key = keys.account_index(account)
            found = self._owners.get(key)
            if found is None:
                owner = self.redis.get(key)
                if owner is None:
                    return None
                found = self._keep(key, owner.decode())
            return found
        if ani is not None:
            try:
                digits = normalise_ani(ani)
            except AccountError:
                return None
            card = _text(self.redis.get(keys.ani_index(digits))) or _text(
                self.redis.get(f"aniown:{digits}")
            )
            if not card:
                return None
        if card is not None:
            key = keys.card_index(card)
            found = self._owners.get(key)
            if found is None:
                owner = self.redis.get(key)
                if owner is None:
                    return None
                found = self._keep(key, owner.decode().split(":", 1)[0])
            return found
        return None

    def _keep(self, key: str, reseller_id: str) -> str:
        if len(self._owners) >= self.OWNERS_CACHED:
            self._owners.clear()  # simpler than an LRU; refilled one round trip at a time
        self._owners[key] = reseller_id
        return reseller_id

    def authorize(self, ask: AuthorizeAsk) -> Authorization:
        return self.authorizer.authorize(
            callee=ask.callee,
            account=ask.account,
            card=ask.card,
            pin=ask.pin,
            ani=ask.ani,
            switch=ask.switch,
            max_seconds=ask.max_seconds,
        )

    def renew(self, auth_id: str) -> Renewal:
        # Authorizer.renew(auth_id) is being added to rater/accounts/authorize.py; its answer is
        # read by attribute so wiring it needs no change here
        method = getattr(self.authorizer, "renew", None)
        if method is None:
            raise NotWired("renewing a reservation needs Authorizer.renew, not on this version")
        answer: Any = method(auth_id)
        return Renewal(auth_id, answer.expires_at, getattr(answer, "max_seconds", None))

    def release(self, auth_id: str) -> None:
        method = getattr(self.authorizer, "release", None)
        if method is None:
            raise NotWired("releasing a reservation needs Authorizer.release, not on this version")
        method(auth_id)

    def card_balance(self, number: str, pin: str) -> CardBalance:
        try:
            check = self.accounts.verify_pin(number, pin)  # counts wrong PINs, locks the card
            if check.locked_until is not None:
                return CardBalance(
                    False,
                    Reason.CARD_LOCKED,
                    f"card {number}: locked after wrong PINs until "
                    f"{check.locked_until:%Y-%m-%d %H:%M:%S} UTC",
                    number,
                )
            if not check.ok:
                return CardBalance(False, Reason.WRONG_PIN, f"card {number}: wrong PIN", number)
            card = self.accounts.get_card(number)
            reseller = self.accounts.get_reseller(card.reseller_id)
        except NotFound as error:
            return CardBalance(False, Reason.UNKNOWN_CARD, str(error), number)
        _, holds = self._holds(keys.reservations(card.reseller_id, "k", number))
        return CardBalance(
            True,
            Reason.OK,
            f"card {number}",
            number,
            status=card.status,
            currency=reseller.currency,
            balance=card.balance,
            available=card.balance - sum(h.amount for h in holds),
            expires_at=card.expires,
        )

    def account(self, account_id: str) -> AccountView:
        customer = self.accounts.get_customer(account_id)
        reseller = self.accounts.get_reseller(customer.reseller_id)
        _, holds = self._holds(keys.reservations(reseller.reseller_id, "c", account_id))
        return AccountView(
            account=customer.customer_id,
            name=customer.name,
            reseller=reseller.reseller_id,
            currency=reseller.currency,
            status=customer.status,
            balance=customer.balance,
            available=customer.balance - sum(h.amount for h in holds),
            holds=holds,
        )

    def _holds(self, key: str) -> tuple[int, tuple[Hold, ...]]:
        """The server's now (epoch s) and the live reservations in one rsv hash."""
        seconds, _ = self.redis.time()
        raw = self.redis.hgetall(key)
        holds = []
        for auth_id, value in sorted(raw.items()):
            amount, until = value.decode().split(":")
            if int(until) > seconds:
                holds.append(
                    Hold(auth_id.decode(), int(amount), datetime.fromtimestamp(int(until), UTC))
                )
        return int(seconds), tuple(holds)


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""
