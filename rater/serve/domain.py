"""The account calls the HTTP service makes, behind one small interface.

Endpoints talk to `CallControl` only; `AuthorizerControl` implements it over
rater.accounts.authorize.Authorizer (the same object `rater authorize` uses, so the rules are
the same: authorize, renew, release, the PIN gate with its limits per card, caller and switch)
and rater.accounts.api.Accounts.

Rates: the Authorizer's default RateBook reads the tariff store's generation counter on every
authorization; the service's reads it at most once a second (TariffLoader's
check_interval_ms), so a new tariff version reaches the service within a second and an
authorization makes one Redis round trip less.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from rater.accounts.answers import CARD_OR_PIN_MESSAGE, Authorization, Reason
from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer
from rater.accounts.model import Level
from rater.accounts.rates import RateBook
from rater.accounts.reservations import Hold
from rater.errors import NotFound
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.loader import TariffLoader
from rater.tariffs.store import TariffStore

#: how often the service looks at the tariff store's generation counter
RATES_CHECK_MS = 1000


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
    ok: bool  # the card exists and its PIN was accepted
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

    def reseller_of(self, *, account: str | None = None, card: str | None = None) -> str | None:
        """The reseller id of the account or card named, or None when it does not exist."""

    def reseller_of_auth(self, auth_id: str) -> str | None:
        """The reseller whose credit a live reservation holds, or None (unknown, ended)."""

    def authorize(self, ask: AuthorizeAsk, scope: Callable[[str], bool]) -> Authorization:
        """OutOfScope (rater/accounts/authorize.py) when the payer's reseller is not one
        `scope` admits, before anything is counted or held."""

    def renew(self, auth_id: str, reseller_id: str | None = None) -> Authorization: ...

    def release(self, auth_id: str, reseller_id: str | None = None) -> None:
        """Drop the reservation; nothing (and no error) when there is none any more."""

    def card_balance(self, number: str, pin: str, *, switch: str) -> CardBalance: ...

    def account(self, account_id: str) -> AccountView:
        """NotFound when the account does not exist."""


def polled_rates(client: RedisLike, settings: Settings) -> RateBook:
    """A RateBook whose tariffs are checked for changes at most every RATES_CHECK_MS."""
    store = TariffStore(client, settings, clickhouse=False)
    return RateBook(TariffLoader(store, check_interval_ms=RATES_CHECK_MS).compiled)


class AuthorizerControl:
    """CallControl over the Authorizer and Accounts of one Redis client.

    The payer's reseller is checked against the switch's scope inside the Authorizer, right
    after it found the payer (its owner look-ups are remembered per process,
    rater/accounts/payers.py), so the scope check adds no wait of its own."""

    def __init__(self, settings: Settings, client: RedisLike) -> None:
        self.settings = settings
        self.redis: Any = client
        self.accounts = Accounts(settings, client)
        self.authorizer = Authorizer(
            settings, client, accounts=self.accounts, rates=polled_rates(client, settings)
        )

    def reseller_of(self, *, account: str | None = None, card: str | None = None) -> str | None:
        payers = self.authorizer.payers
        if account is not None:
            return payers.reseller_of_customer(account)
        if card is not None:
            owner = payers.owner_of_card(card)
            return owner[0] if owner else None
        return None

    def reseller_of_auth(self, auth_id: str) -> str | None:
        return self.authorizer.reservations.reseller_of(auth_id)

    def authorize(self, ask: AuthorizeAsk, scope: Callable[[str], bool]) -> Authorization:
        return self.authorizer.authorize(
            callee=ask.callee,
            account=ask.account,
            card=ask.card,
            pin=ask.pin,
            ani=ask.ani,
            caller=ask.caller,
            switch=ask.switch,
            max_seconds=ask.max_seconds,
            scope=scope,
        )

    def renew(self, auth_id: str, reseller_id: str | None = None) -> Authorization:
        return self.authorizer.renew(auth_id, reseller_id)

    def release(self, auth_id: str, reseller_id: str | None = None) -> None:
        self.authorizer.release(auth_id, reseller_id)

    def card_balance(self, number: str, pin: str, *, switch: str) -> CardBalance:
        # the authorization's own gate: wrong PINs count per card and per switch, and every
        # card-or-PIN problem (unknown, wrong, locked, blocked) is the same answer
        refused = CardBalance(False, Reason.CARD_OR_PIN, CARD_OR_PIN_MESSAGE, number)
        if not self.authorizer.pin_gate.check(number, pin, caller=None, switch=switch):
            return refused
        try:
            card = self.accounts.get_card(number)
            reseller = self.accounts.get_reseller(card.reseller_id)
        except NotFound:
            return refused
        holds = self.accounts.holds(Level.CARD, number)
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
        holds = tuple(self.accounts.holds(Level.CUSTOMER, account_id))
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


class LazyControl:
    """A CallControl made on first use: building one reads Redis (the tariff store moves old
    keys on start), so a service started while Redis is down still starts, /readyz says why,
    and money endpoints answer 503 until Redis answers."""

    def __init__(self, build: Callable[[], CallControl]) -> None:
        self._build = build
        self._control: CallControl | None = None

    def _get(self) -> CallControl:
        if self._control is None:
            self._control = self._build()
        return self._control

    def reseller_of(self, *, account: str | None = None, card: str | None = None) -> str | None:
        return self._get().reseller_of(account=account, card=card)

    def reseller_of_auth(self, auth_id: str) -> str | None:
        return self._get().reseller_of_auth(auth_id)

    def authorize(self, ask: AuthorizeAsk, scope: Callable[[str], bool]) -> Authorization:
        return self._get().authorize(ask, scope)

    def renew(self, auth_id: str, reseller_id: str | None = None) -> Authorization:
        return self._get().renew(auth_id, reseller_id)

    def release(self, auth_id: str, reseller_id: str | None = None) -> None:
        self._get().release(auth_id, reseller_id)

    def card_balance(self, number: str, pin: str, *, switch: str) -> CardBalance:
        return self._get().card_balance(number, pin, switch=switch)

    def account(self, account_id: str) -> AccountView:
        return self._get().account(account_id)
