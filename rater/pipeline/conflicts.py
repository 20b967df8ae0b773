"""Conflicting re-sends: the same (switch, cdr_id) again with other rating fields.

The debit answers CONFLICT for such a copy (rater/pipeline/debit.py): it is not charged and not
stored in rated_cdrs; it is kept in ClickHouse `cdr_conflicts` (schemas/clickhouse/
060_cdr_conflicts.sql) for an operator, shown by `rater conflicts list` and counted in
`rater_cdrs_total{outcome="conflict"}`. Storing is idempotent by message identity: a replayed
batch gets CONFLICT again and its rows are not written twice.

The driver is synchronous; the pipeline calls `store` in a thread (asyncio.to_thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from clickhouse_driver import Client

from rater.pipeline.debit import DebitResult
from rater.pipeline.decode import CdrBatch
from rater.redis.codes import DebitOutcome

#: cdr_conflicts columns in insert order
COLUMNS = (
    "topic_id", "partition", "offset", "switch", "cdr_id", "account", "card", "caller", "callee",
    "start_time", "answer_time", "end_time", "duration", "billsec", "disposition",
    "first_partition", "first_offset", "detected_at",
)  # fmt: skip


@dataclass(frozen=True)
class Conflicts:
    """The conflicting copies of a batch and, per copy, the (partition, offset) charged."""

    cdrs: CdrBatch
    first: npt.NDArray[np.int64]  #: shape (n, 2)

    def __len__(self) -> int:
        return len(self.cdrs)

    @classmethod
    def of(cls, cdrs: CdrBatch, result: DebitResult) -> Conflicts:
        """The CDRs the debit answered CONFLICT for."""
        mine = result.outcome == DebitOutcome.CONFLICT
        first = result.first if result.first is not None else np.full((len(cdrs), 2), -1)
        return cls(cdrs.take(mine), np.asarray(first, dtype=np.int64)[mine])


@dataclass
class ConflictStore:
    """Writes and reads cdr_conflicts."""

    client: Client

    def store(self, topic_id: str, conflicts: Conflicts) -> int:
        """Insert the conflicts ClickHouse does not hold yet; how many were inserted."""
        if len(conflicts) == 0:
            return 0
        c = conflicts.cdrs
        held = {
            (int(p), int(o))
            for p, o in self.client.execute(
                "SELECT partition, offset FROM cdr_conflicts WHERE topic_id = %(t)s "
                "AND offset >= %(lo)s AND offset <= %(hi)s",
                {"t": topic_id, "lo": int(c.offset.min()), "hi": int(c.offset.max())},
                settings={"use_numpy": False},
            )
        }
        keep = np.array(
            [(int(p), int(o)) not in held for p, o in zip(c.partition, c.offset, strict=True)],
            dtype=np.bool_,
        )
        if not keep.any():
            return 0
        c = c.take(keep)
        first = conflicts.first[keep]
        n = len(c)
        now = np.datetime64(int(time.time()), "s")
        topic = np.empty(n, dtype=object)
        topic[:] = topic_id
        self.client.execute(
            f"INSERT INTO cdr_conflicts ({', '.join(COLUMNS)}) VALUES",
            [
                topic, c.partition.astype(np.uint16), c.offset.astype(np.uint64), c.switch,
                c.cdr_id, c.account, c.card, c.caller, c.callee,
                c.start.astype("datetime64[s]"), c.answer.astype("datetime64[s]"),
                c.end.astype("datetime64[s]"), c.duration.astype(np.uint32),
                c.billsec.astype(np.uint32), c.disposition,
                np.maximum(first[:, 0], 0).astype(np.uint16),
                np.maximum(first[:, 1], 0).astype(np.uint64),
                np.full(n, now, dtype="datetime64[s]"),
            ],
            columnar=True,
        )  # fmt: skip
        return n

    def recent(
        self, *, limit: int = 50, switch: str | None = None, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The latest conflicts, newest first, one dict per row (column -> value)."""
        where = ["1"]
        params: dict[str, Any] = {"limit": limit}
        if switch is not None:
            where.append("switch = %(switch)s")
            params["switch"] = switch
        if since is not None:
            where.append("detected_at >= %(since)s")
            params["since"] = since
        rows = self.client.execute(
            f"SELECT {', '.join(COLUMNS)} FROM cdr_conflicts WHERE {' AND '.join(where)} "
            "ORDER BY detected_at DESC, switch, cdr_id, partition, offset LIMIT %(limit)s",
            params,
            settings={"use_numpy": False},
        )
        return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
