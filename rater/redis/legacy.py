"""Keys of the layout before names were encoded (docs/REDIS_KEYS.md, "Names"), moved once.

Two things moved: the switch registry's own keys (`switch:names` -> `switches`,
`switch:generation` -> `switches:generation`), so that a switch named `names` or `generation`
has a `switch:<name>` hash of its own; and the keys of tariff tables whose names are not plain
(spaces, braces, '%', ...), now built from the name's key form. Both moves are idempotent and
cheap when there is nothing to move (one round trip), so the registry and the tariff store run
them when they start; a process of the old layout running beside them may write the old keys
again, which the next start moves again.
"""

from __future__ import annotations

from typing import Any

import orjson

from rater.redis import keys
from rater.redis.connection import RedisLike


def move_switch_keys(client: RedisLike) -> None:
    """The names set and generation counter of the switch registry, to their new keys."""
    redis: Any = client
    pipe = redis.pipeline(transaction=False)
    pipe.type(keys.LEGACY_SWITCH_NAMES)
    pipe.type(keys.LEGACY_SWITCH_GENERATION)
    names_type, generation_type = pipe.execute()
    # a switch named 'names' or 'generation' has a hash there now: only a set / string moves
    if names_type == b"set":
        members = redis.smembers(keys.LEGACY_SWITCH_NAMES)
        if members:
            redis.sadd(keys.SWITCHES, *members)
        redis.delete(keys.LEGACY_SWITCH_NAMES)
    if generation_type == b"string":
        redis.delete(keys.LEGACY_SWITCH_GENERATION)
        redis.incr(keys.SWITCHES_GENERATION)  # every cache reloads


def move_tariff_keys(client: RedisLike) -> list[str]:
    """Tables whose names are not plain, from their old keys to the new ones; their names."""
    redis: Any = client
    moved = []
    for raw in redis.smembers(keys.TARIFFS):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        if keys.is_plain(name):
            continue  # the same key in both layouts
        old_index, _ = keys.legacy_tariff_keys(name, [])
        index = redis.hgetall(old_index)
        if not index:
            continue
        versions = sorted(int(orjson.loads(v)["version"]) for v in index.values())
        _, old_versions = keys.legacy_tariff_keys(name, versions)
        for version, old in zip(versions, old_versions, strict=True):
            blob = redis.get(old)
            if blob is not None:
                redis.set(keys.tariff_version(name, version), blob)
        redis.hset(keys.tariff_index(name), mapping=index)  # after the versions it names
        redis.delete(old_index, *old_versions)
        moved.append(name)
    return moved
