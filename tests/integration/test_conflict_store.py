"""ClickHouse cdr_conflicts: stored once per message identity, listed newest first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest
from clickhouse_driver import Client

from rater.pipeline.conflicts import Conflicts, ConflictStore
from rater.pipeline.debit import DebitResult, Outcome
from rater.pipeline.decode import decode

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class _Record:
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int = 0


def _conflicts(switch: str, offsets: list[int]) -> Conflicts:
    records = [
        _Record(2, o, orjson.dumps({
            "cdr_id": "c1", "switch": switch, "account": "cust1", "caller": "+31201234567",
            "callee": "+493012345678", "start_time": 1_780_000_000, "answer_time": "",
            "end_time": 1_780_000_300, "billsec": 300, "disposition": "ANSWERED",
        }))
        for o in offsets
    ]  # fmt: skip
    cdrs, rejects = decode(records, lambda _: None)
    assert not rejects
    n = len(offsets)
    result = DebitResult(
        outcome=np.full(n, Outcome.CONFLICT, dtype=np.int8),
        blocked=np.zeros(n, dtype=np.bool_),
        replayed=np.zeros(n, dtype=np.bool_),
        first=np.tile(np.array([[2, 7]], dtype=np.int64), (n, 1)),
    )
    return Conflicts.of(cdrs, result)


def test_conflicts_are_stored_once_per_message(ch_numpy: Client, ch: Any) -> None:
    store = ConflictStore(ch_numpy)
    switch = "sw-" + uuid.uuid4().hex[:6]
    assert store.store("topic-a", _conflicts(switch, [10, 11])) == 2
    # a replay of the batch: the same messages again, plus a new one
    assert store.store("topic-a", _conflicts(switch, [10, 11, 12])) == 1
    assert store.store("topic-b", _conflicts(switch, [10])) == 1  # another incarnation
    listed = ConflictStore(ch).recent(switch=switch)
    assert sorted((r["topic_id"], r["offset"]) for r in listed) == [
        ("topic-a", 10), ("topic-a", 11), ("topic-a", 12), ("topic-b", 10),
    ]  # fmt: skip
    assert {(r["first_partition"], r["first_offset"], r["billsec"]) for r in listed} == {
        (2, 7, 300)
    }
    assert ConflictStore(ch).recent(switch=switch, limit=1)[0]["switch"] == switch
