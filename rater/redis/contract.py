"""What Python and the Lua scripts agree on, written once, here.

- the key families (rater/redis/keys.py SHAPES) become Lua functions `K.<family>(...)`, its
  fixed keys the table `FIXED` (`FIXED.generation` is 'accounts:generation');
- the script codes (rater/redis/codes.py) become Lua tables `DEBIT`, `CORRECT`, ...;
- the packed records (numpy dtypes below) become their size, `struct` format and the 1-based
  byte offset of each field;
- the argument positions of debit.lua and claim.lua become `DEBIT_ARG.<name>` / `CLAIM_ARG`;
- the amount bound MAX_AMOUNT.

`lua_header()` is prepended to every script when it loads (rater/redis/scripts.py), so a script
never spells a key, a code, an offset or an argument position itself. tests/unit and
tests/integration check each contract once against a real Redis (`test_redis_contract.py`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from rater.redis import codes, keys

#: the largest amount (micro-units) a balance or one CDR's price may hold: 2^53 - 1, the last
#: integer a Lua number (a double) holds exactly, about 9 billion EUR. A debit that would take a
#: balance beyond -MAX_AMOUNT is refused as OUT_OF_RANGE (docs/REDIS_KEYS.md, "Amounts").
MAX_AMOUNT = 2**53 - 1


#: a CDR's rating fields, hashed (8 bytes); all zero when unknown (never a conflict)
FINGERPRINT_SIZE = 8

#: the message identity: topic token (blake2b of the topic identity), partition, offset
IDENT = np.dtype([("token", "V8"), ("partition", "<u2"), ("offset", "<i8")])
IDENT_SIZE = IDENT.itemsize  # 18
#: one packed record per CDR, argument `records` of debit.lua; it starts with IDENT
CDR_RECORD = np.dtype(
    [
        *IDENT.descr,
        ("price", "<i8"),
        ("cost", "<i8"),
        ("reseller", "<i4"),  # 1-based index into the reseller table
        ("customer", "<i4"),  # 1-based, 0 for none
        ("card", "<i4"),  # 1-based, 0 for none
        ("auth", "<i4"),  # 1-based, 0 for none
        ("key_len", "<i4"),  # bytes of this CDR's de-duplication field in the field blob
        ("fingerprint", "V8"),  # rating fields hashed (conflicting re-sends)
    ]
)
#: the value of a de-duplication record (and the first 28 bytes of a claim)
STORED_RECORD = np.dtype(
    [
        ("ident", f"V{IDENT_SIZE}"),
        ("outcome", "u1"),  # codes.RECORDED, or codes.CLAIMED in a claim
        ("blocked", "u1"),
        ("fingerprint", f"V{FINGERPRINT_SIZE}"),
    ]
)
#: a record handed to a per-slot debit call from another slot: (row in the call, 1-based; record)
EXTERNAL_RECORD = np.dtype([("row", "<i4"), ("record", f"V{STORED_RECORD.itemsize}")])
#: one claim entry per CDR, argument `entries` of claim.lua
CLAIM_ENTRY = np.dtype(
    [
        ("row", "<i4"),  # 1-based row in the batch
        ("ident", f"V{IDENT_SIZE}"),
        ("fingerprint", f"V{FINGERPRINT_SIZE}"),
        ("reseller", "<i4"),  # 1-based index into the (encoded) reseller table
        ("key_len", "<i4"),
    ]
)
#: an account's reseller, as a 1-based index into the reseller table (customer_reseller,
#: card_reseller)
INDEX = np.dtype("<i4")
#: debit.lua's reply: per CONFLICT, its row (1-based) and the first copy's message identity
FIRST_COPY = np.dtype([("row", "<i4"), ("ident", f"V{IDENT_SIZE}")])
#: claim.lua's reply: per claim found, its row (1-based) and length, then the claim itself
CLAIM_FOUND = np.dtype([("row", "<i4"), ("length", "<i4")])
#: the leading fields of CDR_RECORD that debit.lua reads as one string (the message identity)
_IDENT_FIELDS = IDENT.names or ()

#: debit.lua's arguments, in order
DEBIT_ARGS = (
    "topic",  # topic identity, key form
    "partition",
    "window",  # de-duplication window, seconds
    "count",  # CDRs
    "resellers",  # pack_strings of key-form reseller ids
    "customers",  # pack_strings of key-form customer ids
    "customer_reseller",  # i4 per customer: its reseller's index
    "cards",  # pack_strings of key-form card numbers
    "card_reseller",  # i4 per card
    "auth_ids",  # pack_strings of authorization ids
    "records",  # CDR_RECORD per CDR
    "fields",  # de-duplication fields, concatenated (lengths in the records)
    "external",  # EXTERNAL_RECORD entries (Redis Cluster: claims of other messages)
    "global",  # '1': one server (records in `d:<bucket>`, ANI index kept in the script)
)
#: claim.lua's arguments, in order
CLAIM_ARGS = ("window", "count", "shard", "resellers", "entries", "fields")

_STRUCT = {"<u2": "I2", "<i8": "i8", "<i4": "i4", "|u1": "B"}


def _field(dtype: np.dtype[np.void], name: str) -> tuple[np.dtype[Any], int]:
    """(dtype, byte offset) of one field of a record."""
    fields: Any = dtype.fields
    sub, offset = fields[name][:2]
    return sub, int(offset)


def _code(dtype: np.dtype[np.void], field: str) -> str:
    sub = _field(dtype, field)[0]
    if sub.kind == "V":
        return f"c{sub.itemsize}"
    return _STRUCT[sub.str]


def struct_format(dtype: np.dtype[np.void], ident: Sequence[str] = ()) -> str:
    """The Lua `struct` format of a record; the leading `ident` fields as one string."""
    names = list(dtype.names or ())
    out = "<"
    if ident:
        if names[: len(ident)] != list(ident):
            raise AssertionError(f"{ident} do not lead {names}")
        size = sum(_field(dtype, n)[0].itemsize for n in ident)
        out += f"c{size}"
        names = names[len(ident) :]
    return out + "".join(_code(dtype, n) for n in names)


_PYTHON = {"<u2": "H", "<i8": "q", "<i4": "i", "|u1": "B"}


def python_struct(dtype: np.dtype[np.void]) -> struct.Struct:
    """The Python `struct` of a record (what Lua's struct format reads, for replies)."""
    parts = []
    for name in dtype.names or ():
        sub = _field(dtype, name)[0]
        parts.append(f"{sub.itemsize}s" if sub.kind == "V" else _PYTHON[sub.str])
    return struct.Struct("<" + "".join(parts))


def offsets(dtype: np.dtype[np.void]) -> dict[str, int]:
    """1-based byte offset of each field (Lua strings and struct.unpack count from 1)."""
    return {n: _field(dtype, n)[1] + 1 for n in dtype.names or ()}


def pack_strings(values: Sequence[str]) -> bytes:
    """A list of strings for a script: count (i4), each length (i4), then the UTF-8 bytes. Any
    text travels intact (no separator to break); common.lua's unpack_strings reads it."""
    raw = [v.encode("utf-8", "surrogatepass") for v in values]
    head = np.asarray([len(raw), *map(len, raw)], dtype=INDEX).tobytes()
    return head + b"".join(raw)


# -------------------------------------------------------------------------- the Lua header
def _lua_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_key_function(shape: keys.Shape) -> str:
    args = ", ".join(shape.segments)
    body = " .. ".join(
        text if is_segment else _lua_string(text) for is_segment, text in shape.pieces()
    )
    return f"function K.{shape.family}({args}) return {body} end"


def _lua_table(name: str, values: dict[str, object]) -> str:
    items = ", ".join(
        f"{k} = {_lua_string(v) if isinstance(v, str) else v}" for k, v in values.items()
    )
    return f"local {name} = {{{items}}}"


def _lua_record(name: str, dtype: np.dtype[np.void], ident: Sequence[str] = ()) -> list[str]:
    return [
        f"local {name} = {{SIZE = {dtype.itemsize}, UNPACK = "
        f"{_lua_string(struct_format(dtype, ident))}}}",
        _lua_table(f"{name}_AT", dict(offsets(dtype))),
        _lua_table(f"{name}_FMT", {n: "<" + _code(dtype, n) for n in dtype.names or ()}),
    ]


@cache
def lua_header() -> str:
    """The Lua text every script starts with (see the module doc)."""
    lines = [
        "-- generated by rater/redis/contract.py (keys, codes, records, arguments): do not edit",
        f"local MAX_AMOUNT = {MAX_AMOUNT}",
        f"local IDENT_SIZE, FINGERPRINT_SIZE = {IDENT_SIZE}, {FINGERPRINT_SIZE}",
        f"local CLAIMED = {codes.CLAIMED}",
        "local K = {}",
        *(_lua_key_function(shape) for shape in keys.SHAPES.values()),
        _lua_table("FIXED", dict(keys.FIXED_KEYS)),
        # the scripts of rater/accounts/ build keys from the tag
        "local function tagof(res) return K.tag(res) end",
        *(
            _lua_table(lua_name, {m.name: int(m) for m in enum})
            for lua_name, enum in codes.ENUMS.items()
        ),
        f"local INDEX = {{SIZE = {INDEX.itemsize}, FMT = {_lua_string('<' + _STRUCT[INDEX.str])}}}",
        *_lua_record("CDR", CDR_RECORD, _IDENT_FIELDS),
        *_lua_record("STORED", STORED_RECORD),
        *_lua_record("EXTERNAL", EXTERNAL_RECORD),
        *_lua_record("CLAIM", CLAIM_ENTRY),
        *_lua_record("FIRST_COPY", FIRST_COPY),
        *_lua_record("CLAIM_FOUND", CLAIM_FOUND),
        _lua_table("DEBIT_ARG", {n: i + 1 for i, n in enumerate(DEBIT_ARGS)}),
        _lua_table("CLAIM_ARG", {n: i + 1 for i, n in enumerate(CLAIM_ARGS)}),
    ]
    return "\n".join(lines) + "\n"
