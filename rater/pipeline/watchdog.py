"""A worker's watchdog: a stalled worker says why and exits, so a supervisor restarts it.

The worker keeps `Health` up to date from its event loop; the watchdog, a thread, reads it
once a second. It is a thread so that it also sees an event loop that stopped running (a
blocking call on the loop's thread) and can end the process when the loop cannot.

Stalled, after settings.stall_timeout_s (default 60 s), means one of:
- the event loop has not run (the worker's heartbeat task did not tick);
- a rebalance has not finished;
- the worker has lag on its partitions and committed nothing.
While Redis, ClickHouse or Kafka does not answer (probed here, each within 10 s), or the
worker retried an infrastructure error within that time, the worker is waiting, not stalled:
the watchdog logs a warning and goes on watching. Otherwise it logs the reason at error level
and asks the worker to stop with a non-zero exit; in a worker process, a worker still running
settings.shutdown_timeout_s later is ended on the spot (os._exit). The same bound applies to a
stop asked by SIGTERM or SIGINT.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rater import clickhouse
from rater.errors import ServiceUnavailable
from rater.logs import get_logger
from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.stack import broker

log = get_logger(__name__)

#: exit status of a worker that stalled, and of one that failed otherwise
EXIT_STALLED = 3
EXIT_FAILED = 1

PROBE_TIMEOUT_S = 10.0


@dataclass
class Health:
    """What the worker's loop last said about itself (monotonic seconds). Written by the
    loop, read by the watchdog thread: single values, no lock needed."""

    tick_at: float = field(default_factory=time.monotonic)
    #: the last commit of records, or the last moment the worker had nothing left to do
    progress_at: float = field(default_factory=time.monotonic)
    #: records left on the worker's partitions (None: unknown yet)
    lag: int | None = None
    partitions: list[int] = field(default_factory=list)
    rebalancing_since: float | None = None
    #: the last infrastructure error retried, and what it was
    infra_at: float = 0.0
    infra_what: str = ""
    #: what the loop is doing, since when
    step: str = "starting"
    step_since: float = field(default_factory=time.monotonic)
    #: when a stop was asked (signal, stall, parent gone)
    stop_at: float | None = None

    def doing(self, step: str) -> None:
        if step != self.step:
            self.step, self.step_since = step, time.monotonic()

    def stall(self, now: float, timeout_s: float) -> str | None:
        """Why the worker is stalled, or None. What the loop reported is judged as of when it
        reported it (tick_at): a loop that froze right after saying "rebalancing" has a frozen
        loop, not a rebalance that lasts."""
        doing = f"step {self.step!r} for {now - self.step_since:.0f} s"
        silent = now - self.tick_at
        if silent > timeout_s:
            return f"the event loop has not run for {silent:.0f} s ({doing})"
        if self.rebalancing_since is not None and self.tick_at - self.rebalancing_since > timeout_s:
            lasted = self.tick_at - self.rebalancing_since
            return f"a rebalance has not finished in {lasted:.0f} s ({doing})"
        if self.lag and self.tick_at - self.progress_at > timeout_s:
            return (
                f"lag {self.lag} on partitions {self.partitions} and nothing committed for "
                f"{self.tick_at - self.progress_at:.0f} s ({doing})"
            )
        return None


def probe_services(settings: Settings) -> list[str]:
    """The services that do not answer within PROBE_TIMEOUT_S each ([] when all answer)."""
    probes: dict[str, Callable[[], object]] = {
        "Redis": lambda: _ping_redis(settings),
        "ClickHouse": lambda: clickhouse.ping(settings),
        "Kafka": lambda: broker.probe(settings, timeout_s=PROBE_TIMEOUT_S / 2),
    }
    pool = concurrent.futures.ThreadPoolExecutor(3, thread_name_prefix="probe")
    futures = {name: pool.submit(probe) for name, probe in probes.items()}
    failing = []
    for name, future in futures.items():
        try:
            future.result(timeout=PROBE_TIMEOUT_S)
        except (concurrent.futures.TimeoutError, ServiceUnavailable, OSError, EOFError) as error:
            failing.append(f"{name} ({error!r})" if str(error) else name)
        except Exception as error:  # an unexpected answer is not an answer
            failing.append(f"{name} ({error!r})")
    pool.shutdown(wait=False, cancel_futures=True)  # a hung probe must not hold the watchdog
    return failing


def _ping_redis(settings: Settings) -> None:
    client = redis_client.connect(settings, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


class Watchdog(threading.Thread):
    """Watches one worker's Health; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        health: Health,
        *,
        stop_worker: Callable[[str], None],
        hard_exit: bool,
        probe: Callable[[Settings], list[str]] = probe_services,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self.settings = settings
        self.health = health
        self.stop_worker = stop_worker
        self.hard_exit = hard_exit
        self.probe = probe
        self.finished = threading.Event()
        self.stalled_at: float | None = None
        self.warned_at = 0.0

    def close(self) -> None:
        self.finished.set()

    def run(self) -> None:
        while not self.finished.wait(1.0):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        grace = self.settings.shutdown_timeout_s + 2
        h = self.health
        if h.stop_at is not None and now - h.stop_at > grace:
            self._exit_now(f"did not stop within {grace} s of the stop request (step {h.step!r})",
                           EXIT_STALLED if self.stalled_at else EXIT_FAILED)  # fmt: skip
            return
        if self.stalled_at is not None:
            if now - self.stalled_at > grace:  # the loop did not even take the stop request
                self._exit_now("stalled, and the event loop did not take the stop", EXIT_STALLED)
            return
        timeout = self.settings.stall_timeout_s
        reason = h.stall(now, timeout)
        if reason is None:
            return
        if now - h.infra_at < timeout:
            self._warn(now, f"no progress ({reason}), waiting for {h.infra_what}")
            return
        failing = self.probe(self.settings)
        if failing:
            self._warn(now, f"no progress ({reason}), and {', '.join(failing)} does not answer")
            return
        self.stalled_at = now
        log.error(
            f"worker stalled: {reason}; Redis, ClickHouse and Kafka answer, so waiting will not "
            "help: stopping with exit status 3 for a restart",
            lag=h.lag, partitions=h.partitions,
        )  # fmt: skip
        self.stop_worker(reason)

    def _warn(self, now: float, message: str) -> None:
        if now - self.warned_at >= self.settings.stall_timeout_s / 2:
            self.warned_at = now
            log.warning(message)

    def _exit_now(self, why: str, status: int) -> None:
        if not self.hard_exit:
            return
        log.error(f"worker ended at once: {why}")
        logging.shutdown()
        sys.stderr.flush()
        os._exit(status)
