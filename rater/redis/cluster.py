"""Redis Cluster: one script call per reseller slot (docs/REDIS_KEYS.md, "Cluster plan").

On one server a debit batch is one Lua call that may touch any key. On Redis Cluster a script
may only touch keys of one hash slot, so:

- a batch is split per reseller (every key of reseller R carries the tag `{r:R}`; CDRs of
  unknown accounts go to the pseudo tag `{r:}`); the sub-batches are sent in one cluster
  pipeline (redis-py writes to every node before reading any reply, so the nodes work at the
  same time) and their outcomes put back in batch order. The per-reseller watermark decides
  replays, so the split changes no outcome; a failure half-way leaves the applied sub-batches
  to be recognised as replays when the batch is retried.
- the partition watermark `wm:<topic>:<partition>` (its own slot) is raised by Python after
  every sub-batch succeeded: a crash in between only causes idempotent replays.
- the global ANI index (`ani:<digits>`) is brought in line with the card's `anion` flag (which
  stays authoritative inside the slot) after a script reported `ani_on` / `ani_off`.
- new cards reserve their global `card:<number>` / `batchid:` keys with SET NX before the
  per-slot script runs, and release them when it refuses.

Every call names one key of the slot as KEYS[1] so the client routes it to the right node; the
scripts themselves build their key names from the reseller id as on one server.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import redis
from redis.cluster import RedisCluster

from rater.errors import DebitError
from rater.redis import keys
from rater.redis.scripts import Script

T = TypeVar("T")

#: position of the orphan-records argument of debit.lua (ARGV[17]) in Debiter.encode's list
ORPHAN_ARG = 16
ORPHAN_CHUNK = 1000

#: raise a watermark, never lower it (replays of older batches run concurrently with new ones)
_RAISE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def route(reseller_id: str) -> list[str]:
    """KEYS for a per-slot script call: the reseller's hash (its slot is the tag's)."""
    return [keys.reseller(reseller_id) if reseller_id else "{r:}:res"]


def groups(resellers: Sequence[str]) -> dict[str, npt.NDArray[np.intp]]:
    """Row indexes per reseller id, each in the batch's (offset) order."""
    found: dict[str, list[int]] = {}
    for i, reseller in enumerate(resellers):
        found.setdefault(reseller, []).append(i)
    return {res: np.asarray(rows, dtype=np.intp) for res, rows in found.items()}


def _pick(column: Sequence[T], rows: npt.NDArray[np.intp]) -> list[T]:
    return [column[i] for i in rows]


def subset(batch: Any, rows: npt.NDArray[np.intp]) -> Any:
    """The CDRs of a DebitBatch at rows (a DebitBatch again)."""
    return type(batch)(
        topic_id=batch.topic_id,
        partition=batch.partition,
        offsets=np.asarray(batch.offsets)[rows],
        switches=_pick(batch.switches, rows),
        cdr_ids=_pick(batch.cdr_ids, rows),
        customers=_pick(batch.customers, rows),
        cards=_pick(batch.cards, rows),
        resellers=_pick(batch.resellers, rows),
        prices=np.asarray(batch.prices)[rows],
        costs=np.asarray(batch.costs)[rows],
        auth_ids=None if batch.auth_ids is None else _pick(batch.auth_ids, rows),
    )


def apply_split(
    client: Any,
    script: Script,
    encode: Callable[[Any], list[Any]],
    decode: Callable[[list[Any]], Any],
    batch: Any,
    *,
    window: int,
) -> Any:
    """Apply a DebitBatch as one script call per reseller slot; a DebitResult in batch order."""
    parts = groups(batch.resellers)
    whole = len(parts) == 1
    calls = [(res, batch if whole else subset(batch, rows)) for res, rows in parts.items()]
    orphans = orphan_records(client, batch, parts, window)
    encoded = []
    for res, sub in calls:
        args = encode(sub)
        args[ORPHAN_ARG] = orphans.get(res, b"")
        encoded.append((route(res), args))
    replies = _run(client, script, encoded)
    decoded = [decode(raw) for raw in replies]
    n = len(batch.offsets)
    outcome = np.zeros(n, dtype=np.int8)
    blocked = np.zeros(n, dtype=np.bool_)
    replayed = np.zeros(n, dtype=np.bool_)
    merged = type(decoded[0])(outcome, blocked, replayed)  # a DebitResult, like each part
    for (res, _sub), part in zip(calls, decoded, strict=True):
        rows = parts[res]
        outcome[rows] = part.outcome
        blocked[rows] = part.blocked
        replayed[rows] = part.replayed
        merged.reseller_balances.update(part.reseller_balances)
        merged.customer_balances.update(part.customer_balances)
        merged.card_balances.update(part.card_balances)
        merged.events.extend(part.events)
        sync_ani_after(client, res, part.events)
    raise_watermark(
        client, keys.partition_watermark(batch.topic_id, batch.partition), int(batch.offsets[-1])
    )
    return merged


