"""Python and the Lua scripts agree, one test per contract (rater/redis/contract.py): the
header's key functions, codes, record layouts, argument positions and the packed string lists
are run inside Redis and compared with what Python builds."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from rater.pipeline.debit import DebitBatch, Debiter, topic_token
from rater.redis import codes, keys
from rater.redis.contract import (
    CDR_RECORD,
    CLAIM_ARGS,
    CLAIM_ENTRY,
    DEBIT_ARGS,
    EXTERNAL_RECORD,
    MAX_AMOUNT,
    STORED_RECORD,
    lua_header,
    pack_strings,
)
from rater.redis.scripts import prelude
from rater.settings import Settings

pytestmark = pytest.mark.integration

SEGMENTS = ["R1", "C%0A1", "8123", "x", "7"]


def lua(redis: Any, body: str, *args: Any) -> Any:
    """Run body after the generated header and common.lua, as every script gets them."""
    assert prelude().startswith(lua_header())
    return redis.eval(prelude() + body, 0, *args)


def test_key_functions_spell_keys_as_python_does(redis: Any) -> None:
    for shape in keys.SHAPES.values():
        values = SEGMENTS[: len(shape.segments)]
        call = f"return K.{shape.family}({', '.join(f'ARGV[{i + 1}]' for i in range(len(values)))})"
        assert lua(redis, call, *values).decode() == shape.encoded(*values), shape.family
    for name, key in keys.FIXED_KEYS.items():
        assert lua(redis, f"return FIXED.{name}").decode() == key
    # and the Python builders are those shapes with each segment in key form
    assert keys.customer("R1", "C\n1") == keys.SHAPES["customer"].encoded("R1", "C%0A1")


def test_codes_are_the_python_enums(redis: Any) -> None:
    for lua_name, enum in codes.ENUMS.items():
        for member in enum:
            got = lua(redis, f"return {lua_name}.{member.name}")
            assert got == int(member), (lua_name, member.name)
    assert lua(redis, "return MAX_AMOUNT") == MAX_AMOUNT
    assert lua(redis, "return tostring(MAX_AMOUNT)").decode() in (
        str(MAX_AMOUNT),
        "9.007199254741e+15",
    )
    assert lua(redis, "return fmt(MAX_AMOUNT)").decode() == str(MAX_AMOUNT)


def test_records_unpack_in_lua_as_python_packs_them(redis: Any) -> None:
    record = np.zeros(1, dtype=CDR_RECORD)
    record["token"] = np.frombuffer(topic_token("t"), dtype="V8")[0]
    record[0]["partition"] = 65_535
    record[0]["offset"] = 2**62 + 3
    record[0]["price"] = MAX_AMOUNT
    record[0]["cost"] = 12_345
    for i, name in enumerate(("reseller", "customer", "card", "auth", "key_len")):
        record[0][name] = 1_000 + i
    record["fingerprint"] = np.frombuffer(b"ABCDEFGH", dtype="V8")[0]
    got = lua(
        redis,
        """
        local blob = ARGV[1]
        local out = {struct.unpack(CDR.UNPACK, blob, 1)}
        local ident = out[1]
        local each = {}
        for _, name in ipairs({'price', 'cost', 'reseller', 'customer', 'card', 'auth',
                               'key_len'}) do
          each[#each + 1] = fmt(struct.unpack(CDR_FMT[name], blob, CDR_AT[name]))
        end
        return {#blob == CDR.SIZE and 1 or 0, ident,
                fmt(struct.unpack(CDR_FMT.partition, ident, CDR_AT.partition)),
                struct.unpack(CDR_FMT.fingerprint, blob, CDR_AT.fingerprint), each,
                fmt(out[2]), fmt(out[8]), out[9]}
        """,
        record.tobytes(),
    )
    size_ok, ident, partition, fingerprint, each, price, key_len, fp2 = got
    assert size_ok == 1
    assert ident == topic_token("t") + struct.pack("<Hq", 65_535, 2**62 + 3)
    assert int(partition) == 65_535
    assert fingerprint == fp2 == b"ABCDEFGH"
    assert [int(v) for v in each] == [MAX_AMOUNT, 12_345, 1_000, 1_001, 1_002, 1_003, 1_004]
    assert (int(price), int(key_len)) == (MAX_AMOUNT, 1_004)
    for name, dtype in (("STORED", STORED_RECORD), ("EXTERNAL", EXTERNAL_RECORD)):
        assert lua(redis, f"return {name}.SIZE") == dtype.itemsize
    stored = np.zeros(1, dtype=STORED_RECORD)
    stored[0]["outcome"], stored[0]["blocked"] = 5, 1
    at = lua(
        redis,
        "return {string.byte(ARGV[1], STORED_AT.outcome), string.byte(ARGV[1], STORED_AT.blocked)}",
        stored.tobytes(),
    )
    assert at == [5, 1]
    entry = np.zeros(1, dtype=CLAIM_ENTRY)
    entry[0]["row"], entry[0]["reseller"], entry[0]["key_len"] = 9, 2, 11
    got = lua(redis, "local r = {struct.unpack(CLAIM.UNPACK, ARGV[1])}; return {r[1], r[4], r[5]}",
              entry.tobytes())  # fmt: skip
    assert got == [9, 2, 11]


def test_string_lists_travel_intact(redis: Any) -> None:
    values = ["", "a\nb", "x}{y", "\x00", "Ünï", "last"]
    got = lua(redis, "return unpack_strings(ARGV[1])", pack_strings(values))
    assert [g.decode("utf-8") for g in got] == values
    assert lua(redis, "return #unpack_strings(ARGV[1])", pack_strings([])) == 0


def test_argument_positions_are_the_encoders(redis: Any, settings: Settings) -> None:
    batch = DebitBatch(
        topic_id="topic-x", partition=4, offsets=np.array([5], dtype=np.int64),
        switches=["sw"], cdr_ids=["c"], customers=["C1"], cards=[""], resellers=["R1"],
        prices=np.array([1], dtype=np.int64), costs=np.array([1], dtype=np.int64),
    )  # fmt: skip
    debiter = Debiter(redis, settings=settings)
    args = debiter.encode(batch)
    names = ", ".join(f"ARGV[DEBIT_ARG.{n}]" for n in ("topic", "partition", "count", "global"))
    assert [v.decode() for v in lua(redis, f"return {{{names}}}", *args)] == [
        "topic-x",
        "4",
        "1",
        "1",
    ]
    assert lua(redis, "local n = 0; for _ in pairs(DEBIT_ARG) do n = n + 1 end; return n") == len(
        DEBIT_ARGS
    )
    assert lua(redis, "return CLAIM_ARG.fields") == len(CLAIM_ARGS)
