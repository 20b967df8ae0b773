"""The one clock of the rating path: de-duplication window, lateness, future skew, rated_at.

`Clock.of(settings)` is the system clock, unless `settings.clock_start` (RATER_CLOCK_START)
names an instant (ISO 8601 with an offset, or epoch seconds): then the clock starts at that
instant the first time a clock with that start is made in the process, and runs at real speed
from there. Tests and demos whose CDRs carry fixed dates set it, so that the rules about time
(docs/DESIGN.md section 4: late CDRs, CDRs from the future) see those CDRs as they would have
been seen when they happened.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from rater.errors import ConfigError


class _HasClockStart(Protocol):
    @property
    def clock_start(self) -> str: ...


#: start instant -> time.monotonic() when the first clock with that start was made
_ORIGINS: dict[float, float] = {}


@dataclass(frozen=True)
class Clock:
    """Now, in epoch seconds. `start` None: the system clock."""

    start: float | None = None
    origin: float = 0.0

    @classmethod
    def of(cls, settings: _HasClockStart) -> Clock:
        if not settings.clock_start:
            return cls()
        start = parse_instant(settings.clock_start)
        origin = _ORIGINS.setdefault(start, time.monotonic())
        return cls(start, origin)

    def time(self) -> float:
        if self.start is None:
            return time.time()
        return self.start + (time.monotonic() - self.origin)

    def now_s(self) -> int:
        """Whole epoch seconds (the resolution of CDR times and ClickHouse DateTime)."""
        return math.floor(self.time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)


def parse_instant(text: str) -> float:
    """Epoch seconds of 'NNNN' (epoch seconds) or an ISO 8601 instant with an offset."""
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        return float(int(stripped))
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ConfigError(
            f"RATER_CLOCK_START={text!r} is neither epoch seconds nor ISO 8601"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"RATER_CLOCK_START={text!r} needs an offset (e.g. Z or +00:00)")
    return moment.timestamp()
