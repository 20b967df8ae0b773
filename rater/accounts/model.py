"""Resellers, customers, cards and what the API returns about them.

Money is integer micro-units (1 EUR = 1,000,000); the `*_str` properties give Decimal strings
for people. Statuses:

- reseller / customer `status`: ``active``, ``negative`` (balance below zero: blocked for new
  calls until a top-up lifts it to >= 0), or ``blocked`` (by an operator).
- card `status`: ``active``, ``empty`` (a normal card at or below zero; active again after a
  top-up), ``exhausted`` (a disposable card at or below zero; final), or ``blocked``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from rater.money import from_micro


class Level(StrEnum):
    """Which balance an adjustment or reservation is about."""

    RESELLER = "reseller"
    CUSTOMER = "customer"
    CARD = "card"

    @property
    def code(self) -> str:
        """One letter used in keys and scripts."""
        return {Level.RESELLER: "r", Level.CUSTOMER: "c", Level.CARD: "k"}[self]


class CustomerKind(StrEnum):
    NORMAL = "normal"  # a SIP account, possibly with calling cards as spending limits
    CARD_BATCH = "card_batch"  # a "Calling card user batch N" customer holding disposable cards


def _text(fields: dict[bytes, bytes], name: str, default: str = "") -> str:
    raw = fields.get(name.encode())
    return raw.decode() if raw is not None else default


def _int(fields: dict[bytes, bytes], name: str, default: int = 0) -> int:
    raw = fields.get(name.encode())
    return int(raw) if raw not in (None, b"") else default


def _epoch(value: int) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value > 0 else None


@dataclass(frozen=True)
class Reseller:
    reseller_id: str
    name: str
    credit: int  # micro-units left; debited by the buy cost of every call
    currency: str
    buy_tariff: str
    ani_threshold: int  # micro-units; cards below it lose ANI recognition
    timezone: str
    state: str  # active | negative
    blocked: bool  # by an operator

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else self.state

    @property
    def credit_str(self) -> str:
        return from_micro(self.credit)

    @classmethod
    def from_hash(cls, reseller_id: str, fields: dict[bytes, bytes]) -> Reseller:
        return cls(
            reseller_id=reseller_id,
            name=_text(fields, "name"),
            credit=_int(fields, "bal"),
            currency=_text(fields, "cur", "EUR"),
            buy_tariff=_text(fields, "buy"),
            ani_threshold=_int(fields, "ani", 1_000_000),
            timezone=_text(fields, "tz", "UTC"),
            state=_text(fields, "st", "active"),
            blocked=_int(fields, "blk") == 1,
        )


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    reseller_id: str
    balance: int  # micro-units (SIP credit)
    tariff: str  # sell tariff table name
    kind: CustomerKind
    state: str  # active | negative
    blocked: bool

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else self.state

    @property
    def balance_str(self) -> str:
        return from_micro(self.balance)

    @classmethod
    def from_hash(cls, customer_id: str, fields: dict[bytes, bytes]) -> Customer:
        return cls(
            customer_id=customer_id,
            name=_text(fields, "name"),
            reseller_id=_text(fields, "res"),
            balance=_int(fields, "bal"),
            tariff=_text(fields, "tariff"),
            kind=CustomerKind(_text(fields, "kind", "normal")),
            state=_text(fields, "st", "active"),
            blocked=_int(fields, "blk") == 1,
        )


@dataclass(frozen=True)
class Card:
    number: str
    customer_id: str
    reseller_id: str
    balance: int  # micro-units: a spending limit inside the customer's balance
    value: int  # face value at creation
    disposable: bool
    state: str  # active | empty | exhausted
    blocked: bool
    ani_on: bool  # ANI recognition answers for this card
    expires: datetime | None
    batch_id: str
    anis: tuple[str, ...]
    pin_failures: int  # wrong PINs since the last right one
    locked_until: datetime | None  # PIN locked until then (even the right PIN is refused)
    pin_blocked: bool = False  # too many wrong PINs: only `rater card unblock` lifts it
    pin_key: str = ""  # id of the key its PIN's HMAC was made with ('' before key ids)

    @property
    def status(self) -> str:
        return "blocked" if self.blocked else self.state

    @property
    def balance_str(self) -> str:
        return from_micro(self.balance)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def pin_state(self, now: datetime) -> str:
        """ok | locked | blocked (by wrong PINs; an operator's block is `blocked`)."""
        if self.pin_blocked:
            return "blocked"
        return "locked" if self.locked(now) else "ok"

    @classmethod
    def from_hash(cls, number: str, fields: dict[bytes, bytes], anis: tuple[str, ...]) -> Card:
        return cls(
            number=number,
            customer_id=_text(fields, "cust"),
            reseller_id=_text(fields, "res"),
            balance=_int(fields, "bal"),
            value=_int(fields, "value"),
            disposable=_int(fields, "disp") == 1,
            state=_text(fields, "st", "active"),
            blocked=_int(fields, "blk") == 1,
            ani_on=_int(fields, "anion") == 1,
            expires=_epoch(_int(fields, "exp")),
            batch_id=_text(fields, "batch"),
            anis=anis,
            pin_failures=_int(fields, "pinfail"),
            locked_until=_epoch(_int(fields, "pinlock")),
            pin_blocked=_int(fields, "pinblk") == 1,
            pin_key=_text(fields, "pinkey"),
        )


@dataclass(frozen=True)
class IssuedCard:
    """A card as handed out once at creation: the clear PIN is not kept anywhere."""

    number: str
    pin: str
    value: int


@dataclass(frozen=True)
class CardBatch:
    batch_id: str
    customer_id: str
    reseller_id: str
    disposable: bool
    value: int  # face value of each card, micro-units
    cards: tuple[IssuedCard, ...]
    funded: int  # customer credit issued for the batch (count x value for disposable, else 0)
    expires: datetime | None


@dataclass(frozen=True)
class Coverage:
    """Whether a reseller's credit covers what it has issued below it (docs/DESIGN.md section 1)."""

    reseller_id: str
    credit: int
    customers_total: int  # sum of the customers' positive balances
    card_value_issued: int  # balances of normal cards: limits inside customer balances, shown only
    covered: bool
    shortfall: int  # customers_total - credit when not covered, else 0

    @classmethod
    def of(cls, reseller: Reseller, customers: list[Customer], card_value: int) -> Coverage:
        """The rule: the credit covers the sum of the customers' positive balances; the value
        on normal cards (limits inside those balances) is shown, not added."""
        return cls.of_total(reseller, sum(max(c.balance, 0) for c in customers), card_value)

    @classmethod
    def of_total(cls, reseller: Reseller, total: int, card_value: int) -> Coverage:
        """The same from the sum itself (rater/redis/lua/standing.lua computes it)."""
        covered = reseller.credit >= total
        return cls(
            reseller_id=reseller.reseller_id,
            credit=reseller.credit,
            customers_total=total,
            card_value_issued=card_value,
            covered=covered,
            shortfall=0 if covered else total - reseller.credit,
        )


@dataclass(frozen=True)
class Standing:
    """A reseller's credit and coverage with its customers at or below zero (tip 2), read in
    one script call (Resellers.standing)."""

    reseller: Reseller
    coverage: Coverage  # card_value_issued 0: the cards are not read here
    customers: int
    stopped: int  # customers at or below zero
    lowest: tuple[tuple[str, int], ...]  # (customer id, balance) of the lowest of those
