"""The debit script's packed arguments, decoded here with the contract's struct formats."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from rater.errors import DebitError
from rater.pipeline.debit import RECORD, DebitBatch, Debiter, fingerprints, topic_token
from rater.redis import keys
from rater.redis.contract import DEBIT_ARGS, MAX_AMOUNT, struct_format
from rater.redis.topology import SingleServer
from rater.settings import Settings


class _NoRedis:
    """encode() never talks to Redis; anything else would be a bug in this test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"encode must not call Redis ({name})")


def _debiter() -> Debiter:
    return Debiter(SingleServer(_NoRedis()), settings=Settings())  # type: ignore[arg-type]


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


def unpack_strings(blob: bytes) -> list[str]:
    """common.lua's unpack_strings, in Python."""
    (n,) = struct.unpack_from("<i", blob)
    lengths = struct.unpack_from(f"<{n}i", blob, 4)
    out, pos = [], 4 + 4 * n
    for length in lengths:
        out.append(blob[pos : pos + length].decode("utf-8", "surrogatepass"))
        pos += length
    return out


def test_records_unpack_with_the_lua_format() -> None:
    args = dict(zip(DEBIT_ARGS, _debiter().encode(_batch()), strict=True))
    lua = struct_format(RECORD, ("token", "partition", "offset"))
    python = lua.replace("c18", "18s").replace("c8", "8s").replace("i8", "q").replace("i4", "i")
    assert RECORD.itemsize == struct.calcsize(python) == 62
    token = topic_token("incarnation-1")
    unpacked = list(struct.iter_unpack(python, args["records"]))
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
    assert [u[8] for u in unpacked] == [bytes(8)] * 3  # no fingerprints given
    assert args["fields"] == "".join(expected).encode()
    assert unpack_strings(args["resellers"]) == ["R1", ""]  # '' for the unknown account
    assert unpack_strings(args["customers"]) == ["C1"]
    assert unpack_strings(args["cards"]) == ["8123"]
    assert unpack_strings(args["auth_ids"]) == ["auth-1"]
    assert struct.unpack("<i", args["customer_reseller"]) == (1,)  # C1 belongs to reseller 1
    assert args["external"] == b""


def test_ids_travel_in_key_form_and_lists_cannot_be_shifted() -> None:
    """A newline, ':' or brace in a name neither splits a list nor reaches a key as such."""
    batch = _batch(
        customers=["C\n1", "", "C\n1"],
        cards=["x}{y", "", ""],
        auth_ids=["a\nb", "", "a1f"],
    )
    args = dict(zip(DEBIT_ARGS, _debiter().encode(batch), strict=True))
    assert unpack_strings(args["customers"]) == [keys.name("C\n1")]
    assert unpack_strings(args["cards"]) == ["x%7D%7By"]
    # an authorization id rater cannot have issued names no reservation: not sent
    assert unpack_strings(args["auth_ids"]) == ["a1f"]


def test_fingerprints_differ_by_each_rating_field_and_are_never_zero() -> None:
    base = {
        "accounts": ["C1"],
        "cards": [""],
        "callees": ["31201234567"],
        "billsecs": np.array([60]),
        "starts": np.array([1_700_000_000]),
        "ends": np.array([1_700_000_065]),
    }
    first = fingerprints(**base)  # type: ignore[arg-type]
    assert first[0] != 0
    assert fingerprints(**base)[0] == first[0]  # type: ignore[arg-type]
    for name, other in [
        ("accounts", ["C2"]),
        ("cards", ["8123"]),
        ("callees", ["31201234568"]),
        ("billsecs", np.array([61])),
        ("starts", np.array([1_700_000_001])),
        ("ends", np.array([1_700_000_066])),
    ]:
        assert fingerprints(**{**base, name: other})[0] != first[0], name  # type: ignore[arg-type]


def test_a_fingerprint_does_not_depend_on_the_other_cdrs_of_its_batch() -> None:
    """numpy pads a column to its longest string: the padding must not reach the hash."""

    def one(accounts: list[str], callees: list[str]) -> int:
        n = len(accounts)
        prints = fingerprints(
            accounts=accounts, cards=[""] * n, callees=callees, billsecs=np.full(n, 60),
            starts=np.full(n, 1_700_000_000), ends=np.full(n, 1_700_000_065),
        )  # fmt: skip
        return int(prints[0])

    alone = one(["C1"], ["31201234567"])
    assert one(["C1", "a-much-longer-account-id"], ["31201234567", "4930123456789012"]) == alone


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"offsets": np.array([7, 7, 12])}, "ascending"),
        ({"prices": np.array([-1, 0, 0])}, ">= 0"),
        ({"prices": np.array([0.5, 0, 0])}, "integer micro-units"),
        ({"cdr_ids": ["a", "b"]}, "cdr_ids has 2 entries"),
        ({"customers": ["", "", "C1"]}, "no customer"),
        ({"partition": 70_000}, "partition"),
        ({"fingerprints": np.zeros(2, dtype=np.uint64)}, "fingerprints has 2 entries"),
    ],
)
def test_malformed_batches(changes: dict[str, object], message: str) -> None:
    with pytest.raises(DebitError, match=message):
        _debiter().validate(_batch(**changes))


def test_amounts_beyond_int64_stay_beyond_the_bound_never_wrap() -> None:
    """The script answers OUT_OF_RANGE for them; a wrapped value could look like a small one."""
    debiter = _debiter()
    huge = [2**64 - 1, 0, 2**63 + 5]
    for prices in (np.array(huge, dtype=np.uint64), np.array(huge, dtype=object)):
        valid = debiter.validate(_batch(prices=prices))
        assert valid.prices.tolist() == [MAX_AMOUNT + 1, 0, MAX_AMOUNT + 1]
