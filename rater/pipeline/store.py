"""Store CDRs in ClickHouse `rated_cdrs`: columnar inserts, idempotent per message identity.

A ClickHouse materialized view counts every inserted row (the ledger, summaries), so a second
insert of the same CDR would corrupt them. Every row carries (topic_id, partition, offset);
before inserting, the store asks which offsets of the batch's range ClickHouse already holds and
inserts only the rest. Asking costs a scan (the table is ordered for analysts, not by offset),
so it is done only while a partition may overlap what is stored: after an assignment the store
learns the highest stored offset per partition once, and batches wholly above it (the steady
state) insert without asking.

The driver is synchronous; callers run these methods in a thread (asyncio.to_thread).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from clickhouse_driver import Client

from rater import clickhouse
from rater.clickhouse.executor import DriverExecutor, Executor
from rater.clock import Clock
from rater.pipeline.decode import CdrBatch, ObjArray
from rater.settings import Settings

#: rated_cdrs columns in insert order (schemas/clickhouse/001_rated_cdrs.sql)
COLUMNS = (
    "topic_id",
    "partition",
    "offset",
    "switch",
    "cdr_id",
    "account",
    "card",
    "auth_id",
    "caller",
    "callee",
    "access_number",
    "start_time",
    "answer_time",
    "end_time",
    "duration",
    "billsec",
    "disposition",
    "hangup_cause",
    "number",
    "prefix",
    "destination",
    "billable_seconds",
    "price",
    "cost",
    "margin",
    "currency",
    "sell_tariff",
    "buy_tariff",
    "reseller",
    "customer",
    "outcome",
    "reason",
    "blocked",
    "revision",
    "sign",
    "rated_at",
)


@dataclass(frozen=True)
class RatedRows:
    """What the pipeline stores per CDR, beside the decoded fields."""

    cdrs: CdrBatch
    number: ObjArray
    prefix: ObjArray
    destination: ObjArray
    billable: npt.NDArray[np.int32]
    price: npt.NDArray[np.int64]
    cost: npt.NDArray[np.int64]
    currency: ObjArray
    sell_tariff: ObjArray
    buy_tariff: ObjArray
    reseller: ObjArray
    customer: ObjArray
    card: ObjArray
    """the card number the CDR was charged to ("" for SIP calls)."""
    outcome: ObjArray
    reason: ObjArray
    """Reason | None per CDR (rater/reasons.py); stored as its text."""
    blocked: npt.NDArray[np.bool_]
    late: npt.NDArray[np.bool_]
    """ended before now minus the de-duplication window (rater/pipeline/fates.py)."""

    def __len__(self) -> int:
        return len(self.cdrs)

    def take(self, index: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> RatedRows:
        values: dict[str, object] = {
            name: getattr(self, name)[index] for name in self.__dataclass_fields__ if name != "cdrs"
        }
        values["cdrs"] = self.cdrs.take(index)
        return RatedRows(**values)  # type: ignore[arg-type]


@dataclass
class CdrStore:
    """Idempotent writer of rated_cdrs for one worker."""

    settings: Settings
    client: Client = field(init=False)
    clock: Clock = field(init=False)
    #: (topic_id, partition) -> highest offset ClickHouse holds (-1: none); learnt on assignment
    _stored_high: dict[tuple[str, int], int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.client = clickhouse.client(self.settings)
        self.clock = Clock.of(self.settings)

    def forget(self, partitions: list[int]) -> None:
        """A partition was revoked: another worker may store it now."""
        for key in [k for k in self._stored_high if k[1] in partitions]:
            del self._stored_high[key]

    def forget_all(self) -> None:
        """A new topic incarnation: every cached high offset belongs to the old log."""
        self._stored_high.clear()

    def stored_high(self, topic_id: str, partition: int) -> int:
        """Highest offset of (topic_id, partition) in ClickHouse (-1 when none), cached."""
        key = (topic_id, partition)
        if key not in self._stored_high:
            rows = self.client.execute(
                "SELECT max(offset), count() FROM rated_cdrs "
                "WHERE topic_id = %(t)s AND partition = %(p)s",
                {"t": topic_id, "p": partition},
                settings={"use_numpy": False},
            )
            high, count = rows[0]
            self._stored_high[key] = int(high) if int(count) else -1
        return self._stored_high[key]

    def already_stored(
        self, topic_id: str, partition: int, offsets: npt.NDArray[np.int64]
    ) -> set[int]:
        """The offsets among `offsets` that ClickHouse already holds."""
        if len(offsets) == 0 or int(offsets.min()) > self.stored_high(topic_id, partition):
            return set()
        rows = self.client.execute(
            "SELECT DISTINCT offset FROM rated_cdrs WHERE topic_id = %(t)s AND partition = %(p)s "
            "AND offset >= %(lo)s AND offset <= %(hi)s",
            {"t": topic_id, "p": partition, "lo": int(offsets.min()), "hi": int(offsets.max())},
            settings={"use_numpy": False},
        )
        return {int(row[0]) for row in rows}

    def store(self, topic_id: str, rows: RatedRows) -> int:
        """Insert the rows ClickHouse does not hold yet; returns how many were inserted."""
        return self.store_all(topic_id, [rows])[0]

    def store_all(self, topic_id: str, parts: Sequence[RatedRows]) -> list[int]:
        """Insert the rows of several batches that ClickHouse does not hold yet, in ONE insert;
        returns how many rows of each part were inserted.

        One insert of many rows costs ClickHouse far less per row than several small ones
        (fewer parts to write and merge, each view run once per block), so the worker gathers
        prepared batches and stores them together (rater/pipeline/checkpoint.py)."""
        kept = [self._not_held(topic_id, rows) for rows in parts]
        filled = [rows for rows in kept if len(rows)]
        if not filled:
            return [0] * len(parts)
        rated_at = self.clock.time()
        pieces = [columns_of(topic_id, rows, rated_at=rated_at) for rows in filled]
        columns = pieces[0]
        if len(pieces) > 1:
            columns = [np.concatenate(column) for column in zip(*pieces, strict=True)]
        self.client.execute(
            f"INSERT INTO rated_cdrs ({', '.join(COLUMNS)}) VALUES", columns, columnar=True
        )
        for rows in filled:
            for partition in np.unique(rows.cdrs.partition):
                key = (topic_id, int(partition))
                high = int(rows.cdrs.offset[rows.cdrs.partition == partition].max())
                self._stored_high[key] = max(self._stored_high.get(key, -1), high)
        return [len(rows) for rows in kept]

    def _not_held(self, topic_id: str, rows: RatedRows) -> RatedRows:
        """The rows whose message identity ClickHouse does not hold yet."""
        if len(rows) == 0:
            return rows
        partitions = rows.cdrs.partition
        keep = np.ones(len(rows), dtype=bool)
        for partition in np.unique(partitions):
            mine = partitions == partition
            held = self.already_stored(topic_id, int(partition), rows.cdrs.offset[mine])
            if held:
                held_offsets = np.fromiter(held, dtype=np.int64)
                keep &= ~(mine & np.isin(rows.cdrs.offset, held_offsets))
        return rows if keep.all() else rows.take(keep)


def columns_of(topic_id: str, rows: RatedRows, *, rated_at: float | None = None) -> list[object]:
    """The insert columns, in COLUMNS order, with the dtypes the numpy driver expects."""
    c = rows.cdrs
    n = len(rows)
    now = np.datetime64(int(rated_at if rated_at is not None else time.time()), "s")
    # plain str objects: astype(str) would make fixed-width strings, which drop trailing NULs
    reasons = np.empty(n, dtype=object)
    reasons[:] = [r.text if r is not None else "" for r in rows.reason.tolist()]
    outcomes = np.empty(n, dtype=object)
    outcomes[:] = [str(o) for o in rows.outcome.tolist()]
    revision = np.zeros(n, dtype=np.uint32)
    sign = np.ones(n, dtype=np.int8)

    def dt(epoch: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
        return epoch.astype("datetime64[s]")

    def const(value: str) -> ObjArray:
        out = np.empty(n, dtype=object)
        out[:] = value
        return out

    return [
        const(topic_id),
        c.partition.astype(np.uint16),
        c.offset.astype(np.uint64),
        c.switch,
        c.cdr_id,
        c.account,
        rows.card,
        c.auth_id,
        c.caller,
        c.callee,
        c.access_number,
        dt(c.start),
        dt(c.answer),
        dt(c.end),
        c.duration.astype(np.uint32),
        c.billsec.astype(np.uint32),
        c.disposition,
        c.hangup_cause,
        rows.number,
        rows.prefix,
        rows.destination,
        rows.billable.astype(np.uint32),
        rows.price.astype(np.int64),
        rows.cost.astype(np.int64),
        (rows.price - rows.cost).astype(np.int64),
        rows.currency,
        rows.sell_tariff,
        rows.buy_tariff,
        rows.reseller,
        rows.customer,
        outcomes,
        reasons,
        rows.blocked.astype(np.uint8),
        revision,
        sign,
        np.full(n, now, dtype="datetime64[s]"),
    ]


# ------------------------------------------------------------------------ copies of CDRs
#: the C escapes ClickHouse reads in a string literal
_ESCAPES = str.maketrans({"\\": "\\\\", "'": "\\'", "\0": "\\0", "\b": "\\b", "\f": "\\f",
                          "\r": "\\r", "\n": "\\n", "\t": "\\t"})  # fmt: skip

Identity = tuple[str, int, int]


def _text(value: str) -> str:
    return "'" + value.translate(_ESCAPES) + "'"


def stored_copies(
    ch: Executor,
    pairs: Sequence[tuple[str, str]],
    start_from: int,
    start_to: int,
    *,
    rated_only: bool = False,
) -> dict[tuple[str, str], set[Identity]]:
    """(switch, cdr_id) -> message identities of its live rows in rated_cdrs (all outcomes, or
    only rated and unanswered ones). A copy of a CDR carries its start time: the search is
    limited to starts in [start_from, start_to] (epoch seconds), which prunes partitions.

    ClickHouse parses at most max_query_size (256 KiB by default) of a query: pairs are sent
    about 64 KiB at a time, and a pair too long to quote is looked for by its byte length and
    first characters, then compared whole here."""
    wanted = set(pairs)
    found: dict[tuple[str, str], set[Identity]] = {}
    for condition in _conditions(sorted(wanted)):
        outcome = " AND outcome IN ('rated', 'unanswered')" if rated_only else ""
        rows = ch.rows(
            "SELECT switch, cdr_id, topic_id, partition, offset FROM rated_cdrs"
            f" WHERE start_time >= toDateTime({int(start_from)})"
            f" AND start_time <= toDateTime({int(start_to)}) AND ({condition}){outcome}"
            " GROUP BY switch, cdr_id, topic_id, partition, offset HAVING sum(sign) > 0"
        )
        for switch, cdr_id, topic_id, partition, offset in rows:
            if (switch, cdr_id) in wanted:
                found.setdefault((switch, cdr_id), set()).add(
                    (topic_id, int(partition), int(offset))
                )
    return found


#: characters of a value quoted whole; a longer one is matched by length and this many first
_QUOTED_MAX = 1000
#: characters of pairs per query (well under ClickHouse's max_query_size of 262,144 bytes)
_QUERY_CHARS = 64_000


def _conditions(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """WHERE conditions matching the pairs, each small enough for one query."""
    out: list[str] = []
    listed: list[str] = []
    size = 0
    for switch, cdr_id in pairs:
        if len(switch) > _QUOTED_MAX or len(cdr_id) > _QUOTED_MAX:
            out.append(f"{_prefix_match('switch', switch)} AND {_prefix_match('cdr_id', cdr_id)}")
            continue
        literal = f"({_text(switch)}, {_text(cdr_id)})"
        if listed and size + len(literal) > _QUERY_CHARS:
            out.append(f"(switch, cdr_id) IN ({', '.join(listed)})")
            listed, size = [], 0
        listed.append(literal)
        size += len(literal) + 2
    if listed:
        out.append(f"(switch, cdr_id) IN ({', '.join(listed)})")
    return out


def _prefix_match(column: str, value: str) -> str:
    return (
        f"length({column}) = {len(value.encode())}"
        f" AND startsWith({column}, {_text(value[:_QUOTED_MAX])})"
    )


class CopyFinder:
    """`stored_copies` for the pipeline, on a client of its own: the store's client may be in
    use by the previous batch's insert (the worker overlaps them), and a driver client is not
    safe to share between threads. Connects on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ch: Executor | None = None

    def __call__(
        self, pairs: Sequence[tuple[str, str]], start_from: int, start_to: int
    ) -> dict[tuple[str, str], set[Identity]]:
        if self._ch is None:
            self._ch = DriverExecutor.from_settings(self.settings)
        return stored_copies(self._ch, pairs, start_from, start_to)
