"""The debit script's packed arguments, decoded here with the same struct format as in Lua."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rater.errors import DebitError
from rater.pipeline.debit import RECORD, DebitBatch, Debiter, topic_token
from rater.redis import keys
from rater.settings import Settings


class _NoRedis:
    """encode() never talks to Redis; anything else would be a bug in this test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"encode must not call Redis ({name})")


def _batch(**changes: object) -> DebitBatch:
    values: dict[str, object] = {
        "topic_id": "incarnation-1",
        "partition": 3,
        "offsets": np.array([7, 9, 12], dtype=np.int64),
        "switches": ["sw1", "sw:2", "sw1"],
        "cdr_ids": ["a", "b", "c"],
        "customers": ["C1", "", "C1"],
        "cards": ["8123", "", ""],
        "resellers": ["R1", "", "R1"],
        "prices": np.array([1_500_000, 0, 7], dtype=np.int64),
        "costs": np.array([900_000, 0, 3], dtype=np.int64),
        "auth_ids": ["auth-1", "", ""],
    }
    values.update(changes)
    return DebitBatch(**values)  # type: ignore[arg-type]


def test_records_unpack_with_the_lua_format() -> None:
    debiter = Debiter(_NoRedis(), settings=Settings())  # type: ignore[arg-type]
    args = debiter.encode(_batch())
    assert RECORD.itemsize == struct.calcsize("<18sqqiiiii") == 54
    records, fields = args[14], args[15]
    token = topic_token("incarnation-1")
    unpacked = list(struct.iter_unpack("<18sqqiiiii", records))
    assert [u[0] for u in unpacked] == [token + struct.pack("<Hq", 3, o) for o in (7, 9, 12)]
    # price, cost, reseller, customer, card, auth indexes (1-based; 0 = none)
    assert [u[1:7] for u in unpacked] == [
        (1_500_000, 900_000, 1, 1, 1, 1),
        (0, 0, 2, 0, 0, 0),
        (7, 3, 1, 1, 0, 0),
    ]
    lengths = [u[7] for u in unpacked]
    expected = [keys.dedup_field(s, c) for s, c in (("sw1", "a"), ("sw:2", "b"), ("sw1", "c"))]
    assert [len(e) for e in expected] == lengths
    assert fields == "".join(expected).encode()
    assert args[8] == "R1\n"  # reseller table: R1, then '' for the unknown account
    assert args[4:8] == ["2", "1", "1", "1"]
    assert args[9] == "C1"
    assert struct.unpack("<i", args[10]) == (1,)  # C1 belongs to reseller 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"offsets": np.array([7, 7, 12])}, "ascending"),
        ({"prices": np.array([-1, 0, 0])}, ">= 0"),
        ({"cdr_ids": ["a", "b"]}, "cdr_ids has 2 entries"),
        ({"customers": ["", "", "C1"]}, "no customer"),
        ({"partition": 70_000}, "partition"),
    ],
)
def test_malformed_batches(changes: dict[str, object], message: str) -> None:
    debiter = Debiter(_NoRedis(), settings=Settings())  # type: ignore[arg-type]
    with pytest.raises(DebitError, match=message):
        debiter.encode(_batch(**changes))
