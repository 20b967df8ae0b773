"""What the supervisor needs to know about one local service."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Service:
    """One local service: how to start it, where it logs, and how to ask it a real question."""

    name: str
    port: int
    #: its own folder under the stack's state folder (data, config, logs)
    directory: Path
    argv: list[str]
    #: a real request (Kafka metadata, Redis INFO, ClickHouse SELECT); returns the server
    #: version, raises ServiceUnavailable when the service does not answer
    probe: Callable[[], str]
    #: writes configuration files and creates folders before a start
    prepare: Callable[[], None] = lambda: None
    #: the service's own log files, besides its console output
    extra_logs: list[Path] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    #: seconds to wait for the first answer after a start
    start_timeout_s: float = 60.0
    #: said by `status` (the broker's log lives in memory only)
    note: str = ""

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def console_log(self) -> Path:
        """stdout and stderr of the process."""
        return self.directory / f"{self.name}.log"


@contextlib.contextmanager
def quiet_clients() -> Iterator[None]:
    """Refused connections are expected while a service starts, and a probe reports them
    itself: keep the client libraries' own log lines out of the way meanwhile."""
    loggers = [logging.getLogger(name) for name in ("aiokafka", "clickhouse_driver", "redis")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
