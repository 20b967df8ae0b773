"""What authorization answers a switch: allowed or refused, with a reason and the seconds.

Refusals follow docs/DESIGN.md section 1: blocked, empty, exhausted or expired card, ANI off
under the threshold, customer or reseller below zero. Card numbers and PINs get one answer,
CARD_OR_PIN, whether the number is unknown, the PIN wrong, or the card locked or blocked after
wrong PINs: a different answer would tell a guesser which numbers exist (the real reason goes
to the log and rater_pin_refusals_total).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from rater.accounts.model import Card, Customer, Reseller
from rater.money import from_micro


class Reason(StrEnum):
    OK = "ok"
    UNKNOWN_ACCOUNT = "unknown_account"
    CARDS_ONLY = "cards_only"  # a card-batch customer calls only through its disposable cards
    CARD_OR_PIN = "card_or_pin"  # unknown card, wrong PIN, or locked/blocked by wrong PINs
    UNKNOWN_CARD = "unknown_card"  # a card that vanished between look-up and reservation
    UNKNOWN_ANI = "unknown_ani"
    ANI_DISABLED = "ani_disabled"  # the card is under its reseller's ANI threshold
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
    TOO_MANY_CALLS = "too_many_calls"  # settings.max_calls_per_card / _per_account reached
    UNKNOWN_AUTH = "unknown_auth"  # renew: no live reservation has that auth_id


#: the one answer for every card-or-PIN problem
CARD_OR_PIN_MESSAGE = "card number or PIN not accepted"


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
    max_seconds: int = 0  # granted (for a renewal: in all): the switch hangs up after this
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


def refuse(reason: Reason, message: str, **fields: Any) -> Authorization:
    return Authorization(False, reason, message, **fields)


def card_or_pin(card: str) -> Authorization:
    """The same refusal, field for field, for every card-or-PIN problem."""
    return Authorization(False, Reason.CARD_OR_PIN, CARD_OR_PIN_MESSAGE, card_number=card)


def state_refusal(
    reseller: Reseller, customer: Customer, card: Card | None, now: datetime
) -> Authorization | None:
    """A refusal when an account may not start a call now, else None."""
    ids = {
        "customer_id": customer.customer_id,
        "reseller_id": reseller.reseller_id,
        "card_number": card.number if card else "",
    }
    if card is not None:
        if card.blocked:
            return refuse(Reason.CARD_BLOCKED, f"card {card.number} is blocked", **ids)
        if card.state == "exhausted":
            return refuse(
                Reason.CARD_EXHAUSTED,
                f"card {card.number} is used up (disposable); issue a new card",
                **ids,
            )
        if card.state == "empty" or card.balance <= 0:
            return refuse(Reason.CARD_EMPTY, f"card {card.number} is empty; top it up", **ids)
        if card.expired(now):
            return refuse(
                Reason.CARD_EXPIRED, f"card {card.number} expired on {card.expires:%Y-%m-%d}", **ids
            )
    if customer.blocked:
        return refuse(Reason.CUSTOMER_BLOCKED, f"customer {customer.customer_id} is blocked", **ids)
    if customer.state == "negative" or customer.balance < 0:
        return refuse(
            Reason.CUSTOMER_NEGATIVE,
            f"customer {customer.customer_id} is below zero "
            f"({from_micro(customer.balance, 2)}): no new calls until a top-up",
            **ids,
        )
    if reseller.blocked:
        return refuse(Reason.RESELLER_BLOCKED, f"reseller {reseller.reseller_id} is blocked", **ids)
    if reseller.state == "negative" or reseller.credit < 0:
        return refuse(
            Reason.RESELLER_NEGATIVE,
            f"reseller {reseller.reseller_id} is below zero: no new calls",
            **ids,
        )
    return None


#: reserve.lua's (level, state) refusals
_STATE_REASONS = {
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

LEVEL_NAMES = {"r": "reseller", "c": "customer", "k": "card"}


def state_reason(level: str, state: str) -> Reason:
    return _STATE_REASONS.get((level, state), Reason.CUSTOMER_BLOCKED)
