"""The Lua scripts of the account model, loaded once per client and called with EVALSHA.

Each script is rater/redis/lua/common.lua followed by rater/redis/lua/<name>.lua (package
data), so the seed's rules live in one place.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import redis

from rater.redis.connection import RedisLike


@cache
def source(name: str) -> str:
    """The full text of a script: common helpers, then the script itself."""
    lua = resources.files("rater.redis") / "lua"
    return (lua / "common.lua").read_text() + "\n" + (lua / f"{name}.lua").read_text()


class Script:
    """One script on one client: EVALSHA, loading it again if the server forgot it."""

    def __init__(self, client: RedisLike, name: str) -> None:
        self.client = client
        self.name = name
        self.text = source(name)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()
        self._loaded = False

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        if not self._loaded:
            self.client.script_load(self.text)
            self._loaded = True
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # a restarted server (or SCRIPT FLUSH) forgot it: load again, once
            self.client.script_load(self.text)
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
