"""The store inserts the rows of several prepared batches in one insert (rater/pipeline/
store.py, `store_all`): each message identity once, whatever ClickHouse already holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from rater.pipeline.decode import decode, strings_of
from rater.pipeline.store import CdrStore, RatedRows
from rater.settings import Settings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class _Record:
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int = 0


def _rows(switch: str, partition: int, offsets: list[int]) -> RatedRows:
    records = [
        _Record(partition, o, orjson.dumps({
            "cdr_id": f"c{partition}-{o}", "switch": switch, "account": "cust1",
            "caller": "+31201234567", "callee": "+493012345678", "start_time": 1_780_000_000,
            "answer_time": 1_780_000_005, "end_time": 1_780_000_065, "billsec": 60,
            "disposition": "ANSWERED",
        }))
        for o in offsets
    ]  # fmt: skip
    cdrs, rejects = decode(records, lambda _: None)
    assert not rejects
    n = len(offsets)

    def text(value: str) -> Any:
        return strings_of([value] * n)

    return RatedRows(
        cdrs=cdrs, number=text("493012345678"), prefix=text("49"), destination=text("Germany"),
        billable=np.full(n, 60, np.int32), price=np.full(n, 1_000, np.int64),
        cost=np.full(n, 400, np.int64), currency=text("EUR"), sell_tariff=text("retail@1"),
        buy_tariff=text("wholesale@1"), reseller=text("res1"), customer=text("cust1"),
        card=text(""), outcome=text("rated"), reason=strings_of([None] * n),  # type: ignore[list-item]
        blocked=np.zeros(n, bool), late=np.zeros(n, bool),
    )  # fmt: skip


def test_parts_go_in_one_insert_each_identity_once(settings: Settings, ch: Any) -> None:
    switch = "sw-" + uuid.uuid4().hex[:6]
    topic = "topic-" + uuid.uuid4().hex[:6]
    store = CdrStore(settings)
    assert store.store(topic, _rows(switch, 0, [10, 11])) == 2
    # a replay of that batch beside two new ones, gathered: only the new identities go in
    parts = [_rows(switch, 0, [10, 11, 12]), _rows(switch, 1, [5, 6]), _rows(switch, 0, [13])]
    assert store.store_all(topic, parts) == [1, 2, 1]
    assert CdrStore(settings).store_all(topic, parts) == [0, 0, 0]  # a fresh store asks
    rows = ch.execute(
        "SELECT partition, offset, count() FROM rated_cdrs WHERE topic_id = %(t)s "
        "GROUP BY partition, offset ORDER BY partition, offset",
        {"t": topic},
    )
    assert rows == [(0, 10, 1), (0, 11, 1), (0, 12, 1), (0, 13, 1), (1, 5, 1), (1, 6, 1)]
    assert store.store_all(topic, []) == []
