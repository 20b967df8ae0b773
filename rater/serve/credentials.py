"""Per-switch API tokens, reseller scopes and IP allow-lists, kept in Redis.

A token is `<id>.<secret>`: `id` is 12 hex digits, shown by `rater switch token list` and used
to find the token; `secret` is 32 random bytes (URL-safe base64). Only the SHA-256 of the
secret is stored; `create` prints the token once. A high-entropy secret needs no slow hash:
nobody can guess it from its digest, and the digest is compared in constant time (gate.py).

Keys (rater/redis/keys.py, listed in docs/REDIS_KEYS.md "Switch credentials"; global, one
slot each on Redis Cluster; every change sets a new generation):

- `switchauth:token:<id>` (hash): `switch`, `sha256` (hex digest of the secret), `created`
  (epoch s)
- `switchauth:tokens:<switch>` (set): token ids of the switch
- `switchauth:scope:<switch>` (hash): `resellers` (comma-separated ids, `*` for every
  reseller), `networks` (comma-separated CIDRs)
- `switchauth:switches` (set): switches with tokens or a scope
- `switchauth:generation` (string): a new random value at every change; serve processes poll
  it (a random value, not a counter: a flushed or restored Redis cannot bring back a value a
  process has cached)

A switch acts for no reseller until `rater switch set NAME --resellers r1,r2` (or `*`) says
which: a new token cannot touch anyone's money by default. An empty allow-list admits any
address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rater.errors import AccountError, ConfigError
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Network
from rater.settings import parse_networks as settings_networks

GENERATION = keys.SWITCH_AUTH_GENERATION
SWITCHES = keys.SWITCH_AUTH_SWITCHES
ALL_RESELLERS = "*"
_TOKEN = re.compile(r"([0-9a-f]{12})\.([A-Za-z0-9_-]{43})")


token_key = keys.switch_token
tokens_key = keys.switch_tokens
scope_key = keys.switch_scope


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class IssuedToken:
    token_id: str
    switch: str
    token: str  # shown once; never stored


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    switch: str
    created: int  # epoch s


@dataclass(frozen=True)
class StoredToken:
    switch: str
    sha256: str


@dataclass(frozen=True)
class Scope:
    """What a switch may do: for which resellers, from which addresses."""

    resellers: frozenset[str]  # contains ALL_RESELLERS for every reseller
    networks: tuple[Network, ...]  # empty: any address

    def allows_reseller(self, reseller_id: str) -> bool:
        return ALL_RESELLERS in self.resellers or reseller_id in self.resellers

    def allows_address(self, address: str) -> bool:
        if not self.networks:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def describe(self) -> tuple[str, str]:
        resellers = ",".join(sorted(self.resellers)) or "(none)"
        networks = ",".join(str(n) for n in self.networks) or "(any address)"
        return resellers, networks


def parse_resellers(text: str) -> frozenset[str]:
    """'r1,r2' or '*' ('' for none); ConfigError naming a bad id."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    if ALL_RESELLERS in names:
        if len(names) > 1:
            raise ConfigError("--resellers: '*' (every reseller) stands alone")
        return frozenset(names)
    for name in names:
        try:
            keys.check_id("reseller", name)
        except AccountError as error:
            raise ConfigError(f"--resellers: {error}") from None
    return frozenset(names)


def parse_networks(text: str) -> tuple[Network, ...]:
    """'10.0.0.0/8,192.0.2.7,::1' ('' for any address); ConfigError naming a bad entry."""
    return settings_networks(text, what="--allow-ip", example="192.0.2.0/24")


def check_switch(name: str) -> str:
    """Switch names in keys and in HTTP Basic user names: no ':' or braces."""
    try:
        return keys.check_id("switch", name)
    except AccountError as error:
        raise ConfigError(str(error)) from None


class Credentials:
    """Reads and writes the keys above."""

    def __init__(self, client: RedisLike | Any) -> None:
        """client: a Redis client, or one that forwards to it (rater/serve/app.py LazyRedis)."""
        self.redis: Any = client

    # ---------------------------------------------------------------- tokens
    def create_token(self, switch: str) -> IssuedToken:
        check_switch(switch)
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(
            token_key(token_id),
            mapping={"switch": switch, "sha256": digest(secret), "created": int(time.time())},
        )
        pipe.sadd(tokens_key(switch), token_id)
        pipe.sadd(SWITCHES, switch)
        pipe.set(GENERATION, secrets.token_hex(8))
        pipe.execute()
        return IssuedToken(token_id, switch, f"{token_id}.{secret}")

    def list_tokens(self, switch: str | None = None) -> list[TokenInfo]:
        names = [switch] if switch else sorted(_text(n) for n in self.redis.smembers(SWITCHES))
        out: list[TokenInfo] = []
        for name in names:
            ids = sorted(_text(i) for i in self.redis.smembers(tokens_key(name)))
            pipe = self.redis.pipeline(transaction=False)
            for token_id in ids:
                pipe.hget(token_key(token_id), "created")
            for token_id, created in zip(ids, pipe.execute(), strict=True):
                if created is not None:
                    out.append(TokenInfo(token_id, name, int(created)))
        return out

    def revoke(self, switch: str, token_ids: Sequence[str] = ()) -> list[str]:
        """Delete the switch's tokens (all of them, or those named); the ids revoked."""
        check_switch(switch)
        owned = {_text(i) for i in self.redis.smembers(tokens_key(switch))}
        unknown = [t for t in token_ids if t not in owned]
        if unknown:
            raise ConfigError(f"switch {switch!r} has no token {', '.join(unknown)}")
        doomed = sorted(token_ids or owned)
        if doomed:
            pipe = self.redis.pipeline(transaction=False)
            for token_id in doomed:
                pipe.delete(token_key(token_id))
            pipe.srem(tokens_key(switch), *doomed)
            pipe.set(GENERATION, secrets.token_hex(8))
            pipe.execute()
        return doomed

    def lookup(self, token_id: str) -> StoredToken | None:
        raw = self.redis.hmget(token_key(token_id), "switch", "sha256")
        if raw[0] is None or raw[1] is None:
            return None
        return StoredToken(_text(raw[0]), _text(raw[1]))

    # ---------------------------------------------------------------- scopes
    def set_scope(
        self,
        switch: str,
        *,
        resellers: Iterable[str] | None = None,
        networks: Iterable[Network] | None = None,
    ) -> Scope:
        """Change what is given (None keeps the current value)."""
        check_switch(switch)
        mapping: dict[str, str] = {}
        if resellers is not None:
            mapping["resellers"] = ",".join(sorted(resellers))
        if networks is not None:
            mapping["networks"] = ",".join(str(n) for n in networks)
        if mapping:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(scope_key(switch), mapping=mapping)
            pipe.sadd(SWITCHES, switch)
            pipe.set(GENERATION, secrets.token_hex(8))
            pipe.execute()
        return self.scope(switch)

    def scope(self, switch: str) -> Scope:
        raw = self.redis.hmget(scope_key(switch), "resellers", "networks")
        resellers = _text(raw[0]) if raw[0] is not None else ""
        networks = _text(raw[1]) if raw[1] is not None else ""
        return Scope(
            frozenset(r for r in resellers.split(",") if r),
            parse_networks(networks),
        )

    def generation(self) -> str:
        value = self.redis.get(GENERATION)
        return _text(value) if value is not None else ""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
