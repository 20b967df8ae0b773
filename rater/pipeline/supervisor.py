"""`rater run --workers N`: N worker processes in one consumer group, restarted when they fail.

Each worker is a process of its own (spawned: its own loop, clients and numba state). The
supervisor:
- restarts a worker that exits non-zero (an error, a stall: status 3, a kill) after a backoff:
  settings.restart_backoff_ms, doubled per failure in a row, at most 30 s. A worker that sends
  no progress for 2 x stall_timeout_s (its loop and its watchdog both stuck) is killed first;
- stops them all, with one clear line, when one worker fails settings.restart_max times in a
  row (a run that committed records ends the streak);
- on SIGTERM or SIGINT asks every worker to stop (each commits what is stored and leaves the
  group) and kills one still running settings.shutdown_timeout_s + 5 s later;
- with until_idle_s, ends when every worker exited cleanly after going idle.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from typing import Any

from rater.errors import RaterError
from rater.logs import get_logger
from rater.pipeline.progress import Progress, Reporter, WorkerSummary
from rater.pipeline.watchdog import EXIT_STALLED
from rater.settings import Settings

log = get_logger(__name__)

#: the longest pause before a restart (seconds)
MAX_BACKOFF_S = 30.0
_SIGNALS = {signal.SIGTERM, signal.SIGINT}


@dataclass
class _Slot:
    """One worker position: the process of its current run and its failures in a row."""

    index: int
    run: int = 0
    process: BaseProcess | None = None
    heard_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    done: bool = False


class Supervisor:
    """Runs, watches and restarts worker processes; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        workers: int,
        until_idle_s: float | None,
        *,
        target: Callable[..., None],
        reporter: Reporter | None = None,
    ) -> None:
        self.settings = settings
        self.until_idle_s = until_idle_s
        self.target = target
        self.reporter = reporter
        self.context = multiprocessing.get_context("spawn")
        self.events: Any = self.context.Queue()
        self.slots = [_Slot(i) for i in range(workers)]
        #: (slot, run) -> the run's final summary, or the latest progress of a run that died
        self.finals: dict[tuple[int, int], WorkerSummary] = {}
        self.latest: dict[tuple[int, int], Progress] = {}
        self.stopping_at: float | None = None
        self.gave_up = ""

    def run(self) -> list[WorkerSummary]:
        for slot in self.slots:
            self._start(slot)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _SIGNALS}
        try:
            while not all(slot.done for slot in self.slots):
                self._receive(timeout_s=0.2)
                now = time.monotonic()
                for slot in self.slots:
                    self._watch(slot, now)
                if self.stopping_at is not None:
                    self._kill_late(now)
            self._receive(timeout_s=0.5)  # summaries sent just before the last exits
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for slot in self.slots:
                if slot.process is not None and slot.process.is_alive():
                    slot.process.kill()
                if slot.process is not None:
                    slot.process.join(timeout=5)
        if self.gave_up:
            raise RaterError(self.gave_up)
        return self._summaries()

    # ------------------------------------------------------------------ processes
    def _start(self, slot: _Slot) -> None:
        process = self.context.Process(
            target=self.target,
            args=(self.settings, slot.index, self.until_idle_s, self.events),
            kwargs={"events": self.events, "run": slot.run},
            name=f"rater-worker-{slot.index}",
        )
        # the worker unblocks them once its handlers are in place (rater/pipeline/worker.py)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.process, slot.heard_at = process, time.monotonic()

    def _watch(self, slot: _Slot, now: float) -> None:
        if slot.done:
            return
        process = slot.process
        if process is not None and process.is_alive():
            silent = now - slot.heard_at
            if self.stopping_at is None and silent > 2 * self.settings.stall_timeout_s:
                log.error(f"worker {slot.index} sent nothing for {silent:.0f} s: killing it")
                process.kill()
            return
        if process is not None:
            process.join()
            slot.process = None
            self._ended(slot, process.exitcode, now)
        if slot.restart_at is not None and now >= slot.restart_at and self.stopping_at is None:
            slot.restart_at = None
            slot.run += 1
            log.info(f"restarting worker {slot.index}", run=slot.run)
            self._start(slot)

    def _ended(self, slot: _Slot, code: int | None, now: float) -> None:
        key = (slot.index, slot.run)
        latest = self.latest.get(key)
        if latest is not None and self.reporter is not None:
            self.reporter.update(replace(latest, final=True))
        if code == 0 or self.stopping_at is not None:
            slot.done = True
            return
        committed = latest is not None and latest.summary.records > 0
        slot.failures = 1 if committed else slot.failures + 1
        why = exit_text(code)
        if slot.failures >= self.settings.restart_max:
            self.gave_up = (
                f"worker {slot.index} failed {slot.failures} times in a row (last: {why}): "
                "stopped all workers"
            )
            log.error(self.gave_up)
            self._stop_all(now)
            slot.done = True
            return
        delay = min(self.settings.restart_backoff_ms / 1000 * 2 ** (slot.failures - 1),
                    MAX_BACKOFF_S)  # fmt: skip
        log.warning(f"worker {slot.index} {why}: restarting it in {delay:.1f} s",
                    failures_in_a_row=slot.failures)  # fmt: skip
        slot.restart_at = now + delay

    def _stop_all(self, now: float) -> None:
        if self.stopping_at is None:
            self.stopping_at = now
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is None:
                slot.done = True
            elif slot.process.is_alive() and slot.process.pid:
                os.kill(slot.process.pid, signal.SIGTERM)

    def _kill_late(self, now: float) -> None:
        assert self.stopping_at is not None
        if now - self.stopping_at < self.settings.shutdown_timeout_s + 5:
            return
        for slot in self.slots:
            if slot.process is not None and slot.process.is_alive():
                log.error(f"worker {slot.index} did not stop: killing it")
                slot.process.kill()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping_at is None:
            log.info(f"{signal.Signals(signum).name}: stopping the workers (each commits what "
                     "is stored and leaves the group)")  # fmt: skip
        self._stop_all(time.monotonic())

    # ------------------------------------------------------------------ what workers send
    def _receive(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            if isinstance(item, Progress):
                slot = self.slots[item.index]
                if item.run == slot.run:
                    slot.heard_at = time.monotonic()
                self.latest[(item.index, item.run)] = item
                if self.reporter is not None:
                    self.reporter.update(item)
            elif isinstance(item, WorkerSummary):
                self.finals[(item.index, self.slots[item.index].run)] = item

    def _summaries(self) -> list[WorkerSummary]:
        """Each run's final summary; for a run that died, what it had committed."""
        out = []
        for slot in self.slots:
            for run in range(slot.run + 1):
                final = self.finals.get((slot.index, run))
                latest = self.latest.get((slot.index, run))
                if final is not None:
                    out.append(final)
                elif latest is not None and latest.summary.records:
                    out.append(latest.summary)
        return out


def exit_text(code: int | None) -> str:
    """A worker's exit status in words."""
    if code is None:
        return "did not exit"
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    if code == EXIT_STALLED:
        return "stalled (exit status 3)"
    return f"failed (exit status {code})"
