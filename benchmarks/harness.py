"""The contract between benchmark modules and the runner that writes RESULTS.md.

A module `benchmarks/bench_<name>.py` defines

    TITLE = "Rating kernel"
    NEEDS_STACK = False            # True when it talks to Kafka / Redis / ClickHouse
    def run(ctx: BenchContext) -> BenchReport: ...

and measures each thing beside its baseline in the same run (ratios, medians of repeats).
Nothing else writes RESULTS.md.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rater.settings import Settings


@dataclass(frozen=True)
class BenchContext:
    """What the runner hands every benchmark."""

    settings: Settings  # points at the running stack when NEEDS_STACK
    out_dir: Path  # where plots (PNG) go; RESULTS.md links them relative to benchmarks/
    quick: bool = False  # smaller sizes (used by the smoke test in the test suite)


@dataclass(frozen=True)
class Measurement:
    """One number, optionally beside its baseline measured in the same run."""

    name: str
    value: float
    unit: str  # e.g. "CDRs/s", "s", "rows/s"
    baseline_name: str | None = None
    baseline_value: float | None = None
    target: str | None = None  # e.g. ">= 20,000,000 CDRs/s per core"
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """value / baseline (or baseline / value when lower is better)."""
        if not self.baseline_value or not self.value:
            return None
        if self.higher_is_better:
            return self.value / self.baseline_value
        return self.baseline_value / self.value


@dataclass
class BenchReport:
    """What a benchmark module returns."""

    title: str
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # markdown paragraphs (where time goes)
    plots: list[Path] = field(default_factory=list)  # PNG files under ctx.out_dir
    params: dict[str, object] = field(default_factory=dict)  # sizes, table sizes, ...


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of fn() in seconds, after warm-up runs (numba compiles, caches fill)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
