"""The account model's Python API: resellers, customers, cards, ANI, top-ups, coverage.

Redis holds the balances (docs/REDIS_KEYS.md); every credit, top-up and adjustment is a signed
addition with a reason, also written to the ClickHouse ledger. Changes that issue customer
credit run in one Lua script with the coverage check, so two top-ups at once cannot both slip
under the reseller's credit.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rater.accounts.cards import new_card_numbers, new_pins, pin_hash, pin_hashes
from rater.accounts.ledger import CardIssues, LedgerEntry, LedgerWriter
from rater.accounts.model import (
    Card,
    CardBatch,
    Coverage,
    Customer,
    CustomerKind,
    IssuedCard,
    Level,
    Reseller,
)
from rater.errors import (
    AccountError,
    CoverageError,
    DisposableCardError,
    NotFound,
    RaterError,
)
from rater.logs import get_logger
from rater.money import display, from_micro, to_micro
from rater.redis import cluster as debit_cluster
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.redis.scripts import Script
from rater.settings import Settings
from rater.tariffs.model import TariffTable
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

Amount = Decimal | str | int
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_BATCH = 100_000
#: cards per create_cards.lua call: about 0.3 s of Redis time each, so rating goes on between
CARD_CHUNK = 5_000


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    failures: int  # wrong PINs in a row so far (0 after a right one)
    locked_until: datetime | None  # set when the card is locked


def _amount(value: Amount, what: str) -> int:
    """Decimal strings and Decimals are currency units; ints are taken as micro-units."""
    if isinstance(value, bool):
        raise AccountError(f"{what}: {value!r} is not an amount")
    if isinstance(value, int):
        return value
    return to_micro(value)


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise AccountError("a reason is required for every balance change")
    return reason.strip()


@dataclass
class _NewBatch:
    """A card batch being created: what every chunk call needs (numbers may be redrawn)."""

    reseller_id: str
    customer_id: str
    batch_id: str
    value: int
    disposable: bool
    expires: int  # epoch seconds, 0 for none
    numbers: list[str]
    pins: list[str]
    hashes: list[str]


class Accounts:
    """Resellers, customers and cards in Redis; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        redis_client: RedisLike | None = None,
        ledger: LedgerWriter | None = None,
        *,
        actor: str = "",
    ) -> None:
        self.settings = settings
        # typed Any: redis-py's stubs answer bytes | str; this client is always bytes
        self.redis: Any = redis_client if redis_client is not None else _connect(settings)
        self.ledger = ledger if ledger is not None else LedgerWriter(settings, self.redis)
        self.actor = actor
        #: Redis Cluster: scripts run per reseller slot (rater/redis/cluster.py)
        self.cluster = debit_cluster.is_cluster(self.redis)
        self._adjust = Script(self.redis, "adjust")
        self._create_cards = Script(self.redis, "create_cards")
        self._pin = Script(self.redis, "pin")

    # ================================================================ resellers
    def create_reseller(
        self,
        reseller_id: str,
        name: str,
        *,
        credit: Amount,
        buy_tariff: str,
        currency: str = "EUR",
        ani_threshold: Amount = "1.00",
        timezone: str = "UTC",
    ) -> Reseller:
        keys.check_id("reseller", reseller_id)
        if not _CURRENCY.match(currency):
            raise AccountError(f"currency {currency!r} is not an ISO 4217 code like EUR")
        credit_micro = _amount(credit, "credit")
        threshold = _amount(ani_threshold, "ani_threshold")
        if threshold < 0:
            raise AccountError("the ANI threshold cannot be negative")
        self._check_tariff(buy_tariff, currency)
        key = keys.reseller(reseller_id)
        if not self.redis.hsetnx(key, "name", name):
            raise AccountError(f"reseller {reseller_id!r} already exists")
        self.redis.hset(
            key,
            mapping={
                "bal": credit_micro,
                "cur": currency,
                "buy": buy_tariff,
                "ani": threshold,
                "tz": timezone,
                "st": "active" if credit_micro >= 0 else "negative",
                "blk": 0,
                "created": int(datetime.now(UTC).timestamp()),
            },
        )
        self.redis.sadd(keys.RESELLERS, reseller_id)
        self._bump()
        if credit_micro:
            entry = LedgerEntry(
                Level.RESELLER.value,
                reseller_id,
                "",
                "",
                "credit",
                credit_micro,
                currency,
                "initial credit",
                actor=self.actor,
            )
            self.ledger.write([entry])  # fmt: skip
        return self.get_reseller(reseller_id)

    def credit_reseller(self, reseller_id: str, amount: Amount, reason: str) -> Reseller:
        """Add credit (or correct it downwards, never below what the customers hold)."""
        micro = _amount(amount, "amount")
        self._change(Level.RESELLER, reseller_id, micro, _reason(reason), "credit")
        return self.get_reseller(reseller_id)

    def get_reseller(self, reseller_id: str) -> Reseller:
        fields = self.redis.hgetall(keys.reseller(reseller_id))
        if not fields:
            raise NotFound(f"reseller {reseller_id!r} does not exist")
        return Reseller.from_hash(reseller_id, fields)

    def list_resellers(self) -> list[Reseller]:
        ids = sorted(m.decode() for m in self.redis.smembers(keys.RESELLERS))
        return [self.get_reseller(i) for i in ids]

    def coverage(self, reseller_id: str) -> Coverage:
        reseller = self.get_reseller(reseller_id)
        customers = self.list_customers(reseller_id)
        total = sum(max(c.balance, 0) for c in customers)
        cards_total = 0
        for customer in customers:
            if customer.kind is CustomerKind.NORMAL:
                cards_total += sum(max(k.balance, 0) for k in self.list_cards(customer.customer_id))
        covered = reseller.credit >= total
        return Coverage(
            reseller_id=reseller_id,
            credit=reseller.credit,
            customers_total=total,
            card_value_issued=cards_total,
            covered=covered,
            shortfall=0 if covered else total - reseller.credit,
        )

    # ================================================================ customers
    def create_customer(
        self,
        customer_id: str,
        name: str,
        *,
        reseller_id: str,
        tariff: str,
        kind: CustomerKind | str = CustomerKind.NORMAL,
        balance: Amount = "0",
    ) -> Customer:
        keys.check_id("customer", customer_id)
        kind = CustomerKind(kind)
        reseller = self.get_reseller(reseller_id)
        self._check_tariff(tariff, reseller.currency)
        opening = _amount(balance, "balance")
        if opening < 0:
            raise AccountError("an opening balance cannot be negative")
        if not self.redis.set(keys.account_index(customer_id), reseller_id, nx=True):
            raise AccountError(f"customer {customer_id!r} already exists")
        key = keys.customer(reseller_id, customer_id)
        self.redis.hset(
            key,
            mapping={
                "name": name,
                "res": reseller_id,
                "bal": 0,
                "tariff": tariff,
                "kind": kind.value,
                "st": "active",
                "blk": 0,
                "created": int(datetime.now(UTC).timestamp()),
            },
        )
        self.redis.sadd(keys.customers_of(reseller_id), customer_id)
        if opening:
            try:
                self._change(Level.CUSTOMER, customer_id, opening, "opening balance", "topup")
            except CoverageError:
                # nothing of a refused customer stays behind
                self.redis.srem(keys.customers_of(reseller_id), customer_id)
                self.redis.delete(key, keys.account_index(customer_id))
                raise
        self._bump()
        return self.get_customer(customer_id)

    def topup_customer(self, customer_id: str, amount: Amount, reason: str) -> Customer:
        """Issue customer credit; CoverageError naming the shortfall when not covered."""
        micro = _amount(amount, "amount")
        if micro <= 0:
            raise AccountError(f"a top-up must be positive, not {from_micro(micro)}")
        self._change(Level.CUSTOMER, customer_id, micro, _reason(reason), "topup")
        return self.get_customer(customer_id)

    def get_customer(self, customer_id: str) -> Customer:
        reseller_id = self._reseller_of_customer(customer_id)
        fields = self.redis.hgetall(keys.customer(reseller_id, customer_id))
        if not fields:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return Customer.from_hash(customer_id, fields)

    def list_customers(self, reseller_id: str) -> list[Customer]:
        ids = sorted(m.decode() for m in self.redis.smembers(keys.customers_of(reseller_id)))
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(keys.customer(reseller_id, cid))
        return [Customer.from_hash(cid, f) for cid, f in zip(ids, pipe.execute(), strict=True) if f]

    # ================================================================ cards
    def create_cards(
        self,
        customer_id: str,
        *,
        count: int,
        value: Amount,
        disposable: bool = False,
        expires: datetime | None = None,
        batch_id: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> CardBatch:
        """Issue `count` cards of `value` each; the clear PINs are in the result only.

        A disposable batch funds its card-batch customer with count x value (coverage enforced);
        normal cards are spending limits inside their SIP customer's balance (nothing funded).

        The funding (with the coverage check) is one script call, made first; the cards follow
        in chunks of CARD_CHUNK per call, so Redis serves rating between them and no call
        outlasts a client's socket timeout. `progress(n)` is called after each chunk with the
        number of cards it created. Should a chunk fail, the cards already created are blocked
        (their PINs would be lost with the exception), the funding is taken back, and the
        error says so.
        """
        customer = self.get_customer(customer_id)
        reseller = self.get_reseller(customer.reseller_id)
        if not 1 <= count <= MAX_BATCH:
            raise AccountError(f"count must be 1..{MAX_BATCH}, not {count}")
        micro = _amount(value, "value")
        if micro < 0 or (disposable and micro == 0):
            raise AccountError(f"card value {from_micro(micro)} must be positive")
        if disposable and customer.kind is not CustomerKind.CARD_BATCH:
            raise AccountError(
                f"disposable cards belong on a card-batch customer (kind card_batch); "
                f"{customer_id!r} is a {customer.kind.value} SIP account"
            )
        if not disposable and customer.kind is CustomerKind.CARD_BATCH:
            raise AccountError(
                f"customer {customer_id!r} is a card batch: its cards are disposable"
            )
        batch = batch_id or f"{customer_id}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        keys.check_id("batch", batch)
        if self.redis.exists(keys.batch_index(batch)):
            raise AccountError(f"batch {batch!r} already exists")
        exp = int(expires.timestamp()) if expires is not None else 0
        fund = count * micro if disposable else 0
        numbers = new_card_numbers(self.settings, count)
        pins = new_pins(self.settings, count)
        made = _NewBatch(
            customer.reseller_id, customer_id, batch, micro, disposable, exp,
            numbers, pins, pin_hashes(self.settings, numbers, pins),
        )  # fmt: skip

        # phase 1: the batch id and its funding, atomically with the coverage check
        fund_args: list[str | int] = ["fund", made.reseller_id, customer_id, batch, fund]
        if self.cluster:
            code, detail = debit_cluster.fund_card_batch(
                self.redis, self._create_cards, reseller_id=made.reseller_id,
                customer_id=customer_id, batch_id=batch, args=fund_args,
            )  # fmt: skip
        else:
            code, detail = self._create_cards([], fund_args)
        if code == 1:
            raise NotFound(f"customer {customer_id!r} does not exist")
        if code == 2:
            raise self._coverage_error(reseller, int(detail), fund)
        if code == 6:
            raise AccountError(f"batch {batch!r} already exists")
        if fund:
            reason = f"disposable batch {batch}: {count} x {from_micro(micro, 2)}"
            funding = LedgerEntry(
                Level.CUSTOMER.value, made.reseller_id, customer_id, "", "batch_funding", fund,
                reseller.currency, reason, batch, self.actor,
            )  # fmt: skip
            self.ledger.write([funding])

        # phase 2: the cards, a chunk per call
        created = 0
        try:
            for first in range(0, count, CARD_CHUNK):
                last = min(first + CARD_CHUNK, count)
                self._create_card_chunk(made, first, last)
                created = last
                if progress is not None:
                    progress(last - first)
        except Exception as error:
            failure = self._abandon_batch(made, created, fund, reseller.currency, error)
            if failure is error:
                raise
            raise failure from error
        self.ledger.write([], cards=self._card_issues(made, made.numbers, reseller.currency))
        return CardBatch(
            batch_id=batch,
            customer_id=customer_id,
            reseller_id=made.reseller_id,
            disposable=disposable,
            value=micro,
            cards=tuple(IssuedCard(n, p, micro) for n, p in zip(numbers, pins, strict=True)),
            funded=fund,
            expires=expires,
        )

    def _card_issues(self, made: _NewBatch, numbers: list[str], currency: str) -> CardIssues:
        """The `card_issue` ledger entries (each card's opening balance) of a batch's cards."""
        return CardIssues(
            made.reseller_id, made.customer_id, numbers, made.value, currency, "card issued",
            made.batch_id, self.actor,
        )  # fmt: skip

    def _create_card_chunk(self, made: _NewBatch, first: int, last: int) -> None:
        """Create cards made.numbers[first:last]; a number some other card already has is
        drawn again (in place, with its PIN's hash) and the chunk sent again."""
        head: list[str | int] = ["cards", made.reseller_id, made.customer_id, made.batch_id]
        head += [made.value, 1 if made.disposable else 0, made.expires]
        numbers = made.numbers
        in_batch: set[str] | None = None
        for _attempt in range(20):
            args = list(head)
            for i in range(first, last):
                args += [numbers[i], made.hashes[i]]
            if self.cluster:
                code, detail = debit_cluster.create_cards(
                    self.redis, self._create_cards, reseller_id=made.reseller_id,
                    customer_id=made.customer_id, numbers=numbers[first:last], args=args,
                )  # fmt: skip
            else:
                code, detail = self._create_cards([], args)
            if code == 0:
                return
            if code == 1:
                raise NotFound(f"customer {made.customer_id!r} does not exist")
            if code != 5:
                raise AccountError(f"create_cards answered {code} {detail!r}")
            taken = detail.decode() if isinstance(detail, bytes) else str(detail)
            in_batch = in_batch if in_batch is not None else set(numbers)
            i = numbers.index(taken, first, last)
            (fresh,) = new_card_numbers(self.settings, 1, avoid=in_batch)
            in_batch.add(fresh)
            numbers[i] = fresh
            made.hashes[i] = pin_hash(self.settings, fresh, made.pins[i])
        raise AccountError("could not draw unused card numbers; widen card_number_length")

    def _abandon_batch(
        self, made: _NewBatch, created: int, fund: int, currency: str, error: Exception
    ) -> Exception:
        """After a chunk failed: block the cards already created (nobody will get their PINs),
        record them in the ledger, and take the funding back. Returns the error to raise:
        `error` itself when the clean-up failed too on a non-RaterError (Redis away), which
        `rater cards create` answers by blocking the batch's cards itself."""
        batch, count = made.batch_id, len(made.numbers)
        numbers = made.numbers[:created]
        what = f"batch {batch}: creating the cards failed after {created} of {count}"
        try:
            if numbers:
                pipe = self.redis.pipeline(transaction=False)
                for number in numbers:
                    pipe.hset(keys.card(made.reseller_id, number), "blk", 1)
                pipe.execute()
                self._bump()
                self.ledger.write([], cards=self._card_issues(made, numbers, currency))
            if fund:
                reason = f"disposable batch {batch} failed midway: funding taken back"
                self._change(Level.CUSTOMER, made.customer_id, -fund, reason, "adjustment")
        except Exception as cleanup:
            log.error("half-made card batch not cleaned up", batch=batch, error=str(cleanup))
            if not isinstance(error, RaterError):
                return error
            return AccountError(
                f"{what} ({error}); blocking the {created} cards created failed too "
                f"({cleanup}): block the cards of batch {batch} by hand"
            )
        taken_back = f" and the funding of {from_micro(fund, 2)} was taken back" if fund else ""
        return AccountError(
            f"{what} ({type(error).__name__}: {error}); the {created} cards created are "
            f"blocked{taken_back}. Create a new batch."
        )

    def topup_card(self, card_number: str, amount: Amount, reason: str) -> Card:
        """Raise a normal card's limit; DisposableCardError for a disposable card."""
        micro = _amount(amount, "amount")
        if micro <= 0:
            raise AccountError(f"a top-up must be positive, not {from_micro(micro)}")
        card = self.get_card(card_number)
        if card.disposable:
            raise DisposableCardError(
                f"card {card_number} is disposable: it is never topped up; issue a new card"
            )
        self._change(
            Level.CARD, card_number, micro, _reason(reason), "topup", refuse_disposable=True
        )
        return self.get_card(card_number)

    def get_card(self, number: str) -> Card:
        reseller_id, _ = self._owner_of_card(number)
        key = keys.card(reseller_id, number)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(key)
        pipe.smembers(keys.card_anis(reseller_id, number))
        fields, anis = pipe.execute()
        if not fields:
            raise NotFound(f"card {number} does not exist")
        return Card.from_hash(number, fields, tuple(sorted(a.decode() for a in anis)))

    def list_cards(
        self, customer_id: str | None = None, *, batch_id: str | None = None
    ) -> list[Card]:
        if batch_id is not None:
            owner = self.redis.get(keys.batch_index(batch_id))
            if owner is None:
                raise NotFound(f"batch {batch_id!r} does not exist")
            reseller_id = owner.decode().split(":", 1)[0]
            members = self.redis.smembers(keys.batch(reseller_id, batch_id))
        elif customer_id is not None:
            reseller_id = self._reseller_of_customer(customer_id)
            members = self.redis.smembers(keys.cards_of(reseller_id, customer_id))
        else:
            raise AccountError("list_cards needs a customer id or a batch id")
        numbers = sorted(m.decode() for m in members)
        pipe = self.redis.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(keys.card(reseller_id, number))
            pipe.smembers(keys.card_anis(reseller_id, number))
        raw = pipe.execute()
        cards = []
        for i, number in enumerate(numbers):
            fields, anis = raw[2 * i], raw[2 * i + 1]
            if fields:
                cards.append(
                    Card.from_hash(number, fields, tuple(sorted(a.decode() for a in anis)))
                )
        return cards

    def block_card(self, number: str) -> Card:
        self._set_block(Level.CARD, number, True)
        return self.get_card(number)

    def unblock_card(self, number: str) -> Card:
        self._set_block(Level.CARD, number, False)
        return self.get_card(number)

    def block(self, level: Level | str, account_id: str) -> None:
        self._set_block(Level(level), account_id, True)

    def unblock(self, level: Level | str, account_id: str) -> None:
        self._set_block(Level(level), account_id, False)

    def verify_pin(self, number: str, pin: str) -> PinCheck:
        """Check a PIN; after settings.pin_max_failures wrong ones the card is locked for
        settings.pin_lock_s seconds (even the right PIN is refused meanwhile)."""
        reseller_id, _ = self._owner_of_card(number)
        code, detail = self._pin(
            [keys.card(reseller_id, number)],
            [
                pin_hash(self.settings, number, pin),
                self.settings.pin_max_failures,
                self.settings.pin_lock_s,
            ],
        )
        if code == 3:
            raise NotFound(f"card {number} does not exist")
        if code == 2:
            return PinCheck(False, 0, datetime.fromtimestamp(int(detail), UTC))
        return PinCheck(code == 0, int(detail), None)

    # ================================================================ ANI
    def add_ani(self, number: str, ani: str) -> Card:
        """Let calls from `ani` use the card without a PIN (while it holds >= the threshold)."""
        digits = normalise_ani(ani)
        card = self.get_card(number)
        if not self.redis.set(f"aniown:{digits}", number, nx=True):
            owner = self.redis.get(f"aniown:{digits}")
            if owner is not None and owner.decode() != number:
                raise AccountError(
                    f"caller number {digits} already belongs to card {owner.decode()}"
                )
        self.redis.sadd(keys.card_anis(card.reseller_id, number), digits)
        if card.ani_on:
            self.redis.set(keys.ani_index(digits), number)
        self._bump()
        return self.get_card(number)

    def remove_ani(self, number: str, ani: str) -> Card:
        digits = normalise_ani(ani)
        card = self.get_card(number)
        if not self.redis.srem(keys.card_anis(card.reseller_id, number), digits):
            raise NotFound(f"caller number {digits} is not on card {number}")
        self.redis.delete(keys.ani_index(digits), f"aniown:{digits}")
        self._bump()
        return self.get_card(number)

    def card_of_ani(self, ani: str) -> str | None:
        """The card answering for a caller number, or None (unknown, or card under threshold)."""
        raw = self.redis.get(keys.ani_index(normalise_ani(ani)))
        return raw.decode() if raw is not None else None

    # ================================================================ adjustments
    def adjust(self, level: Level | str, account_id: str, amount: Amount, reason: str) -> int:
        """A signed correction to one balance; returns the new balance (micro-units).

        Raising a customer is issuing credit (coverage enforced); lowering a reseller's credit
        below what its customers hold is refused the same way.
        """
        micro = _amount(amount, "amount")
        if micro == 0:
            raise AccountError("an adjustment of 0 changes nothing")
        return self._change(Level(level), account_id, micro, _reason(reason), "adjustment")

    # ================================================================ internals
    def _change(
        self,
        level: Level,
        account_id: str,
        micro: int,
        reason: str,
        kind: str,
        *,
        refuse_disposable: bool = False,
    ) -> int:
        if level is Level.RESELLER:
            reseller = self.get_reseller(account_id)
            customer_id, card = "", ""
        elif level is Level.CUSTOMER:
            customer = self.get_customer(account_id)
            reseller = self.get_reseller(customer.reseller_id)
            customer_id, card = account_id, ""
        else:
            reseller_id, customer_id = self._owner_of_card(account_id)
            reseller = self.get_reseller(reseller_id)
            card = account_id
        code, value = self._adjust(
            debit_cluster.route(reseller.reseller_id) if self.cluster else [],
            [
                level.code,
                reseller.reseller_id,
                account_id,
                micro,
                1,
                1 if refuse_disposable else 0,
                0 if self.cluster else 1,
            ],
        )
        if self.cluster and level is Level.CARD and code == 0:
            debit_cluster.sync_ani(self.redis, reseller.reseller_id, account_id)
        if code == 1:
            raise NotFound(f"{level.value} {account_id!r} does not exist")
        if code == 2:
            raise self._coverage_error(reseller, int(value), micro)
        if code == 3:
            raise DisposableCardError(f"card {account_id} is disposable: it is never topped up")
        if code == 4:
            raise AccountError(f"card {account_id} is exhausted for good; issue a new card")
        self.ledger.write(
            [
                LedgerEntry(
                    level.value,
                    reseller.reseller_id,
                    customer_id,
                    card,
                    kind,
                    micro,
                    reseller.currency,
                    reason,
                    actor=self.actor,
                )
            ]
        )
        log.info(
            "balance changed",
            level=level.value,
            account=account_id,
            amount=from_micro(micro),
            balance=from_micro(int(value)),
            reason=reason,
        )
        return int(value)

    def _coverage_error(self, reseller: Reseller, shortfall: int, amount: int) -> CoverageError:
        cur = reseller.currency
        return CoverageError(
            f"reseller {reseller.reseller_id!r}: its credit ({display(reseller.credit)} {cur}) "
            f"would not cover its customers' balances after this change of "
            f"{display(amount)} {cur}; shortfall {display(shortfall)} {cur}",
            shortfall,
        )

    def _set_block(self, level: Level, account_id: str, blocked: bool) -> None:
        """An operator's block: refused by authorization; calls already made are still debited."""
        if level is Level.RESELLER:
            key = keys.reseller(self.get_reseller(account_id).reseller_id)
        elif level is Level.CUSTOMER:
            key = keys.customer(self._reseller_of_customer(account_id), account_id)
        else:
            key = keys.card(self._owner_of_card(account_id)[0], account_id)
        if not self.redis.exists(key):
            raise NotFound(f"{level.value} {account_id!r} does not exist")
        self.redis.hset(key, "blk", 1 if blocked else 0)
        self._bump()

    def _reseller_of_customer(self, customer_id: str) -> str:
        raw = self.redis.get(keys.account_index(customer_id))
        if raw is None:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return str(raw.decode())

    def _owner_of_card(self, number: str) -> tuple[str, str]:
        raw = self.redis.get(keys.card_index(number))
        if raw is None:
            raise NotFound(f"card {number} does not exist")
        reseller_id, customer_id = raw.decode().split(":", 1)
        return reseller_id, customer_id

    def _bump(self) -> None:
        """Tell every AccountLookup cache that accounts changed."""
        self.redis.incr(keys.GENERATION)

    def _check_tariff(self, name: str, currency: str) -> None:
        """A tariff in another currency is refused; an unknown one only warned about (it may
        be imported later; CDRs rate as unrated until then)."""
        if not name:
            raise AccountError("a tariff name is required")
        table = _load_tariff(self.redis, self.settings, name)
        found = getattr(table, "currency", currency)
        if found != currency:
            raise AccountError(
                f"tariff {name!r} is in {found}; accounts of this reseller are in {currency}"
            )
        if table is None:
            log.warning("tariff not found (yet)", tariff=name)


def normalise_ani(ani: str) -> str:
    """Caller numbers as E.164 digits: '+31 20-123' -> '3120123', '0031...' -> '31...'."""
    digits = re.sub(r"[\s\-().]", "", ani)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits.isdigit() or not 3 <= len(digits) <= 20:
        raise AccountError(f"caller number {ani!r} is not a phone number")
    return digits


def _load_tariff(client: RedisLike, settings: Settings, name: str) -> TariffTable | None:
    """The current version's header (name, currency, ...; no rows) of a tariff table, if any.

    Headers only: decoding a 29,000-row deck to read its currency cost about 0.15 s per
    account created (the load generator creates hundreds)."""
    infos = TariffStore(client, settings, clickhouse=False).infos(name)
    return infos[-1].table if infos else None


def _connect(settings: Settings) -> RedisLike:
    return redis_client.connect(settings)
