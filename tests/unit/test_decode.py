"""Decoding CDR messages into columnar batches; every invalid kind of docs/DESIGN.md section 4."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.pipeline.decode import CdrBatch, decode, fixed_zone_of, zone
from rater.reasons import Kind


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def cdr(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cdr_id": "c-1",
        "switch": "sw1",
        "account": "cust-1",
        "caller": "+31201234567",
        "callee": "+4930123456",
        "start_time": "2026-11-01T10:00:00+01:00",
        "answer_time": "2026-11-01T10:00:05+01:00",
        "end_time": "2026-11-01T10:05:05+01:00",
        "billsec": 300,
        "disposition": "ANSWERED",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def one(message: dict[str, Any] | bytes, tz: str = "UTC") -> tuple[CdrBatch, list[Any]]:
    value = message if isinstance(message, bytes) else orjson.dumps(message)
    return decode([Rec(3, 17, b"k", value, 1234)], fixed_zone_of({}, tz))


def test_valid_cdr_decodes_into_columns() -> None:
    batch, rejects = one(cdr(card="800000000001", duration=305))
    assert rejects == []
    assert len(batch) == 1
    assert batch.partition.tolist() == [3]
    assert batch.offset.tolist() == [17]
    assert batch.kafka_ts.tolist() == [1234]
    assert batch.cdr_id[0] == "c-1"
    assert batch.card[0] == "800000000001"
    assert batch.auth_id[0] == ""
    start = int(datetime(2026, 11, 1, 9, 0, tzinfo=UTC).timestamp())
    assert batch.start.tolist() == [start]
    assert batch.answer.tolist() == [start + 5]
    assert batch.end.tolist() == [start + 305]
    assert batch.billsec.tolist() == [300]
    assert batch.duration.tolist() == [305]
    assert batch.start.dtype == np.int64
    assert batch.billsec.dtype == np.int32


def test_duration_defaults_to_end_minus_start() -> None:
    batch, _ = one(cdr())
    assert batch.duration.tolist() == [305]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_790_000_000, 1_790_000_000),
        (1_790_000_000_123, 1_790_000_000),
        ("1790000000", 1_790_000_000),
        ("1790000000123", 1_790_000_000),
        (1_790_000_000.9, 1_790_000_000),
        ("2026-09-21T14:13:20Z", 1_790_000_000),
        ("2026-09-21T16:13:20+02:00", 1_790_000_000),
        ("2026-09-21 14:13:20", 1_790_000_000),  # no offset: the switch's zone (UTC here)
    ],
)
def test_timestamp_forms(value: object, expected: int) -> None:
    batch, rejects = one(cdr(start_time=value, answer_time="", end_time=expected + 60, billsec=0))
    assert rejects == []
    assert batch.start.tolist() == [expected]
    assert batch.answer.tolist() == [0]


def test_timestamp_without_offset_uses_switch_zone() -> None:
    message = cdr(
        start_time="2026-07-01 12:00:00", answer_time=None, end_time="2026-07-01 12:00:30"
    )
    batch, _ = one(message, tz="Europe/Amsterdam")
    expected = datetime(2026, 7, 1, 12, tzinfo=timezone(timedelta(hours=2))).timestamp()
    assert batch.start.tolist() == [int(expected)]


@pytest.mark.parametrize(
    ("message", "kind", "detail"),
    [
        (b"{not json", Kind.BAD_JSON, ""),
        (b"", Kind.BAD_JSON, "empty message"),
        (b"[1, 2]", Kind.NOT_AN_OBJECT, "got array"),
        (cdr(cdr_id=_DROP), Kind.MISSING, "cdr_id"),
        (cdr(switch=12), Kind.WRONG_TYPE, "switch: expected a string, got number"),
        (cdr(account=""), Kind.EMPTY, "account"),
        (cdr(card=5), Kind.WRONG_TYPE, "card: expected a string"),
        (cdr(billsec="300"), Kind.WRONG_TYPE, "billsec: expected an integer, got string"),
        (cdr(billsec=True), Kind.WRONG_TYPE, "billsec: expected an integer, got boolean"),
        (cdr(billsec=1.5), Kind.WRONG_TYPE, "billsec: expected an integer"),
        (cdr(billsec=_DROP), Kind.MISSING, "billsec"),
        (cdr(billsec=-5), Kind.NEGATIVE, "billsec -5"),
        (cdr(end_time="2026-11-01T09:59:00+01:00"), Kind.END_BEFORE_START, "end_time"),
        (cdr(start_time="yesterday"), Kind.BAD_TIME, "start_time 'yesterday' is not ISO 8601"),
        (cdr(start_time=_DROP), Kind.MISSING, "start_time"),
        (cdr(end_time=[1]), Kind.WRONG_TYPE, "end_time: expected ISO 8601 or epoch"),
        (cdr(start_time=-10), Kind.OUT_OF_RANGE, "start_time -10 is outside 1970..2106"),
        (cdr(answer_time="2026-11-01T11:00:00+01:00"), Kind.ANSWER_OUTSIDE_CALL, "answer_time"),
        (cdr(duration=-1), Kind.NEGATIVE, "duration"),
        # int32 columns and the kernel's exact range: longer is invalid, never an overflow
        (cdr(billsec=2**31), Kind.OUT_OF_RANGE, "billsec"),
        (cdr(billsec=2**32 - 1), Kind.OUT_OF_RANGE, "billsec"),
        (cdr(duration=2**31), Kind.OUT_OF_RANGE, "duration"),
        (cdr(auth_id="a\nb"), Kind.BAD_AUTH_ID, "auth_id 'a\\nb'"),
    ],
)
def test_invalid_records_are_rejected_with_reason(message: Any, kind: Kind, detail: str) -> None:
    batch, rejects = one(message)
    assert len(batch) == 0
    assert len(rejects) == 1
    reject = rejects[0]
    assert reject.reason.kind == kind
    assert detail in reject.reason.detail
    assert (reject.partition, reject.offset, reject.key) == (3, 17, b"k")
    original = message if isinstance(message, bytes) else orjson.dumps(message)
    assert reject.value == original


def test_mixed_batch_keeps_order_and_take_selects_rows() -> None:
    values = [orjson.dumps(cdr(cdr_id=f"c{i}", billsec=i)) for i in range(5)]
    values[2] = b"garbage"
    records = [Rec(0, 100 + i, None, v) for i, v in enumerate(values)]
    batch, rejects = decode(records, fixed_zone_of({}))
    assert batch.offset.tolist() == [100, 101, 103, 104]
    assert [r.offset for r in rejects] == [102]
    picked = batch.take(batch.billsec > 1)
    assert picked.cdr_id.tolist() == ["c3", "c4"]
    assert len(CdrBatch.empty()) == 0


def test_unknown_zone_is_named() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone("Mars/Olympus")


@given(
    start=st.integers(0, 4_000_000_000),
    length=st.integers(0, 100_000),
    billsec=st.integers(0, 100_000),
    as_ms=st.booleans(),
    as_iso=st.booleans(),
)
def test_any_valid_times_round_trip(
    start: int, length: int, billsec: int, as_ms: bool, as_iso: bool
) -> None:
    end = start + length
    if end > 2**32 - 1:
        return
    if as_iso:
        s: object = datetime.fromtimestamp(start, UTC).isoformat()
        e: object = datetime.fromtimestamp(end, UTC).isoformat()
    elif as_ms:
        s, e = start * 1000, end * 1000
    else:
        s, e = start, end
    batch, rejects = one(cdr(start_time=s, end_time=e, answer_time=None, billsec=billsec))
    if as_ms and start * 1000 < 100_000_000_000:
        # small millisecond values are read as seconds: a CDR from 1973 is not realistic
        return
    assert rejects == []
    assert batch.start.tolist() == [start]
    assert batch.end.tolist() == [end]
    assert batch.billsec.tolist() == [billsec]
