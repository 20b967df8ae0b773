"""Card counts of one reseller, for the overview: value on cards, cards whose ANI recognition
is off (tip 1), cards by status.

Reading every card takes time: 100,000 cards took about 1 s of redis-py here (one HMGET each,
pipelined), and the same loop in one Lua script 0.5 s during which Redis served nothing else.
So the count is made off the request path, in a thread, in pipelines of CHUNK commands (Redis
serves rating between them), and kept in Redis (`{r:R}:census`, JSON) for every serve process.
A page shows the latest count and its age; one older than settings.portal_census_s is counted
again in the background (one process at a time: a lock in the same key family). Balances,
credit and coverage themselves are read live on every page; only card counts can lag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from rater.accounts.model import Customer, CustomerKind
from rater.logs import get_logger
from rater.redis import keys

log = get_logger(__name__)

CHUNK = 2_000
#: cards listed by name in an alert; the rest are counted
LISTED = 50


@dataclass
class LowCard:
    number: str
    customer_id: str
    balance: int
    anis: int  # caller numbers registered: these callers now need the PIN


@dataclass
class Census:
    counted_at: float = 0.0
    seconds: float = 0.0  # how long the count took
    cards: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    normal_value: int = 0  # positive balances of cards on SIP accounts (limits, not added)
    disposable_value: int = 0  # positive balances of disposable cards
    ani_off: int = 0  # cards in use whose ANI recognition is off
    ani_off_cards: list[LowCard] = field(default_factory=list)  # the lowest LISTED of them

    def age_s(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.counted_at

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Census:
        data = orjson.loads(raw)
        data["ani_off_cards"] = [LowCard(**c) for c in data["ani_off_cards"]]
        return cls(**data)


def count(redis: Any, reseller_id: str, customers: list[Customer], threshold: int) -> Census:
    """Read every card of the reseller (see the module doc)."""
    started = time.perf_counter()
    census = Census()
    owners: list[tuple[str, bool]] = []  # (number, disposable customer) in order
    for first in range(0, len(customers), CHUNK):
        some = customers[first : first + CHUNK]
        pipe = redis.pipeline(transaction=False)
        for customer in some:
            pipe.smembers(keys.cards_of(reseller_id, customer.customer_id))
        for customer, members in zip(some, pipe.execute(), strict=True):
            batch = customer.kind is CustomerKind.CARD_BATCH
            owners.extend((m.decode(), batch) for m in members)
    low: list[LowCard] = []
    for first in range(0, len(owners), CHUNK):
        part = owners[first : first + CHUNK]
        pipe = redis.pipeline(transaction=False)
        for number, _ in part:
            pipe.hmget(keys.card(reseller_id, number), "bal", "st", "blk", "anion", "cust")
            pipe.scard(keys.card_anis(reseller_id, number))
        raw = pipe.execute()
        for i, (number, batch) in enumerate(part):
            bal, st, blk, anion, cust = raw[2 * i]
            if bal is None:
                continue
            balance = int(bal)
            status = "blocked" if blk == b"1" else (st or b"active").decode()
            census.cards += 1
            census.by_status[status] = census.by_status.get(status, 0) + 1
            if balance > 0:
                if batch:
                    census.disposable_value += balance
                else:
                    census.normal_value += balance
            if status in ("active", "empty") and anion != b"1" and balance < threshold:
                census.ani_off += 1
                low.append(LowCard(number, (cust or b"").decode(), balance, int(raw[2 * i + 1])))
    low.sort(key=lambda c: (-c.anis, c.balance, c.number))
    census.ani_off_cards = low[:LISTED]
    census.counted_at = time.time()
    census.seconds = round(time.perf_counter() - started, 3)
    return census


class Censuses:
    """The latest census of each reseller, kept in Redis, recounted in the background."""

    def __init__(self, redis: Any, max_age_s: int) -> None:
        self.redis = redis
        self.max_age_s = max_age_s
        self._running: set[str] = set()
        self._guard = threading.Lock()

    def latest(self, reseller_id: str) -> Census | None:
        raw = self.redis.get(keys.portal_census(reseller_id))
        return Census.from_json(raw) if raw else None

    def current(
        self, reseller_id: str, customers: Callable[[], list[Customer]], threshold: int
    ) -> Census | None:
        """The latest census; a new one is counted in the background (with the customers
        `customers()` lists) when it is missing or older than max_age_s."""
        found = self.latest(reseller_id)
        if found is None or found.age_s() > self.max_age_s:
            self._start(reseller_id, customers, threshold)
        return found

    def recount(self, reseller_id: str, customers: list[Customer], threshold: int) -> Census:
        census = count(self.redis, reseller_id, customers, threshold)
        # kept well past max_age_s: an old count with its age beats none at all
        self.redis.set(
            keys.portal_census(reseller_id), census.to_json(), ex=max(self.max_age_s * 20, 600)
        )
        return census

    def forget(self, reseller_id: str) -> None:
        """After a change this process made (cards created, blocked): count again next time."""
        self.redis.delete(keys.portal_census(reseller_id))

    def _start(
        self, reseller_id: str, customers: Callable[[], list[Customer]], threshold: int
    ) -> None:
        lock = keys.portal_census_lock(reseller_id)
        with self._guard:
            if reseller_id in self._running:
                return
            if not self.redis.set(lock, 1, nx=True, ex=max(self.max_age_s, 60)):
                return  # another process is counting
            self._running.add(reseller_id)

        def run() -> None:
            try:
                self.recount(reseller_id, customers(), threshold)
            except Exception as error:  # a thread's failure must not pass silently
                log.warning("card census failed", reseller=reseller_id, error=str(error))
            finally:
                self.redis.delete(lock)
                with self._guard:
                    self._running.discard(reseller_id)

        threading.Thread(target=run, name=f"census-{reseller_id}", daemon=True).start()
