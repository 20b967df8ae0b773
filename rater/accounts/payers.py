"""Who pays for a call and what each level has left, read in one wait (docs/SERVE.md, "Speed").

`Snapshot` is a payer's reseller, customer and card (None for an account call) with, per level,
the balance less the live reservations and their number: everything authorize computes from.
`Payers.queue` adds its reads to a RoundTrip the caller sends with other commands (the PIN
check of a card, the switch generation), `Payers.snapshot` reads them back.

Owners are remembered per process: the reseller of a customer and the owner of a card never
change once created (docs/DESIGN.md section 1: ids are unique in the deployment and a card
stays with its customer), so a known payer costs no look-up. An owner remembered wrongly (an
account whose creation was rolled back) shows as a missing hash and is looked up again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rater.accounts.core import AccountStore
from rater.accounts.model import Card, Customer, Reseller
from rater.accounts.reservations import Reservations, Totals
from rater.accounts.roundtrip import RoundTrip
from rater.errors import NotFound
from rater.redis import keys

#: owners remembered per process before the memory is started afresh (about 200 bytes each)
OWNERS_KEPT = 200_000

#: per level: (level, account hash, reservation totals, reservation expiry index)
_PayerKeys = tuple[tuple[str, str, str, str], ...]


@dataclass(frozen=True)
class Snapshot:
    reseller: Reseller
    customer: Customer
    card: Card | None
    available: dict[str, int]  # card, customer, reseller: balance less live reservations
    calls: dict[str, int]  # live reservations (card: 0 for a card-less call)


@dataclass(frozen=True)
class Pending:
    """The reply indices of one payer's queued reads."""

    reseller_id: str
    customer_id: str
    card_number: str
    hashes: dict[str, int]  # level -> HGETALL of its account
    totals: dict[str, tuple[int, int]]  # level -> (totals, expired) of its reservations


class Payers:
    """Owner look-ups with memory, and the snapshot reads; see the module doc."""

    def __init__(self, store: AccountStore, reservations: Reservations) -> None:
        self.store = store
        self.reservations = reservations
        self._customers: dict[str, str] = {}  # customer -> reseller
        self._cards: dict[str, tuple[str, str]] = {}  # card -> (reseller, customer)
        self._built: dict[tuple[str, str, str], _PayerKeys] = {}

    # ---------------------------------------------------------------- owners
    def reseller_of_customer(self, customer_id: str) -> str | None:
        found = self._customers.get(customer_id)
        if found is None:
            raw = self.store.redis.get(keys.account_index(customer_id))
            if raw is None:
                return None
            found = self.remember_customer(customer_id, raw)
        return found

    def remember_customer(self, customer_id: str, raw: bytes) -> str:
        if len(self._customers) >= OWNERS_KEPT:
            self._customers.clear()
        found = self._customers[customer_id] = raw.decode()
        return found

    def known_card(self, number: str) -> tuple[str, str] | None:
        return self._cards.get(number)

    def owner_of_card(self, number: str) -> tuple[str, str] | None:
        found = self._cards.get(number)
        if found is None:
            found = self.remember_card(number, self.store.redis.get(keys.card_index(number)))
        return found

    def remember_card(self, number: str, raw: bytes | None) -> tuple[str, str] | None:
        """The owner from a `card:<number>` reply (None: no such card, not remembered)."""
        if raw is None:
            return None
        reseller_id, customer_id = raw.decode().split(":", 1)
        if len(self._cards) >= OWNERS_KEPT:
            self._cards.clear()
        found = self._cards[number] = (reseller_id, customer_id)
        return found

    def forget(self, customer_id: str, card_number: str = "") -> None:
        self._customers.pop(customer_id, None)
        self._cards.pop(card_number, None)

    # ---------------------------------------------------------------- snapshot
    def queue(self, rt: RoundTrip, reseller_id: str, customer_id: str, card_number: str) -> Pending:
        """Queue the reads of a payer: account hashes and reservation totals of each level."""
        now = int(time.time())
        hashes, totals = {}, {}
        for level, account, sums, expiry in self._keys(reseller_id, customer_id, card_number):
            hashes[level] = rt.command("HGETALL", account)
            totals[level] = (rt.command("HMGET", sums, "held", "calls"),
                             rt.command("ZRANGEBYSCORE", expiry, "-inf", now))  # fmt: skip
        return Pending(reseller_id, customer_id, card_number, hashes, totals)

    def _keys(self, reseller_id: str, customer_id: str, card_number: str) -> _PayerKeys:
        """(level, account hash, totals, expiry index) per level, built once per payer and
        process: key names are pure functions of the ids, and building one takes about 3 us
        (timeit): some 20 us of an authorization's 250-350 us of CPU."""
        wanted = (reseller_id, customer_id, card_number)
        found = self._built.get(wanted)
        if found is None:
            levels = [("r", keys.reseller(reseller_id), reseller_id),
                      ("c", keys.customer(reseller_id, customer_id), customer_id)]  # fmt: skip
            if card_number:
                levels.append(("k", keys.card(reseller_id, card_number), card_number))
            found = tuple(
                (level, account, keys.reservation_totals(reseller_id, level, account_id),
                 keys.reservation_expiry(reseller_id, level, account_id))
                for level, account, account_id in levels
            )  # fmt: skip
            if len(self._built) >= OWNERS_KEPT:
                self._built.clear()
            self._built[wanted] = found
        return found

    def snapshot(self, replies: list[Any], pending: Pending) -> Snapshot:
        """The payer from its replies; NotFound naming the first level that does not exist."""
        fields = {level: replies[at] for level, at in pending.hashes.items()}
        if not fields["c"]:
            raise NotFound(f"customer {pending.customer_id!r} does not exist")
        if not fields["r"]:
            raise NotFound(f"reseller {pending.reseller_id!r} does not exist")
        if pending.card_number and not fields["k"]:
            raise NotFound(f"card {pending.card_number} does not exist")
        live = self.reservations.live(
            pending.reseller_id,
            {
                (level, _account(pending, level)): Reservations.totals(replies, at)
                for level, at in pending.totals.items()
            },
        )
        reseller = Reseller.from_hash(pending.reseller_id, fields["r"])
        customer = Customer.from_hash(pending.customer_id, fields["c"])
        card = Card.from_hash(pending.card_number, fields["k"], ()) if pending.card_number else None
        balances = {"r": reseller.credit, "c": customer.balance, "k": card.balance if card else 0}
        available, calls = {"card": 0}, {"card": 0}
        for level, name in (("r", "reseller"), ("c", "customer"), ("k", "card")):
            totals = live.get(level, Totals(0, 0, ()))
            if level in live:
                available[name] = balances[level] - totals.held
                calls[name] = totals.calls
        return Snapshot(reseller, customer, card, available, calls)

    def read(self, reseller_id: str, customer_id: str, card_number: str = "") -> Snapshot:
        """A snapshot in a wait of its own (a second try after another call took the money)."""
        rt = RoundTrip(self.store.redis)
        pending = self.queue(rt, reseller_id, customer_id, card_number)
        return self.snapshot(rt.run(), pending)


def _account(pending: Pending, level: str) -> str:
    return {"r": pending.reseller_id, "c": pending.customer_id, "k": pending.card_number}[level]
