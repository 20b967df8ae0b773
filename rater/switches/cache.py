"""Switch settings kept per process, valid while the registry's generation counter stays.

`SwitchRegistry.set` writes a switch's hash, then raises `switches:generation`
(rater/switches/registry.py). A reader that reads the counter first (`seen`, usually in a
pipeline it sends anyway) and the settings after it can keep them until the counter moves: a
change made after the counter was read shows in the next read of it. So an authorization
reads no switch hash at all once its switch is known, only the counter beside its other reads.
"""

from __future__ import annotations

from rater.redis import keys
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings


class SwitchCache:
    """Settings by switch name for one registry generation."""

    #: the counter's key, for callers that read it in a pipeline of their own
    GENERATION_KEY = keys.SWITCHES_GENERATION

    def __init__(self, registry: SwitchRegistry) -> None:
        self.registry = registry
        self._generation: int | None = None
        self._known: dict[str, SwitchSettings] = {}

    def seen(self, raw_generation: bytes | str | int | None) -> None:
        """The counter as just read (a GET's reply): a new value drops every setting kept."""
        generation = int(raw_generation) if raw_generation is not None else 0
        if generation != self._generation:
            self._known.clear()
            self._generation = generation

    def get(self, name: str) -> SwitchSettings:
        """The settings of `name`; read from Redis when not kept for this generation."""
        found = self._known.get(name)
        if found is None:
            if len(self._known) >= 10_000:  # bounded whatever names requests bring
                self._known.clear()
            found = self._known[name] = self.registry.get(name)
        return found
