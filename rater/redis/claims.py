"""Redis Cluster: a (switch, cdr_id) charged at most once across resellers.

On one server debit.lua keeps every reseller's de-duplication records in `d:<bucket>` and finds
any copy itself. On Redis Cluster a reseller's records live in its own slot, so before the
per-slot debit calls every CDR of the batch is claimed in a slot of its own: shard
`crc32(field) % keys.CLAIM_SHARDS`, hash `{dc:<shard>}:<bucket>`, one claim.lua call per shard,
all in one cluster pipeline. A claim holds the message identity, the fingerprint of the rating
fields and the reseller the CDR was claimed for. What the claims answer becomes the `external`
records of the per-slot calls:

- no claim yet: the CDR is claimed for this message; the per-slot call decides as usual;
- a claim by another message: handed over as that message's record, so the per-slot call
  answers DUPLICATE (or CONFLICT when the fingerprints differ) and charges nothing;
- this message's own claim (a replay), for the same reseller: nothing to hand over, the
  reseller's own record tells the outcome;
- this message's own claim for another reseller (its account was created or moved since the
  first time): that reseller's record is read and handed over, so the replay reads back the
  outcome it got then instead of charging again. No record there (the first attempt stopped
  between claim and debit): nothing was charged, the per-slot call decides.

A crash between the claims and the debit leaves claims of messages that were never charged;
their replay finds its own claims and goes on. docs/REDIS_KEYS.md has the numbers.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rater.redis import keys
from rater.redis.contract import (
    CLAIM_ENTRY,
    CLAIM_FOUND,
    IDENT_SIZE,
    STORED_RECORD,
    pack_strings,
    python_struct,
)
from rater.redis.scripts import Script

if TYPE_CHECKING:
    from rater.redis.topology import Topology

_HEAD = python_struct(CLAIM_FOUND)


@dataclass(frozen=True)
class ClaimRows:
    """What the claims need of a batch, one entry per CDR."""

    idents: npt.NDArray[np.void]  #: message identities (IDENT_SIZE bytes each)
    fingerprints: npt.NDArray[np.void]  #: FINGERPRINT_SIZE bytes each
    resellers: Sequence[str]  #: key form of the reseller the CDR goes to ('' unknown)
    fields: Sequence[bytes]  #: de-duplication fields (keys.dedup_field)
    window: int  #: de-duplication window, seconds


def shard_of(field: bytes) -> int:
    return zlib.crc32(field) % keys.CLAIM_SHARDS


def claim(topology: Topology, script: Script, rows: ClaimRows) -> dict[int, bytes]:
    """Claim every CDR; the records to hand to the per-slot calls, by 0-based row."""
    n = len(rows.fields)
    shards = np.fromiter((shard_of(f) for f in rows.fields), dtype=np.intp, count=n)
    calls = []
    for shard in np.unique(shards).tolist():
        mine = np.flatnonzero(shards == shard)
        table: dict[str, int] = {}
        entries = np.zeros(len(mine), dtype=CLAIM_ENTRY)
        entries["row"] = mine + 1
        entries["ident"] = rows.idents[mine]
        entries["fingerprint"] = rows.fingerprints[mine]
        entries["reseller"] = [
            table.setdefault(rows.resellers[i], len(table) + 1) for i in mine.tolist()
        ]
        fields = [rows.fields[i] for i in mine.tolist()]
        entries["key_len"] = [len(f) for f in fields]
        args = [
            str(rows.window), str(len(mine)), str(shard), pack_strings(list(table)),
            entries.tobytes(), b"".join(fields),
        ]  # fmt: skip
        calls.append((keys.claims(shard, 0), args))
    external: dict[int, bytes] = {}
    elsewhere: list[tuple[int, str]] = []  # own claims made for another reseller
    for reply in topology.run_each(script, calls):
        for row, value in _found(reply):
            ident = value[:IDENT_SIZE]
            if ident != rows.idents[row].tobytes():
                external[row] = value[: STORED_RECORD.itemsize]
                continue
            reseller = value[STORED_RECORD.itemsize :].decode()
            if reseller != rows.resellers[row]:
                elsewhere.append((row, reseller))
    if elsewhere:
        external.update(_records_elsewhere(topology, rows, elsewhere))
    return external


def _found(reply: bytes) -> list[tuple[int, bytes]]:
    """(0-based row, claim) entries of a claim.lua reply."""
    out = []
    pos = 0
    while pos < len(reply):
        row, length = _HEAD.unpack_from(reply, pos)
        pos += _HEAD.size
        out.append((row - 1, bytes(reply[pos : pos + length])))
        pos += length
    return out


def _records_elsewhere(
    topology: Topology, rows: ClaimRows, wanted: list[tuple[int, str]]
) -> dict[int, bytes]:
    """The records of this very message under the reseller it was first claimed for."""
    bucket = int(time.time()) // rows.window
    shape = keys.SHAPES["reseller_records"]
    pipe = topology.client.pipeline(transaction=False)
    # one bucket either side of this clock's: a node's clock may be a little apart
    buckets = (bucket + 1, bucket, bucket - 1)
    for row, reseller in wanted:
        for b in buckets:
            pipe.hget(shape.encoded(reseller, str(b)), rows.fields[row])
    replies = pipe.execute()
    out: dict[int, bytes] = {}
    for j, (row, _reseller) in enumerate(wanted):
        for value in replies[j * len(buckets) : (j + 1) * len(buckets)]:
            if value is not None:
                out[row] = bytes(value)
                break
    return out
