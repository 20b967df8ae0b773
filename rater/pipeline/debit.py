"""Debit stage: one Lua call per batch applies rated CDRs to card, customer and reseller.

The script (rater/redis/lua/debit.lua) is loaded once and called with EVALSHA. Per-CDR data travels
as one packed binary record array (numpy -> bytes, `struct.unpack` in Lua) plus one blob of
de-duplication fields ('<len>:<switch>:<cdr_id>'); account ids travel once per distinct account.
The script reads and writes the de-duplication records with one HMGET / HSET per time bucket,
sums the debits per account and writes each balance with one HINCRBY.

Outcome codes (DebitResult.outcome, int8):

- APPLIED (0): first copy of this (switch, cdr_id); its price and cost were debited (nothing when
  both are 0: unanswered and unrated CDRs are only recorded for de-duplication).
- DUPLICATE (1): the (switch, cdr_id) was seen within the window at another message identity;
  nothing applied.
- UNKNOWN_ACCOUNT (2): the customer, card or reseller named does not exist in Redis (deleted or
  never created); nothing applied, the CDR is recorded for de-duplication.
- REPLAY_EXPIRED (3): a replay (offset at or below the watermark) whose record has aged out of
  the window: the first outcome is no longer known here (look it up in ClickHouse).

`replayed` marks CDRs whose outcome was read back from the first time rather than decided now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from rater.errors import DebitError
from rater.redis import cluster as debit_cluster
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.redis.scripts import Script
from rater.settings import Settings, get_settings


class Outcome(IntEnum):
    APPLIED = 0
    DUPLICATE = 1
    UNKNOWN_ACCOUNT = 2
    REPLAY_EXPIRED = 3


#: one packed record per CDR (54 bytes), unpacked in Lua with '<c18i8i8i4i4i4i4i4'; the first
#: 18 bytes (token, partition, offset) are the message identity as stored in the records
RECORD = np.dtype(
    [
        ("token", "V8"),  # topic_token(topic_id)
        ("partition", "<u2"),
        ("offset", "<i8"),
        ("price", "<i8"),
        ("cost", "<i8"),
        ("reseller", "<i4"),  # 1-based index into the reseller table
        ("customer", "<i4"),  # 1-based, 0 for none
        ("card", "<i4"),  # 1-based, 0 for none
        ("auth", "<i4"),  # 1-based, 0 for none
        ("key_len", "<i4"),  # bytes of this CDR's de-duplication field in the field blob
    ]
)


@dataclass(frozen=True)
class DebitBatch:
    """The CDRs of one batch of one (topic identity, partition), in offset order."""

    topic_id: str  #: topic identity (incarnation UUID), not just its name
    partition: int
    offsets: npt.NDArray[np.int64]  #: ascending message offsets
    switches: Sequence[str]  #: with cdr_ids: the CDR's identity for de-duplication
    cdr_ids: Sequence[str]
    customers: Sequence[str]  #: customer id per CDR, '' when unknown
    cards: Sequence[str]  #: card number per CDR, '' for none
    resellers: Sequence[str]  #: reseller id per CDR, '' when unknown
    prices: npt.NDArray[np.int64]  #: sell price, micro-units (0 unanswered / unrated)
    costs: npt.NDArray[np.int64]  #: buy cost, micro-units (0 unanswered / unrated)
    auth_ids: Sequence[str] | None = None  #: authorization per CDR, '' none; None: no auth ids

    def __len__(self) -> int:
        return len(self.offsets)


@dataclass(frozen=True)
class DebitEvent:
    """A state change made by the rules: ani_off, ani_on, card_empty, card_exhausted,
    card_active, customer_negative, customer_active, reseller_negative, reseller_active."""

    kind: str
    level: str
    account: str
    balance: int

    @classmethod
    def parse(cls, raw: bytes) -> DebitEvent:
        kind, level, account, balance = raw.decode().rsplit(":", 3)
        return cls(kind, level, account, int(balance))


@dataclass(frozen=True)
class DebitResult:
    outcome: npt.NDArray[np.int8]
    blocked: npt.NDArray[np.bool_]
    replayed: npt.NDArray[np.bool_]
    reseller_balances: dict[str, int] = field(default_factory=dict)
    customer_balances: dict[str, int] = field(default_factory=dict)
    card_balances: dict[str, int] = field(default_factory=dict)
    events: list[DebitEvent] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return int(np.count_nonzero(self.outcome == outcome))


@dataclass(frozen=True)
class Correction:
    """A re-rate difference for one CDR revision (positive deltas charge more)."""

    key: str  #: unique per CDR revision, e.g. 'switch:cdr_id:revision'
    reseller: str
    customer: str
    card: str
    price_delta: int
    cost_delta: int


def topic_token(topic_id: str) -> bytes:
    """8 bytes standing for the topic identity inside each de-duplication record."""
    return hashlib.blake2b(topic_id.encode(), digest_size=8).digest()


class Debiter:
    """Applies debit batches; one instance per worker process (the script is loaded once)."""

    def __init__(
        self,
        source: Settings | RedisLike,
        *,
        settings: Settings | None = None,
        global_keys: bool = True,
    ) -> None:
        if isinstance(source, Settings):
            self.settings = source
            self.client: RedisLike = redis_client.connect(source)
        else:
            self.settings = settings or get_settings()
            self.client = source
        #: Redis Cluster: one call per reseller slot (rater/redis/cluster.py)
        self.cluster = debit_cluster.is_cluster(self.client)
        #: one server: the script may also update global keys (ANI index, orphan dedup check)
        self.global_keys = global_keys and not self.cluster
        self._debit = Script(self.client, "debit")
        self._correct = Script(self.client, "correct")

    # ---------------------------------------------------------------- debits
    def encode(self, batch: DebitBatch) -> list[Any]:
        """The script's arguments for a batch (validated; see debit.lua for their order)."""
        n = len(batch.offsets)
        auth_ids = batch.auth_ids if batch.auth_ids is not None else [""] * n
        columns: dict[str, Sized] = {
            "switches": batch.switches,
            "cdr_ids": batch.cdr_ids,
            "customers": batch.customers,
            "cards": batch.cards,
            "resellers": batch.resellers,
            "prices": batch.prices,
            "costs": batch.costs,
            "auth_ids": auth_ids,
        }
        for name, column in columns.items():
            if len(column) != n:
                raise DebitError(f"debit batch: {name} has {len(column)} entries, offsets {n}")
        offsets = np.asarray(batch.offsets, dtype=np.int64)
        prices = np.asarray(batch.prices, dtype=np.int64)
        costs = np.asarray(batch.costs, dtype=np.int64)
        if n > 1 and not bool(np.all(offsets[1:] > offsets[:-1])):
            raise DebitError("debit batch: offsets must be strictly ascending")
        if n and (int(prices.min()) < 0 or int(costs.min()) < 0):
            raise DebitError("debit batch: prices and costs must be >= 0 micro-units")
        if not 0 <= batch.partition < 65536:
            raise DebitError(f"debit batch: partition {batch.partition} out of range")

        res_index: dict[str, int] = {}
        cust_index: dict[str, int] = {}
        card_index: dict[str, int] = {}
        auth_index: dict[str, int] = {}
        cust_res: list[int] = []
        card_res: list[int] = []
        records = np.zeros(n, dtype=RECORD)
        r_col = np.empty(n, dtype=np.int32)
        c_col = np.zeros(n, dtype=np.int32)
        k_col = np.zeros(n, dtype=np.int32)
        a_col = np.zeros(n, dtype=np.int32)
        key_parts: list[bytes] = []
        for i, (res, cust, card, auth, switch, cdr_id) in enumerate(
            zip(
                batch.resellers,
                batch.customers,
                batch.cards,
                auth_ids,
                batch.switches,
                batch.cdr_ids,
                strict=True,
            )
        ):
            ri = res_index.get(res)
            if ri is None:
                ri = res_index[res] = len(res_index) + 1
            r_col[i] = ri
            if cust:
                ci = cust_index.get(cust)
                if ci is None:
                    ci = cust_index[cust] = len(cust_index) + 1
                    cust_res.append(ri)
                c_col[i] = ci
            elif prices[i] or card:
                raise DebitError(
                    f"debit batch: CDR {switch}:{cdr_id} has a price or card but no customer"
                )
            if card:
                ki = card_index.get(card)
                if ki is None:
                    ki = card_index[card] = len(card_index) + 1
                    card_res.append(ri)
                k_col[i] = ki
            if auth:
                ai = auth_index.get(auth)
                if ai is None:
                    ai = auth_index[auth] = len(auth_index) + 1
                a_col[i] = ai
            key_parts.append(keys.dedup_field(switch, cdr_id).encode())
        records["token"] = np.frombuffer(topic_token(batch.topic_id), dtype="V8")[0]
        records["partition"] = batch.partition
        records["offset"] = offsets
        records["price"] = prices
        records["cost"] = costs
        records["reseller"] = r_col
        records["customer"] = c_col
        records["card"] = k_col
        records["auth"] = a_col
        records["key_len"] = np.fromiter(map(len, key_parts), dtype=np.int32, count=n)
        for table, what in (
            (res_index, "reseller"),
            (cust_index, "customer"),
            (card_index, "card"),
        ):
            for account in table:
                if account and ("\n" in account or ":" in account or "}" in account):
                    raise DebitError(f"debit batch: {what} id {account!r} cannot be used in a key")
        return [
            batch.topic_id,
            str(batch.partition),
            str(self.settings.dedup_window_s),
            str(n),
            str(len(res_index)),
            str(len(cust_index)),
            str(len(card_index)),
            str(len(auth_index)),
            "\n".join(res_index),
            "\n".join(cust_index),
            np.asarray(cust_res, dtype="<i4").tobytes(),
            "\n".join(card_index),
            np.asarray(card_res, dtype="<i4").tobytes(),
            "\n".join(auth_index),
            records.tobytes(),
            b"".join(key_parts),
            b"",  # orphan records read outside the slot (Redis Cluster: debit_cluster.py)
            "1" if self.global_keys else "0",
        ]

    def apply(self, batch: DebitBatch) -> DebitResult:
        """Apply a batch in one atomic script call (see the module doc for outcomes)."""
        n = len(batch.offsets)
        if n == 0:
            empty = np.zeros(0, dtype=np.bool_)
            return DebitResult(np.zeros(0, dtype=np.int8), empty, empty.copy())
        if self.cluster:
            return debit_cluster.apply_split(  # type: ignore[no-any-return]
                self.client,
                self._debit,
                self.encode,
                self.decode,
                batch,
                window=self.settings.dedup_window_s,
            )
        raw = self._debit([], self.encode(batch))
        return self.decode(raw)

    @staticmethod
    def decode(raw: list[Any]) -> DebitResult:
        outcomes, blocked, replayed, balances, events = raw
        result = DebitResult(
            outcome=np.frombuffer(outcomes, dtype=np.int8).copy(),
            blocked=np.frombuffer(blocked, dtype=np.uint8).astype(np.bool_),
            replayed=np.frombuffer(replayed, dtype=np.uint8).astype(np.bool_),
            events=[DebitEvent.parse(e) for e in events],
        )
        targets = {
            b"r": result.reseller_balances,
            b"c": result.customer_balances,
            b"k": result.card_balances,
        }
        for i in range(0, len(balances), 3):
            targets[balances[i]][balances[i + 1].decode()] = int(balances[i + 2])
        return result

    def watermark(self, topic_id: str, partition: int) -> int:
        """Highest offset applied for (topic identity, partition); -1 when none."""
        raw = self.client.get(keys.partition_watermark(topic_id, partition))
        return int(raw) if raw is not None else -1

    # ---------------------------------------------------------------- re-rating
    def apply_corrections(self, items: Sequence[Correction]) -> npt.NDArray[np.bool_]:
        """Apply re-rate differences, each exactly once per key; True where applied now."""
        if not items:
            return np.zeros(0, dtype=np.bool_)
        if self.cluster and len({item.reseller for item in items}) > 1:
            return debit_cluster.per_reseller(items, lambda i: i.reseller, self.apply_corrections)
        args: list[Any] = [str(len(items)), "1" if self.global_keys else "0"]
        for item in items:
            if not item.key or not item.reseller:
                raise DebitError(f"correction {item!r}: key and reseller are required")
            args += [
                item.key,
                item.reseller,
                item.customer,
                item.card,
                str(int(item.price_delta)),
                str(int(item.cost_delta)),
            ]
        route = debit_cluster.route(items[0].reseller) if self.cluster else []
        flags, events = self._correct(route, args)
        if self.cluster:
            parsed = [DebitEvent.parse(e) for e in events]
            debit_cluster.sync_ani_after(self.client, items[0].reseller, parsed)
        return np.frombuffer(flags, dtype=np.uint8).astype(np.bool_)
