"""Per-switch number and time settings in Redis (managed with `rater switch`).

Keys (rater/redis/keys.py): `switch:<name>` is a hash of the SwitchSettings fields, the name in
key form (keys.name: a switch named `names`, `a:b` or `{x}` has a key of its own); `switches`
the set of names; `switches:generation` a counter bumped on every change so workers can cache
settings and notice a change with one GET. An unknown switch gets the defaults (no country,
trunk prefix 0, tech prefixes like 78816#, UTC, format rater).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rater.errors import ConfigError
from rater.pipeline import formats
from rater.redis import keys, legacy
from rater.redis.connection import RedisLike
from rater.tariffs.model import SwitchSettings

_FIELDS = tuple(f.name for f in dataclasses.fields(SwitchSettings) if f.name != "name")


def validate(settings: SwitchSettings) -> SwitchSettings:
    """The settings, or ConfigError naming the bad field."""
    if not settings.name.strip():
        raise ConfigError("a switch needs a name")
    if settings.country_code and not re.fullmatch(r"[1-9][0-9]{0,2}", settings.country_code):
        raise ConfigError(
            f"switch {settings.name!r}: country code {settings.country_code!r} must be 1-3 digits "
            "not starting with 0 (e.g. 31, 1, 44)"
        )
    if settings.trunk_prefix and not settings.trunk_prefix.isdigit():
        raise ConfigError(
            f"switch {settings.name!r}: trunk prefix {settings.trunk_prefix!r} must be digits"
        )
    try:
        re.compile(settings.tech_prefix)
    except re.error as error:
        raise ConfigError(
            f"switch {settings.name!r}: tech prefix {settings.tech_prefix!r} is not a regular "
            f"expression: {error}"
        ) from None
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"switch {settings.name!r}: unknown time zone {settings.timezone!r} "
            "(use an IANA name like UTC or Europe/Amsterdam)"
        ) from None
    formats.validate(settings)  # the format, its options and mapping (docs/SWITCHES.md)
    return settings


class SwitchRegistry:
    """Reads and writes SwitchSettings in Redis."""

    def __init__(self, redis_client: RedisLike) -> None:
        self.redis = redis_client
        legacy.move_switch_keys(redis_client)

    def get(self, name: str) -> SwitchSettings:
        """The switch's settings; the defaults (under that name) when it was never set."""
        raw: Any = self.redis.hgetall(keys.switch(name))
        if not raw:
            return SwitchSettings(name=name)
        values = {_text(k): _text(v) for k, v in raw.items()}
        return SwitchSettings(name=name, **{k: values[k] for k in _FIELDS if k in values})

    def set(self, settings: SwitchSettings) -> SwitchSettings:
        """Store (replace) a switch's settings after validating them."""
        validate(settings)
        mapping: dict[Any, Any] = {field: getattr(settings, field) for field in _FIELDS}
        # every field at once (one HSET: readers never see half of it), then the name and the
        # generation, which live in other slots on Redis Cluster; the generation moves last, so
        # a worker that sees it move reads the new settings
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.switch(settings.name), mapping=mapping)
        pipe.sadd(keys.SWITCHES, settings.name)
        pipe.incr(keys.SWITCHES_GENERATION)
        pipe.execute()
        return settings

    def list(self) -> list[SwitchSettings]:
        names: Any = self.redis.smembers(keys.SWITCHES)
        return [self.get(name) for name in sorted(_text(n) for n in names)]

    def generation(self) -> int:
        value: Any = self.redis.get(keys.SWITCHES_GENERATION)
        return int(value) if value is not None else 0


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
