"""Debit stage: rated CDRs applied to card, customer and reseller, charged at most once.

One Lua call per batch on one server, one per slot on Redis Cluster (rater/redis/topology.py;
the claims of rater/redis/claims.py first). Per-CDR data travels as one packed record array
(rater/redis/contract.py CDR_RECORD: numpy -> bytes, `struct.unpack` in Lua) plus one blob of
de-duplication fields; ids travel once per distinct account, in key form (rater/redis/keys.py
`name`), length-prefixed like the authorization ids (contract.pack_strings), so no text can
shift a list. The script reads and writes the de-duplication records with one HMGET / HSET per
time bucket, sums the debits per account and writes each balance with one HINCRBY.

Outcome codes (DebitResult.outcome, int8; rater/redis/codes.py DebitOutcome):

- APPLIED (0): first copy of this (switch, cdr_id); its price and cost were debited (nothing when
  both are 0: unanswered and unrated CDRs are only recorded for de-duplication).
- DUPLICATE (1): the (switch, cdr_id) was seen within the window at another message identity,
  under any account of any reseller; nothing applied.
- UNKNOWN_ACCOUNT (2): the customer, card or reseller named does not exist in Redis (deleted or
  never created); nothing applied, the CDR is recorded for de-duplication.
- REPLAY_EXPIRED (3): a replay (offset at or below the watermark) whose record has aged out of
  the window: the first outcome is no longer known here (look it up in ClickHouse).
- CONFLICT (4): like DUPLICATE, but the rating fields (account, card, callee, billsec, start and
  end time: `fingerprints`) differ from the first copy's: not charged, kept for an operator.
- OUT_OF_RANGE (5): the price or cost is beyond MAX_AMOUNT (2^53 - 1 micro-units), or would take
  a balance below -MAX_AMOUNT: nothing applied, recorded (the pipeline stores it as unrated).

`replayed` marks CDRs whose outcome was read back from the first time rather than decided now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from rater.accounts.ids import auth_id_problem
from rater.errors import DebitError
from rater.logs import get_logger
from rater.pipeline.decode import CdrBatch
from rater.redis import keys
from rater.redis import topology as topologies
from rater.redis.claims import ClaimRows
from rater.redis.codes import CorrectionOutcome, DebitOutcome, raise_for
from rater.redis.connection import RedisLike
from rater.redis.contract import (
    CDR_RECORD,
    DEBIT_ARGS,
    EXTERNAL_RECORD,
    FINGERPRINT_SIZE,
    FIRST_COPY,
    IDENT,
    IDENT_SIZE,
    INDEX,
    MAX_AMOUNT,
    pack_strings,
    python_struct,
)
from rater.redis.topology import Topology
from rater.settings import Settings, get_settings

log = get_logger(__name__)

Outcome = DebitOutcome
#: one packed record per CDR (rater/redis/contract.py)
RECORD = CDR_RECORD
#: (row, message identity) of the first copy of each CONFLICT, as debit.lua returns them
_FIRST = python_struct(FIRST_COPY)
_IDENT = python_struct(IDENT)


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
    #: rating fields hashed per CDR (`fingerprints`); None: unknown, a re-send is never a CONFLICT
    fingerprints: npt.NDArray[np.uint64] | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def take(self, rows: npt.NDArray[np.intp]) -> DebitBatch:
        """The CDRs at rows, in that order."""

        def pick(column: Sequence[str]) -> list[str]:
            return [column[i] for i in rows.tolist()]

        return DebitBatch(
            topic_id=self.topic_id,
            partition=self.partition,
            offsets=np.asarray(self.offsets)[rows],
            switches=pick(self.switches),
            cdr_ids=pick(self.cdr_ids),
            customers=pick(self.customers),
            cards=pick(self.cards),
            resellers=pick(self.resellers),
            prices=np.asarray(self.prices)[rows],
            costs=np.asarray(self.costs)[rows],
            auth_ids=None if self.auth_ids is None else pick(self.auth_ids),
            fingerprints=None if self.fingerprints is None else self.fingerprints[rows],
        )


#: FNV-1a 64, one vector operation per character position: 0.5-1.3 us per CDR over 100,000 CDRs
#: here, where blake2b of the joined fields took 2.2-3.3 us in the same runs (a conflict check
#: needs a stable, well-spread hash, not a cryptographic one)
_FNV_OFFSET = np.uint64(14695981039346656037)
_FNV_PRIME = np.uint64(1099511628211)


def fingerprints(
    *,
    accounts: Sequence[str],
    cards: Sequence[str],
    callees: Sequence[str],
    billsecs: npt.NDArray[np.integer[Any]],
    starts: npt.NDArray[np.integer[Any]],
    ends: npt.NDArray[np.integer[Any]],
) -> npt.NDArray[np.uint64]:
    """The rating fields of each CDR as sent (docs/DESIGN.md section 4), hashed to 8 bytes: a
    re-send whose fingerprint differs from the first copy's is a CONFLICT. The same in every
    process (no per-process hash seed); never 0 (0 means unknown)."""
    n = len(accounts)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in (accounts, cards, callees):
            text = np.asarray(column, dtype=np.str_).reshape(n)
            width = text.dtype.itemsize // 4
            points = text.view(np.uint32).reshape(n, width)  # UCS-4 code points, 0-padded
            lengths = np.fromiter(map(len, column), dtype=np.int64, count=n)
            for j in range(width):
                # only a string's own characters: the padding depends on the batch's longest
                inside = lengths > j
                h = np.where(inside, (h ^ points[:, j]) * _FNV_PRIME, h)
            h ^= lengths.astype(np.uint64)  # 'a' and 'a\0' differ
            h *= _FNV_PRIME
        for numbers in (billsecs, starts, ends):
            h ^= np.asarray(numbers, dtype=np.int64).astype(np.uint64)
            h *= _FNV_PRIME
    h[h == 0] = 1
    return h


def fingerprints_of(cdrs: CdrBatch, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint64]:
    """fingerprints() of the decoded CDRs at rows, from the fields as the switch sent them."""
    return fingerprints(
        accounts=cdrs.account[rows].tolist(),
        cards=cdrs.card[rows].tolist(),
        callees=cdrs.callee[rows].tolist(),
        billsecs=cdrs.billsec[rows],
        starts=cdrs.start[rows],
        ends=cdrs.end[rows],
    )


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
        """From 'kind:level:<id in key form>:balance' (a key-form id holds no ':')."""
        kind, level, account, balance = raw.decode().rsplit(":", 3)
        return cls(kind, level, keys.name_of(account), int(balance))


@dataclass(frozen=True)
class DebitResult:
    outcome: npt.NDArray[np.int8]
    blocked: npt.NDArray[np.bool_]
    replayed: npt.NDArray[np.bool_]
    reseller_balances: dict[str, int] = field(default_factory=dict)
    customer_balances: dict[str, int] = field(default_factory=dict)
    card_balances: dict[str, int] = field(default_factory=dict)
    events: list[DebitEvent] = field(default_factory=list)
    #: per CDR, (partition, offset) of the first copy a CONFLICT was compared with; -1 else
    first: npt.NDArray[np.int64] | None = None

    def count(self, outcome: Outcome) -> int:
        return int(np.count_nonzero(self.outcome == outcome))


@dataclass(frozen=True)
class Correction:
    """A re-rate difference for one CDR revision (positive deltas charge more)."""

    key: str  #: unique per CDR revision, keys.correction_id
    reseller: str
    customer: str
    card: str
    price_delta: int
    cost_delta: int


def topic_token(topic_id: str) -> bytes:
    """8 bytes standing for the topic identity inside each de-duplication record."""
    return hashlib.blake2b(topic_id.encode(), digest_size=8).digest()


def _amounts(values: Any, what: str) -> npt.NDArray[np.int64]:
    """Amounts as int64; beyond MAX_AMOUNT kept beyond it (the script answers OUT_OF_RANGE for
    that CDR), never wrapped; DebitError for negative or non-integer amounts."""
    raw = np.asarray(values)
    if raw.dtype.kind == "u":
        out = np.minimum(raw, MAX_AMOUNT + 1).astype(np.int64)
    elif raw.dtype.kind == "i":
        out = raw.astype(np.int64)
    elif raw.dtype.kind == "O" and all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) for v in raw.tolist()
    ):
        out = np.asarray([min(int(v), MAX_AMOUNT + 1) for v in raw.tolist()], dtype=np.int64)
    elif raw.size == 0:
        out = np.zeros(0, dtype=np.int64)
    else:
        raise DebitError(f"debit batch: {what} must be integer micro-units, not {raw.dtype}")
    if out.size and int(out.min()) < 0:
        raise DebitError(f"debit batch: {what} must be >= 0 micro-units")
    return np.asarray(out, dtype=np.int64)


def _auth_id(value: str) -> str:
    """The id, or '' when it fails the check every authorization passed (rater/accounts/ids.py):
    then no reservation has it."""
    return value if auth_id_problem(value) is None else ""


class Debiter:
    """Applies debit batches; one instance per worker process (the scripts are loaded once)."""

    def __init__(
        self, source: Settings | RedisLike | Topology, *, settings: Settings | None = None
    ) -> None:
        if isinstance(source, Settings):
            self.settings = source
            self.topology = topologies.connect(source)
        else:
            self.settings = settings or get_settings()
            self.topology = (
                source if isinstance(source, Topology) else topologies.topology_of(source)
            )
        self.client = self.topology.client
        self._debit = self.topology.script("debit")
        self._claim = self.topology.script("claim")
        self._correct = self.topology.script("correct")

    # ---------------------------------------------------------------- debits
    def validate(self, batch: DebitBatch) -> DebitBatch:
        """The batch with its amounts as int64; DebitError naming what is malformed."""
        n = len(batch.offsets)
        columns: dict[str, Sized | None] = {
            "switches": batch.switches,
            "cdr_ids": batch.cdr_ids,
            "customers": batch.customers,
            "cards": batch.cards,
            "resellers": batch.resellers,
            "prices": batch.prices,
            "costs": batch.costs,
            "auth_ids": batch.auth_ids,
            "fingerprints": batch.fingerprints,
        }
        for name, column in columns.items():
            if column is not None and len(column) != n:
                raise DebitError(f"debit batch: {name} has {len(column)} entries, offsets {n}")
        offsets = np.asarray(batch.offsets, dtype=np.int64)
        if n > 1 and not bool(np.all(offsets[1:] > offsets[:-1])):
            raise DebitError("debit batch: offsets must be strictly ascending")
        if not 0 <= batch.partition < 65536:
            raise DebitError(f"debit batch: partition {batch.partition} out of range")
        prices, costs = _amounts(batch.prices, "prices"), _amounts(batch.costs, "costs")
        nobody = np.asarray(batch.customers, dtype=object) == ""
        orphan = nobody & ((prices != 0) | (np.asarray(batch.cards, dtype=object) != ""))
        if n and orphan.any():
            i = int(np.argmax(orphan))
            raise DebitError(
                f"debit batch: CDR {batch.switches[i]}:{batch.cdr_ids[i]} has a price or card "
                "but no customer"
            )
        return DebitBatch(
            batch.topic_id, batch.partition, offsets, batch.switches, batch.cdr_ids,
            batch.customers, batch.cards, batch.resellers, prices, costs, batch.auth_ids,
            batch.fingerprints,
        )  # fmt: skip

    def encode(self, batch: DebitBatch, external: dict[int, bytes] | None = None) -> list[Any]:
        """The script's arguments for a validated batch (contract.DEBIT_ARGS order); external:
        records from other slots by 0-based row of this batch (rater/redis/claims.py)."""
        n = len(batch.offsets)
        auth_ids = batch.auth_ids if batch.auth_ids is not None else [""] * n
        res_index: dict[str, int] = {}
        cust_index: dict[str, int] = {}
        card_index: dict[str, int] = {}
        auth_index: dict[str, int] = {}
        cust_res: list[int] = []
        card_res: list[int] = []
        r_col = np.empty(n, dtype=np.int32)
        c_col = np.zeros(n, dtype=np.int32)
        k_col = np.zeros(n, dtype=np.int32)
        a_col = np.zeros(n, dtype=np.int32)
        fields: list[bytes] = []
        name = keys.name
        ignored = 0
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
            if card:
                ki = card_index.get(card)
                if ki is None:
                    ki = card_index[card] = len(card_index) + 1
                    card_res.append(ri)
                k_col[i] = ki
            if auth:
                valid = _auth_id(auth)
                ignored += not valid
                if valid:
                    ai = auth_index.get(valid)
                    if ai is None:
                        ai = auth_index[valid] = len(auth_index) + 1
                    a_col[i] = ai
            fields.append(keys.dedup_field(switch, cdr_id).encode("utf-8", "surrogatepass"))
        if ignored:
            log.warning(
                "authorization ids rater cannot have issued: nothing released", count=ignored
            )
        records = np.zeros(n, dtype=RECORD)
        records["token"] = np.frombuffer(topic_token(batch.topic_id), dtype="V8")[0]
        records["partition"] = batch.partition
        records["offset"] = batch.offsets
        records["price"] = batch.prices
        records["cost"] = batch.costs
        records["reseller"] = r_col
        records["customer"] = c_col
        records["card"] = k_col
        records["auth"] = a_col
        records["key_len"] = np.fromiter(map(len, fields), dtype=np.int32, count=n)
        if batch.fingerprints is not None:
            records["fingerprint"] = np.asarray(batch.fingerprints, dtype="<u8").view(
                f"V{FINGERPRINT_SIZE}"
            )
        outside = np.zeros(len(external or {}), dtype=EXTERNAL_RECORD)
        if external:
            outside["row"] = [row + 1 for row in external]
            outside["record"] = list(external.values())
        args = {
            "topic": name(batch.topic_id),
            "partition": str(batch.partition),
            "window": str(self.settings.dedup_window_s),
            "count": str(n),
            "resellers": pack_strings([name(r) for r in res_index]),
            "customers": pack_strings([name(c) for c in cust_index]),
            "customer_reseller": np.asarray(cust_res, dtype=INDEX).tobytes(),
            "cards": pack_strings([name(k) for k in card_index]),
            "card_reseller": np.asarray(card_res, dtype=INDEX).tobytes(),
            "auth_ids": pack_strings(list(auth_index)),
            "records": records.tobytes(),
            "fields": b"".join(fields),
            "external": outside.tobytes(),
            "global": "1" if self.topology.global_keys else "0",
        }
        return [args[a] for a in DEBIT_ARGS]

    def apply(self, batch: DebitBatch) -> DebitResult:
        """Apply a batch: claims across resellers (Redis Cluster), then one atomic script call
        per slot, then the partition watermark (see the module doc for outcomes)."""
        n = len(batch.offsets)
        if n == 0:
            empty = np.zeros(0, dtype=np.bool_)
            return DebitResult(np.zeros(0, dtype=np.int8), empty, empty.copy())
        batch = self.validate(batch)
        external = self.topology.claim(self._claim, lambda: self._claim_rows(batch))
        route_of = {r: topologies.route(r) for r in set(batch.resellers)}
        parts = self.topology.split([route_of[r] for r in batch.resellers])
        calls = []
        for route_key, rows in parts:
            whole = len(rows) == n
            sub = batch if whole else batch.take(rows)
            mine = (
                {j: external[i] for j, i in enumerate(rows.tolist()) if i in external}
                if external
                else {}
            )
            calls.append((route_key, self.encode(sub, mine)))
        replies = self.topology.run_each(self._debit, calls)
        outcome = np.zeros(n, dtype=np.int8)
        blocked = np.zeros(n, dtype=np.bool_)
        replayed = np.zeros(n, dtype=np.bool_)
        first = np.full((n, 2), -1, dtype=np.int64)
        merged = DebitResult(outcome, blocked, replayed, first=first)
        for (_route, rows), raw in zip(parts, replies, strict=True):
            part = self.decode(raw)
            outcome[rows] = part.outcome
            blocked[rows] = part.blocked
            replayed[rows] = part.replayed
            if part.first is not None:
                first[rows] = part.first
            merged.reseller_balances.update(part.reseller_balances)
            merged.customer_balances.update(part.customer_balances)
            merged.card_balances.update(part.card_balances)
            merged.events.extend(part.events)
        if any(e.level == "card" for e in merged.events):
            self._sync_ani(merged.events, dict(zip(batch.cards, batch.resellers, strict=True)))
        self.topology.raise_to(
            keys.partition_watermark(batch.topic_id, batch.partition), int(batch.offsets[-1])
        )
        return merged

    def _claim_rows(self, batch: DebitBatch) -> ClaimRows:
        n = len(batch.offsets)
        idents = np.zeros(n, dtype=IDENT)
        idents["token"] = np.frombuffer(topic_token(batch.topic_id), dtype="V8")[0]
        idents["partition"] = batch.partition
        idents["offset"] = batch.offsets
        prints = np.zeros(n, dtype="<u8") if batch.fingerprints is None else batch.fingerprints
        names = {r: keys.name(r) for r in set(batch.resellers)}
        return ClaimRows(
            idents=idents.view(f"V{IDENT_SIZE}"),
            fingerprints=np.asarray(prints, dtype="<u8").view(f"V{FINGERPRINT_SIZE}"),
            resellers=[names[r] for r in batch.resellers],
            fields=[
                keys.dedup_field(s, c).encode("utf-8", "surrogatepass")
                for s, c in zip(batch.switches, batch.cdr_ids, strict=True)
            ],
            window=self.settings.dedup_window_s,
        )

    def _sync_ani(self, events: Sequence[DebitEvent], card_owner: dict[str, str]) -> None:
        """Redis Cluster: the global `ani:` keys of cards the rules switched (no-op on one
        server, where the script did it)."""
        changes = [(e.kind, e.account) for e in events if e.level == "card"]
        for reseller in sorted({card_owner.get(number, "") for _, number in changes}):
            mine = [(k, num) for k, num in changes if card_owner.get(num, "") == reseller]
            self.topology.sync_ani_after(reseller, mine)

    @staticmethod
    def decode(raw: list[Any]) -> DebitResult:
        outcomes, blocked, replayed, balances, events, firsts = raw
        first = np.full((len(outcomes), 2), -1, dtype=np.int64)
        for row, ident in _FIRST.iter_unpack(firsts):
            _token, partition, offset = _IDENT.unpack(ident)
            first[row - 1] = (partition, offset)
        result = DebitResult(
            outcome=np.frombuffer(outcomes, dtype=np.int8).copy(),
            blocked=np.frombuffer(blocked, dtype=np.uint8).astype(np.bool_),
            replayed=np.frombuffer(replayed, dtype=np.uint8).astype(np.bool_),
            events=[DebitEvent.parse(e) for e in events],
            first=first,
        )
        targets = {
            b"r": result.reseller_balances,
            b"c": result.customer_balances,
            b"k": result.card_balances,
        }
        for i in range(0, len(balances), 3):
            targets[balances[i]][keys.name_of(balances[i + 1].decode())] = int(balances[i + 2])
        return result

    def watermark(self, topic_id: str, partition: int) -> int:
        """Highest offset applied for (topic identity, partition); -1 when none."""
        raw = self.client.get(keys.partition_watermark(topic_id, partition))
        return int(raw) if raw is not None else -1

    # ---------------------------------------------------------------- re-rating
    def apply_corrections(self, items: Sequence[Correction]) -> npt.NDArray[np.bool_]:
        """Apply re-rate differences, each exactly once per key; True where applied now.

        DebitError when a correction would take a balance beyond +-MAX_AMOUNT (that one is not
        applied; the others are)."""
        if not items:
            return np.zeros(0, dtype=np.bool_)
        for item in items:
            if not item.key or not item.reseller:
                raise DebitError(f"correction {item!r}: key and reseller are required")
            if abs(int(item.price_delta)) > MAX_AMOUNT or abs(int(item.cost_delta)) > MAX_AMOUNT:
                raise DebitError(
                    f"correction {item.key}: a delta beyond +-{MAX_AMOUNT} micro-units"
                )
        route_of = {item.reseller: topologies.route(item.reseller) for item in items}
        parts = self.topology.split([route_of[item.reseller] for item in items])
        calls = []
        for route_key, rows in parts:
            args: list[Any] = [str(len(rows)), "1" if self.topology.global_keys else "0"]
            for i in rows.tolist():
                item = items[i]
                args += [
                    item.key, keys.name(item.reseller), keys.name(item.customer),
                    keys.name(item.card), str(int(item.price_delta)), str(int(item.cost_delta)),
                ]  # fmt: skip
            calls.append((route_key, args))
        codes = np.zeros(len(items), dtype=np.uint8)
        events: list[DebitEvent] = []
        for (_route, rows), (flags, raw_events) in zip(
            parts, self.topology.run_each(self._correct, calls), strict=True
        ):
            codes[rows] = np.frombuffer(flags, dtype=np.uint8)
            events += [DebitEvent.parse(e) for e in raw_events]
        self._sync_ani(events, {item.card: item.reseller for item in items if item.card})
        for i in np.flatnonzero(codes == CorrectionOutcome.OUT_OF_RANGE).tolist():
            raise_for(CorrectionOutcome.OUT_OF_RANGE, key=items[i].key, limit=MAX_AMOUNT)
        applied: npt.NDArray[np.bool_] = codes == CorrectionOutcome.APPLIED
        return applied
