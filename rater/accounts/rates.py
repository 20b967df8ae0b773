"""Rates for authorization: the kernel's longest-prefix match and price, as the pipeline rates.

The tariffs are compiled once (rater/tariffs/compile.py) and kept current by
rater/tariffs/loader.py, exactly as the workers do; a match is kernels/prefix.py's
`match_row` and a price kernels/rate.py's `price_row`, so the money reserved for N seconds is
the money the debit of an N-second CDR takes. (rater/reference.py, the slow Decimal rater,
stays the independent check the tests compare against.)

`max_seconds` prices the whole grid of billing points up to the limit in one kernel call and
takes the last affordable one (prices never fall as seconds grow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from kernels.prefix import match_row
from kernels.rate import price_row
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.compile import CompiledTariffs, compile_tables
from rater.tariffs.loader import TariffLoader
from rater.tariffs.model import Steps, TariffTable
from rater.tariffs.store import TariffStore


@njit(cache=True)
def _match(table, digits, length, at, tariffs):  # type: ignore[no-untyped-def]
    """Row id in force for one number (-1: none); tariffs = CompiledTariffs.kernel_args()."""
    return match_row(table, digits, length, at, tariffs)


@njit(cache=True)
def _prices(row, seconds, row_data, out):  # type: ignore[no-untyped-def]
    """out[i] = price in micro-units of a call of seconds[i] on compiled row `row`."""
    for i in range(seconds.shape[0]):
        out[i] = price_row(row, seconds[i], row_data)[1]


@dataclass(frozen=True, eq=False)
class Rate:
    """One matched row of the compiled tariffs: what a call to the number costs."""

    compiled: CompiledTariffs
    row: int

    @property
    def prefix(self) -> str:
        return str(self.compiled.row_prefix[self.row])

    @property
    def version(self) -> str:
        """'name@version' of the tariff version the row belongs to."""
        return str(self.compiled.row_version_key[self.row])

    @property
    def steps(self) -> Steps:
        return self.compiled.row_steps(self.row)

    def prices(self, seconds: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
        """Price (micro-units, rounded as the tariff says) of a call of each length."""
        out = np.empty(seconds.shape[0], dtype=np.int64)
        _prices(
            self.row, np.ascontiguousarray(seconds, dtype=np.int32), self.compiled.row_data, out
        )
        return out

    def price(self, seconds: int) -> int:
        return int(self.prices(np.array([seconds], dtype=np.int32))[0])


def max_seconds(rate: Rate, available: int, limit: int) -> int:
    """The most call seconds (<= limit) whose price fits in `available` micro-units.

    The candidates are the billing grid X, X+Y, X+2Y, ... up to the first point at or beyond
    the limit (a call of s seconds costs the grid point at or above s); 0 when not even the
    first step can be paid.
    """
    if limit <= 0:
        return 0
    steps = rate.steps
    first, step = steps.minimum, steps.increment
    if first > 0:
        count = 1 if limit <= first else 2 + (limit - first - 1) // step
        points = first + step * np.arange(count, dtype=np.int64)
    else:  # a 0/Y grid starts at Y
        points = step * np.arange(1, 1 + -(-limit // step), dtype=np.int64)
    prices = rate.prices(points.astype(np.int32))
    affordable = int(np.searchsorted(prices, available, side="right"))
    if affordable == 0:
        return 0
    return int(min(points[affordable - 1], limit))


class RateBook:
    """find(tariff, number, at) -> the Rate of the longest prefix in force, or None."""

    def __init__(self, compiled: Callable[[], CompiledTariffs]) -> None:
        self._compiled = compiled

    @classmethod
    def from_store(cls, client: RedisLike, settings: Settings) -> RateBook:
        """The tariff store's tables, recompiled when an import or derive changed them (the
        loader reads the store's generation counter: one GET per look-up)."""
        store = TariffStore(client, settings, clickhouse=False)
        loader = TariffLoader(store, check_interval_ms=0)
        return cls(loader.compiled)

    @classmethod
    def from_tables(cls, tables: Mapping[str, Sequence[TariffTable]]) -> RateBook:
        """Tables held in memory (offline checks, tests)."""
        compiled = compile_tables(tables)
        return cls(lambda: compiled)

    def find(self, tariff: str, number: str, at: datetime) -> Rate | None:
        return self.find_in(self._compiled(), tariff, number, at)

    def find_both(
        self, sell: str, buy: str, number: str, at: datetime
    ) -> tuple[Rate | None, Rate | None]:
        """The sell and the buy rate of one call, from one look at the store's generation."""
        compiled = self._compiled()
        return self.find_in(compiled, sell, number, at), self.find_in(compiled, buy, number, at)

    @staticmethod
    def find_in(compiled: CompiledTariffs, tariff: str, number: str, at: datetime) -> Rate | None:
        table = compiled.table_index(tariff)
        if table < 0 or not number.isdigit():
            return None
        row = int(_match(table, int(number), len(number), int(at.timestamp()), _args(compiled)))
        return Rate(compiled, row) if row >= 0 else None


def _args(compiled: CompiledTariffs) -> tuple[Any, ...]:
    return compiled.kernel_args()
