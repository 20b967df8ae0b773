"""Every top-up, credit and adjustment, with its reason, into the ClickHouse `ledger` table.

(Call debits reach the ledger through materialized views on rated_cdrs, added by the pipeline.)
Redis is the balance of record; an entry that cannot be written to ClickHouse right away is kept
in the Redis list `ledger:pending` and written before the next entries, so none is lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import errors as ch_errors

from rater import clickhouse
from rater.logs import get_logger
from rater.redis_client import RedisLike
from rater.settings import Settings

log = get_logger(__name__)

PENDING = "ledger:pending"
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


@dataclass(frozen=True)
class LedgerEntry:
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
        values = asdict(self)
        values["ts"] = self.ts.astimezone(UTC).replace(tzinfo=None)
        return tuple(values[name] for name in COLUMNS)

    def to_json(self) -> str:
        values = asdict(self)
        values["ts"] = self.ts.isoformat()
        return json.dumps(values)

    @classmethod
    def from_json(cls, text: str | bytes) -> LedgerEntry:
        values = json.loads(text)
        values["ts"] = datetime.fromisoformat(values["ts"])
        return cls(**values)


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

    def write(self, entries: Sequence[LedgerEntry]) -> int:
        """One insert for the given entries plus any left pending by an earlier failure."""
        pending: list[LedgerEntry] = []
        if self.redis is not None:
            pending = [LedgerEntry.from_json(raw) for raw in self.redis.lrange(PENDING, 0, -1)]
        rows = [e.row() for e in [*pending, *entries]]
        if not rows:
            return 0
        try:
            ch = clickhouse.client(self.settings, numpy=False)
            ch.execute(f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES", rows)
        except (ch_errors.Error, OSError, EOFError) as error:
            if self.redis is None:
                raise
            log.warning(
                "ledger insert failed; kept in Redis", error=str(error), entries=len(entries)
            )
            if entries:
                self.redis.rpush(PENDING, *[e.to_json() for e in entries])
            return 0
        if pending and self.redis is not None:
            self.redis.ltrim(PENDING, len(pending), -1)
        return len(rows)