def orphan_records(
    client: Any, batch: Any, parts: dict[str, npt.NDArray[np.intp]], window: int
) -> dict[str, bytes]:
    """Records of copies first seen while their account was unknown (under `{r:}`), per reseller.

    On one server debit.lua reads them itself; here they live in another slot, so they are read
    first (the HMGETs of every reseller in one pipeline: a single slot, a single round trip) and
    handed to each reseller's call as (row within its sub-batch, 1-based i4; 20-byte record)
    entries. Only a copy of the same CDR in flight at the same instant could slip between the
    read and the call.
    """
    known = [res for res in parts if res]
    if not known:
        return {}
    bucket = int(time.time()) // window
    present = [keys.dedup_bucket("", b) for b in (bucket, bucket - 1)]
    # every HMGET goes to the {r:} slot's node: one pipeline, one round trip (a missing
    # bucket answers nils at once)
    pipe = client.pipeline(transaction=False)
    asked: list[tuple[str, int]] = []  # (reseller, first row of the chunk) per HMGET
    for res in known:
        fields = [keys.dedup_field(batch.switches[i], batch.cdr_ids[i]) for i in parts[res]]
        for name in present:
            for first in range(0, len(fields), ORPHAN_CHUNK):
                pipe.hmget(name, fields[first : first + ORPHAN_CHUNK])
                asked.append((res, first))
    hits: dict[str, dict[int, bytes]] = {}
    for (res, first), values in zip(asked, pipe.execute(), strict=True):
        found = hits.setdefault(res, {})
        for j, value in enumerate(values):
            if value is not None:
                found.setdefault(first + j + 1, value)
    out: dict[str, bytes] = {}
    for res, found in hits.items():
        if found:
            out[res] = b"".join(struct.pack("<i", row) + value for row, value in found.items())
    return out


def _run(client: Any, script: Script, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """EVALSHA every call in one cluster pipeline; loads the script once if a node forgot it."""
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for route_keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(route_keys), *route_keys, *args)
        replies = pipe.execute(raise_on_error=False)
        errors = [r for r in replies if isinstance(r, Exception)]
        if not errors:
            return list(replies)
        if attempt == 0 and all(isinstance(e, redis.exceptions.NoScriptError) for e in errors):
            client.script_load(script.text)  # sent to every primary
            continue
        raise DebitError(f"{script.name} on Redis Cluster: {errors[0]}") from errors[0]
    raise AssertionError("unreachable")


def raise_watermark(client: Any, key: str, offset: int) -> None:
    """Set key to offset unless it already holds a higher one."""
    client.eval(_RAISE, 1, key, str(offset))


def sync_ani(client: Any, reseller_id: str, number: str) -> None:
    """Make the global `ani:<digits>` keys of a card follow its `anion` flag."""
    pipe = client.pipeline(transaction=False)
    pipe.hget(keys.card(reseller_id, number), "anion")
    pipe.smembers(keys.card_anis(reseller_id, number))
    anion, anis = pipe.execute()
    if not anis:
        return
    pipe = client.pipeline(transaction=False)
    for raw in anis:
        digits = raw.decode()
        if anion == b"1":
            pipe.set(keys.ani_index(digits), number)
        else:
            pipe.delete(keys.ani_index(digits))
    pipe.execute()


def sync_ani_after(client: Any, reseller_id: str, events: Sequence[Any]) -> None:
    """sync_ani for every card a script reported as ani_on or ani_off."""
    for number in {e.account for e in events if e.kind in ("ani_on", "ani_off")}:
        sync_ani(client, reseller_id, number)


def per_reseller(
    items: Sequence[T], reseller_of: Callable[[T], str], apply: Callable[[list[T]], Any]
) -> npt.NDArray[np.bool_]:
    """apply() once per reseller's items; the per-item flags put back in input order."""
    out = np.zeros(len(items), dtype=np.bool_)
    for rows in groups([reseller_of(item) for item in items]).values():
        out[rows] = apply([items[i] for i in rows])
    return out


def fund_card_batch(
    client: Any,
    script: Script,
    *,
    reseller_id: str,
    customer_id: str,
    batch_id: str,
    args: list[Any],
) -> tuple[int, Any]:
    """create_cards.lua's 'fund' phase in the reseller's slot, with the global `batchid:` key
    reserved around it (SET NX; released when the script refuses).

    Returns the script's (code, detail); code 6 when the batch id is taken.
    """
    index = keys.batch_index(batch_id) if batch_id else None
    if index is not None and not client.set(index, f"{reseller_id}:{customer_id}", nx=True):
        return 6, b""
    code, detail = script(route(reseller_id), args)
    if int(code) != 0:
        if index is not None:
            client.delete(index)
        return int(code), detail
    client.incr(keys.GENERATION)
    return 0, detail


def create_cards(
    client: Any,
    script: Script,
    *,
    reseller_id: str,
    customer_id: str,
    numbers: Sequence[str],
    args: list[Any],
) -> tuple[int, Any]:
    """create_cards.lua's 'cards' phase (one chunk) in the reseller's slot, with the global
    `card:` keys reserved around it.

    Returns the script's (code, detail); code 5 names a number some other card already has.
    """
    owner = f"{reseller_id}:{customer_id}"
    pipe = client.pipeline(transaction=False)
    for number in numbers:
        pipe.set(keys.card_index(number), owner, nx=True)
    taken = pipe.execute()
    reserved = [n for n, ok in zip(numbers, taken, strict=True) if ok]
    clash = next((n for n, ok in zip(numbers, taken, strict=True) if not ok), None)

    def release() -> None:
        if reserved:
            pipe = client.pipeline(transaction=False)
            for number in reserved:
                pipe.delete(keys.card_index(number))
            pipe.execute()

    if clash is not None:
        release()
        return 5, clash.encode()
    code, detail = script(route(reseller_id), args)
    if int(code) != 0:
        release()
        return int(code), detail
    client.incr(keys.GENERATION)
    return 0, detail
