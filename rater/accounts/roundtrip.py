"""One wait for Redis: commands and script calls queued on one pipeline and sent together.

An authorization is a few of these (docs/SERVE.md, "Speed"): each wait costs about 60 us of
redis-py CPU plus a context switch to Redis and back, far more than the commands themselves.
On Redis Cluster the pipeline sends each node its commands at once, so it is still one wait.

Scripts are called by their SHA; a server that forgot them (restarted, SCRIPT FLUSH) answers
NOSCRIPT for those calls only: each is loaded and called again on its own, after the others
ran, so nothing runs twice.
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import NoScriptError

from rater.redis.scripts import Script


class RoundTrip:
    """Queue with `command` / `script` (each returns its reply's index), then `run` once."""

    def __init__(self, client: Any) -> None:
        self.pipe = client.pipeline(transaction=False)
        self._size = 0
        self._scripts: dict[int, tuple[Script, list[str], list[Any]]] = {}

    def command(self, *args: Any) -> int:
        """A command by name and arguments ('HGETALL', key); replies decoded as redis-py does."""
        self.pipe.execute_command(*args)
        self._size += 1
        return self._size - 1

    def script(self, script: Script, keys: list[str], args: list[Any]) -> int:
        if not script.loaded:
            script.load()
        self.pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        self._scripts[self._size] = (script, keys, args)
        self._size += 1
        return self._size - 1

    def __len__(self) -> int:
        return self._size

    def run(self) -> list[Any]:
        """Every reply in order; the first error raised (after NOSCRIPT calls were retried)."""
        if not self._size:
            return []
        replies = list(self.pipe.execute(raise_on_error=False))
        for index, (script, keys, args) in self._scripts.items():
            if isinstance(replies[index], NoScriptError):
                replies[index] = script(keys, args)  # loads it, once per server restart
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
