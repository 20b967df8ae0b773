"""What workers report while they run, and the live progress line of `rater run`.

Each worker sends a `Progress` about once a second (from its own process through a queue, or
directly when it runs in the caller's process). `Reporter` adds them up: records rated,
CDRs/s, lag (records still to rate on the workers' partitions: the high watermark of the
latest fetch response minus the committed position, rater/kafka/ends.py) and the time left at
the current rate. On a terminal it draws one live line (tqdm) on stderr; otherwise it logs a
progress line every settings.progress_interval_s.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from tqdm import tqdm

from rater.logs import get_logger
from rater.pipeline.flow import BatchReport

log = get_logger(__name__)


@dataclass
class WorkerSummary:
    """Totals of one worker's run."""

    index: int
    records: int = 0
    batches: int = 0
    stored: int = 0
    dead_lettered: int = 0
    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: wall clock (epoch s) of the first fetched record and of the last commit
    first_at: float = 0.0
    last_at: float = 0.0
    #: publish -> committed, ms, sampled (at most 64 records a batch) for percentiles, with
    #: each sample's publish time (epoch ms) so a benchmark can leave a warm-up out
    latencies_ms: list[float] = field(default_factory=list)
    latency_published_ms: list[float] = field(default_factory=list)

    def add(self, report: BatchReport) -> None:
        self.records += report.records
        self.batches += 1
        self.stored += report.stored
        self.dead_lettered += report.dead_lettered
        for key, count in report.outcomes.items():
            self.outcomes[key] = self.outcomes.get(key, 0) + count
        for stage, seconds in report.stage_seconds.items():
            self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def without_samples(self) -> WorkerSummary:
        """A copy without the latency samples (small enough to send every second)."""
        return WorkerSummary(
            self.index, self.records, self.batches, self.stored, self.dead_lettered,
            dict(self.outcomes), dict(self.stage_seconds), self.seconds, self.first_at,
            self.last_at,
        )  # fmt: skip


@dataclass
class Progress:
    """One worker's state, sent about once a second."""

    index: int
    #: which start of this worker slot (a restarted worker counts again from 0)
    run: int
    summary: WorkerSummary
    #: records left on its partitions; None while unknown (before the first fetch response)
    lag: int | None
    partitions: list[int]
    state: str  # starting | running | rebalancing | stopping
    final: bool = False


class Reporter:
    """Adds workers' Progress up and shows it (a live line on a terminal, log lines else)."""

    def __init__(
        self,
        *,
        interval_s: float,
        stream: TextIO | None = None,
        live: bool | None = None,
        emit: Callable[..., object] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        #: where progress lines go when not live (the log, at info level)
        self.emit = emit or log.info
        self.live = self.stream.isatty() if live is None else live
        self.interval_s = interval_s
        #: (slot, run) -> latest progress; runs of a slot add up (a restart starts from 0)
        self.latest: dict[tuple[int, int], Progress] = {}
        self.bar: tqdm[None] | None = None
        self.started = time.monotonic()
        self.logged_at = self.started
        self.logged_records = 0
        self.shown = 0

    def update(self, progress: Progress) -> None:
        self.latest[(progress.index, progress.run)] = progress
        self.show()

    def records(self) -> int:
        return sum(p.summary.records for p in self.latest.values())

    def lag(self) -> int | None:
        """Records left on all workers' partitions; None while any worker's is unknown."""
        lags = [p.lag for p in self._current()]
        if not lags or any(lag is None for lag in lags):
            return None
        return sum(lag for lag in lags if lag is not None)

    def _current(self) -> list[Progress]:
        """The latest run of each slot that has not ended."""
        runs: dict[int, Progress] = {}
        for (slot, run), progress in self.latest.items():
            if slot not in runs or run > runs[slot].run:
                runs[slot] = progress
        return [p for p in runs.values() if not p.final]

    def show(self, *, force: bool = False) -> None:
        records, lag = self.records(), self.lag()
        if self.live:
            self._draw(records, lag)
            return
        now = time.monotonic()
        if not force and now - self.logged_at < self.interval_s:
            return
        since, before = (self.started, 0) if force else (self.logged_at, self.logged_records)
        rate = (records - before) / max(now - since, 1e-9)  # the last line: the whole run's
        eta = lag / rate if lag is not None and rate > 0 else None
        self.emit(
            "progress",
            rated=records,
            cdrs_per_s=round(rate),
            lag=lag if lag is not None else "?",
            eta_s=round(eta) if eta is not None else "?",
            workers=len(self._current()),
        )
        self.logged_at, self.logged_records = now, records

    def _draw(self, records: int, lag: int | None) -> None:
        if self.bar is None:
            # a terminal that reports no width (a bare pty) would get a line cut to nothing
            sized = _columns(self.stream) > 0
            self.bar = tqdm(
                total=None, unit=" CDRs", unit_scale=True, file=self.stream, smoothing=0.1,
                dynamic_ncols=sized, ncols=None if sized else 100, nrows=None if sized else 24,
                desc="rating", leave=True,
                mininterval=0.25,
            )  # fmt: skip
        bar = self.bar
        bar.total = records + lag if lag is not None else None
        if records > self.shown:
            bar.update(records - self.shown)
            self.shown = records
        workers = len(self._current())
        bar.set_postfix_str(f"lag {lag:,}" if lag is not None else "lag ?", refresh=False)
        bar.set_description(f"rating ({workers} worker{'s' if workers != 1 else ''})", False)
        bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.live and self.latest:
            self.show(force=True)


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0
