"""Keeps the compiled tariffs of a rater process current without a restart.

Workers call `loader.compiled()` once per batch. At most every `check_interval_ms` it reads
the store's generation counter (one Redis GET); only when that changed does it load the
tables and compile them again. Saved versions never change, so decoded versions are cached by
(name, version) and a new import costs one decode plus the compile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rater.errors import RaterError
from rater.logs import get_logger
from rater.tariffs.model import TariffTable
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

CompileFn = Callable[[dict[str, list[TariffTable]]], Any]


def _default_compile(tables: dict[str, list[TariffTable]]) -> Any:
    # imported on first use: compile.py pulls in numba, and tests may inject their own
    from rater.tariffs.compile import compile_tables  # noqa: PLC0415

    return compile_tables(tables)


class TariffLoader:
    """compiled() -> the CompiledTariffs of every version of every table in the store."""

    def __init__(
        self,
        store: TariffStore,
        *,
        check_interval_ms: int = 1000,
        compile_fn: CompileFn | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.check_interval_s = check_interval_ms / 1000
        self.compile_fn = compile_fn or _default_compile
        self.clock = clock
        self.compiles = 0  # how many times compile_fn ran (tests and metrics read it)
        self._generation: int | None = None
        self._checked_at = float("-inf")
        self._compiled: Any = None
        self._cache: dict[tuple[str, int], TariffTable] = {}

    def compiled(self) -> Any:
        """The current compiled tariffs; reloads when the store changed since the last check."""
        now = self.clock()
        if self._compiled is not None and now - self._checked_at < self.check_interval_s:
            return self._compiled
        self._checked_at = now
        generation = self.store.generation()
        if self._compiled is None or generation != self._generation:
            try:
                self.reload(generation)
            except RaterError as error:
                if self._compiled is None:
                    raise
                # keep rating with the tables we have; try again after the next change
                self._generation = generation
                log.error("tariffs not recompiled", generation=generation, error=str(error))
        return self._compiled

    def reload(self, generation: int | None = None) -> Any:
        """Load and compile now. The generation is read before loading, so a save that lands
        while we load triggers another reload at the next check rather than being missed."""
        if generation is None:
            generation = self.store.generation()
        started = time.perf_counter()
        tables: dict[str, list[TariffTable]] = {}
        live: set[tuple[str, int]] = set()
        for name in self.store.names():
            versions = []
            for info in self.store.infos(name):
                key = (name, info.table.version)
                live.add(key)
                table = self._cache.get(key)
                if table is None:
                    table = self.store.get(name, info.table.version)
                    self._cache[key] = table
                versions.append(table)
            if versions:
                tables[name] = versions
        for key in set(self._cache) - live:
            del self._cache[key]  # deleted tables
        self._compiled = self.compile_fn(tables)
        self._generation = generation
        self.compiles += 1
        log.info(
            "tariffs compiled", tables=len(tables), versions=len(live), generation=generation,
            seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip
        return self._compiled
