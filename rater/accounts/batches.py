"""Card batches: numbers, PINs, funding and the cards themselves (docs/DESIGN.md section 1,
tip 3), written by rater/redis/lua/create_cards.lua in two phases."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from rater.accounts.balances import Balances
from rater.accounts.cards import new_card_numbers, new_pins
from rater.accounts.core import AccountStore, Amount, amount_micro
from rater.accounts.ledger import CardIssues, LedgerEntry
from rater.accounts.model import CardBatch, CustomerKind, IssuedCard, Level
from rater.accounts.pinkeys import PinKey, PinKeys
from rater.accounts.replies import CreateCardsCode, Subject, raise_for, reply
from rater.errors import AccountError, RaterError
from rater.logs import get_logger
from rater.money import from_micro
from rater.redis import cluster as debit_cluster
from rater.redis import keys

log = get_logger(__name__)

MAX_BATCH = 100_000
#: cards per create_cards.lua call: about 0.3 s of Redis time each, so rating goes on between
CARD_CHUNK = 5_000


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
    key: PinKey  # the PIN key the hashes are made with
    hashes: list[str]


class CardBatches:
    """Issue batches of cards; see create()."""

    def __init__(self, store: AccountStore, balances: Balances) -> None:
        self.store = store
        self.balances = balances

    def create(
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
        store = self.store
        settings = store.settings
        key = PinKeys.from_settings(settings).current  # no PIN secret: nothing is created
        customer = store.customer(customer_id)
        reseller = store.reseller(customer.reseller_id)
        if not 1 <= count <= MAX_BATCH:
            raise AccountError(f"count must be 1..{MAX_BATCH}, not {count}")
        micro = amount_micro(value, "value")
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
        if store.redis.exists(keys.batch_index(batch)):
            raise AccountError(f"batch {batch!r} already exists")
        exp = int(expires.timestamp()) if expires is not None else 0
        fund = count * micro if disposable else 0
        numbers = new_card_numbers(settings, count)
        pins = new_pins(settings, count)
        made = _NewBatch(
            customer.reseller_id, customer_id, batch, micro, disposable, exp,
            numbers, pins, key, key.hmacs(numbers, pins),
        )  # fmt: skip

        # phase 1: the batch id and its funding, atomically with the coverage check
        fund_args: list[str | int] = ["fund", made.reseller_id, customer_id, batch, fund]
        if store.cluster:
            raw = debit_cluster.fund_card_batch(
                store.redis, store.script("create_cards"), reseller_id=made.reseller_id,
                customer_id=customer_id, batch_id=batch, args=fund_args,
            )  # fmt: skip
        else:
            raw = store.script("create_cards")([], fund_args)
        code, details = reply(CreateCardsCode, raw)
        what = f"batch {batch!r}" if code is CreateCardsCode.BATCH_TAKEN else ""
        raise_for(
            code,
            Subject(what or f"customer {customer_id!r}", reseller, fund),
            details[0] if details else 0,
        )
        if fund:
            reason = f"disposable batch {batch}: {count} x {from_micro(micro, 2)}"
            funding = LedgerEntry(
                level=Level.CUSTOMER.value, reseller=made.reseller_id, customer=customer_id,
                card="", kind="batch_funding", amount=fund, currency=reseller.currency,
                reason=reason, ref=batch, actor=store.actor,
            )  # fmt: skip
            store.ledger.write([funding])

        # phase 2: the cards, a chunk per call
        created = 0
        try:
            for first in range(0, count, CARD_CHUNK):
                last = min(first + CARD_CHUNK, count)
                self._create_chunk(made, first, last)
                created = last
                if progress is not None:
                    progress(last - first)
        except Exception as error:
            failure = self._abandon(made, created, fund, reseller.currency, error)
            if failure is error:
                raise
            raise failure from error
        store.ledger.write([], cards=self._card_issues(made, made.numbers, reseller.currency))
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
            made.batch_id, self.store.actor,
        )  # fmt: skip

    def _create_chunk(self, made: _NewBatch, first: int, last: int) -> None:
        """Create cards made.numbers[first:last]; a number some other card already has is
        drawn again (in place, with its PIN's hash) and the chunk sent again."""
        store = self.store
        head: list[str | int] = ["cards", made.reseller_id, made.customer_id, made.batch_id]
        head += [made.value, 1 if made.disposable else 0, made.expires, made.key.key_id]
        numbers = made.numbers
        in_batch: set[str] | None = None
        for _attempt in range(20):
            args = list(head)
            for i in range(first, last):
                args += [numbers[i], made.hashes[i]]
            if store.cluster:
                raw = debit_cluster.create_cards(
                    store.redis, store.script("create_cards"), reseller_id=made.reseller_id,
                    customer_id=made.customer_id, numbers=numbers[first:last], args=args,
                )  # fmt: skip
            else:
                raw = store.script("create_cards")([], args)
            code, details = reply(CreateCardsCode, raw)
            if code is not CreateCardsCode.NUMBER_TAKEN:
                raise_for(code, Subject(f"customer {made.customer_id!r}"), details)
                return
            taken = str(details[0])
            in_batch = in_batch if in_batch is not None else set(numbers)
            i = numbers.index(taken, first, last)
            (fresh,) = new_card_numbers(store.settings, 1, avoid=in_batch)
            in_batch.add(fresh)
            numbers[i] = fresh
            made.hashes[i] = made.key.hmac(fresh, made.pins[i])
        raise AccountError("could not draw unused card numbers; widen card_number_length")

    def _abandon(
        self, made: _NewBatch, created: int, fund: int, currency: str, error: Exception
    ) -> Exception:
        """After a chunk failed: block the cards already created (nobody will get their PINs),
        record them in the ledger, and take the funding back. Returns the error to raise:
        `error` itself when the clean-up failed too on a non-RaterError (Redis away), which
        `rater card create` answers by blocking the batch's cards itself."""
        store = self.store
        batch, count = made.batch_id, len(made.numbers)
        numbers = made.numbers[:created]
        what = f"batch {batch}: creating the cards failed after {created} of {count}"
        try:
            if numbers:
                pipe = store.redis.pipeline(transaction=False)
                for number in numbers:
                    pipe.hset(keys.card(made.reseller_id, number), "blk", 1)
                pipe.execute()
                store.bump()
                store.ledger.write([], cards=self._card_issues(made, numbers, currency))
            if fund:
                reason = f"disposable batch {batch} failed midway: funding taken back"
                self.balances.change(Level.CUSTOMER, made.customer_id, -fund, reason, "adjustment")
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
