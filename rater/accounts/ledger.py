"""Every top-up, credit and adjustment, with its reason, into the ClickHouse `ledger` table.

(Call debits reach the ledger through materialized views on rated_cdrs, added by the pipeline.)
Redis is the balance of record; an entry that cannot be written to ClickHouse right away is kept
in the Redis list `ledger:pending` and written before the next entries, so none is lost.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from clickhouse_driver import errors as ch_errors

from rater import clickhouse
from rater.logs import get_logger
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

log = get_logger(__name__)

PENDING = keys.LEDGER_PENDING
COLUMNS = (
    "entry_id",
    "ts",
    "level",
    "reseller",
    "customer",
    "card",
    "kind",
    "amount",
    "currency",
    "reason",
    "ref",
    "actor",
)


@dataclass(frozen=True, kw_only=True)
class LedgerEntry:
    """One balance change; keyword arguments only (nine positional strings were easy to swap)."""

    level: str  # reseller | customer | card
    reseller: str
    customer: str
    card: str
    kind: str  # credit | topup | adjustment | batch_funding | card_issue | initial
    amount: int  # signed micro-units: positive adds to the balance
    currency: str
    reason: str
    ref: str = ""  # batch id, auth id, ...
    actor: str = ""
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def row(self) -> tuple[Any, ...]:
        """The values in COLUMNS order (read directly: dataclasses.asdict deep-copies)."""
        return (
            self.entry_id, _naive_utc(self.ts), self.level, self.reseller, self.customer,
            self.card, self.kind, self.amount, self.currency, self.reason, self.ref, self.actor,
        )  # fmt: skip

    def to_json(self) -> str:
        values = asdict(self)
        values["ts"] = self.ts.isoformat()
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str | bytes) -> LedgerEntry:
        values = json.loads(text)
        values["ts"] = datetime.fromisoformat(values["ts"])
        return cls(**values)


def _naive_utc(ts: datetime) -> datetime:
    """ClickHouse DateTime values go in as naive UTC."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo is not None else ts


def _row_json(row: Sequence[Any]) -> str:
    """LedgerEntry.to_json of a row (naive ts values are UTC)."""
    values = dict(zip(COLUMNS, row, strict=True))
    values["ts"] = values["ts"].replace(tzinfo=UTC).isoformat()
    return json.dumps(values)


def new_entry_ids(count: int) -> list[str]:
    """`count` random version-4 UUIDs in hex (like uuid4().hex), from one random draw."""
    raw = np.frombuffer(secrets.token_bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [text[i : i + 32] for i in range(0, 32 * count, 32)]


@dataclass(frozen=True)
class CardIssues:
    """One `card_issue` entry per card of a batch (every card's opening balance, which the
    reconciliation expects), kept as columns: building 100,000 LedgerEntry objects took
    seconds, these columns take milliseconds."""

    reseller: str
    customer: str
    numbers: Sequence[str]
    amount: int  # each card's value, micro-units
    currency: str
    reason: str
    ref: str = ""
    actor: str = ""
    ts: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __len__(self) -> int:
        return len(self.numbers)

    def columns(self) -> list[list[Any]]:
        """The values in COLUMNS order, one list per column."""
        n = len(self.numbers)
        return [
            new_entry_ids(n), [_naive_utc(self.ts)] * n, ["card"] * n, [self.reseller] * n,
            [self.customer] * n, list(self.numbers), ["card_issue"] * n, [self.amount] * n,
            [self.currency] * n, [self.reason] * n, [self.ref] * n, [self.actor] * n,
        ]  # fmt: skip


class LedgerWriter:
    """Batch inserts into `ledger`; falls back to a Redis list when ClickHouse is away."""

    def __init__(self, settings: Settings, redis_client: RedisLike | None = None) -> None:
        self.settings = settings
        self.redis: Any = redis_client
        self._buffer: list[LedgerEntry] = []

    def add(self, entry: LedgerEntry) -> None:
        self._buffer.append(entry)

    def flush(self) -> int:
        """Write the buffered entries (and any pending ones); returns how many were written."""
        entries, self._buffer = self._buffer, []
        return self.write(entries)

    def write(self, entries: Sequence[LedgerEntry], *, cards: CardIssues | None = None) -> int:
        """One insert for the given entries (and a batch's card issues) plus any left pending
        by an earlier failure; returns how many rows were written."""
        pending: list[LedgerEntry] = []
        if self.redis is not None:
            pending = [LedgerEntry.from_json(raw) for raw in self.redis.lrange(PENDING, 0, -1)]
        rows = [e.row() for e in [*pending, *entries]]
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in COLUMNS]
        if cards is not None and len(cards):
            for column, more in zip(columns, cards.columns(), strict=True):
                column.extend(more)
        total = len(columns[0])
        if not total:
            return 0
        try:
            ch = clickhouse.client(self.settings, numpy=False)
            # columnar: the driver does not transpose 100,000 row tuples itself
            ch.execute(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES", columns,
                       columnar=True)  # fmt: skip
        except (ch_errors.Error, OSError, EOFError) as error:
            if self.redis is None:
                raise
            log.warning("ledger insert failed; kept in Redis", error=str(error), entries=total)
            fresh = [e.to_json() for e in entries]
            if cards is not None and len(cards):
                fresh += [_row_json(row) for row in zip(*cards.columns(), strict=True)]
            for first in range(0, len(fresh), 10_000):  # bounded RPUSH commands
                self.redis.rpush(PENDING, *fresh[first : first + 10_000])
            return 0
        if pending and self.redis is not None:
            self.redis.ltrim(PENDING, len(pending), -1)
        return total
