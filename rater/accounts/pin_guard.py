"""Limits on PIN guessing beyond one card (docs/REDIS_KEYS.md, "PIN guessing").

- Per caller number (rater/redis/lua/pin_guard.lua): every settings.pin_caller_max_failures
  wrong PINs, on any cards, lock the caller for the next length of the lock schedule. Callers
  who withhold their number share one budget, "withheld".
- Per switch: wrong PINs in the current minute beyond settings.pin_switch_free_failures slow
  every PIN answer of that switch by settings.pin_switch_delay_ms each, up to
  settings.pin_switch_max_delay_ms; a switch is never locked out.

The real reason of a refusal goes to the log and to the metric rater_pin_refusals_total; the
caller hears the same answer for an unknown card, a wrong PIN, a locked or blocked one.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from rater.accounts.core import AccountStore
from rater.accounts.pins import Pins
from rater.accounts.replies import GuardCode, reply
from rater.logs import get_logger
from rater.redis import keys

log = get_logger(__name__)

#: why PIN attempts were refused: unknown_card, wrong, locked, blocked, caller_locked
PIN_REFUSALS = Counter(
    "rater_pin_refusals_total", "PIN attempts refused, by the real reason.", ["why"]
)

#: a caller's hash lives this long after its last lock ends (counts fade after a quiet day)
CALLER_IDLE_S = 86_400
_NOT_DIGITS = re.compile(r"\D")


def caller_key(caller: str) -> str:
    """The guard hash of a caller number (digits only; 'withheld' when there are none)."""
    digits = _NOT_DIGITS.sub("", caller)[:20]
    return keys.pin_guard_caller(digits or "withheld")


def switch_key(switch: str, minute: int) -> str:
    """Wrong PINs seen from one switch in one minute (epoch s // 60)."""
    return keys.pin_guard_switch(switch, minute)


@dataclass(frozen=True)
class CallerTurn:
    """A counted attempt of one caller: go ahead, or locked until (epoch s)."""

    key: str
    locked_until: int = 0

    @property
    def go(self) -> bool:
        return self.locked_until == 0


class PinGuard:
    """Caller and switch limits; see the module doc."""

    def __init__(self, store: AccountStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # epoch seconds: the minute a switch's failures are counted in

    # ---------------------------------------------------------------- callers
    def begin(self, caller: str) -> CallerTurn:
        """Count an attempt of `caller` before its PIN is checked (undo it when right)."""
        key = caller_key(caller)
        settings = self.store.settings
        raw = self.store.script("pin_guard")(
            [key],
            [
                "begin",
                settings.pin_caller_max_failures,
                settings.pin_lock_schedule_s,
                CALLER_IDLE_S,
            ],
        )
        code, details = reply(GuardCode, raw)
        if code is GuardCode.LOCKED:
            return CallerTurn(key, int(details[0]))
        return CallerTurn(key)

    def undo(self, turn: CallerTurn) -> None:
        """The PIN was right: the attempt does not count."""
        settings = self.store.settings
        self.store.script("pin_guard")(
            [turn.key],
            ["undo", settings.pin_caller_max_failures, settings.pin_lock_schedule_s, CALLER_IDLE_S],
        )

    # ---------------------------------------------------------------- switches
    def delay_s(self, switch: str) -> float:
        """How long to hold a PIN answer of this switch (0.0 below the free failures)."""
        settings = self.store.settings
        raw = self.store.redis.get(switch_key(switch, int(self.clock()) // 60))
        over = int(raw or 0) - settings.pin_switch_free_failures
        if over <= 0:
            return 0.0
        return min(over * settings.pin_switch_delay_ms, settings.pin_switch_max_delay_ms) / 1000

    def failed(self, switch: str, why: str) -> None:
        """Count a refused PIN attempt for its switch and in the metric."""
        PIN_REFUSALS.labels(why=why).inc()
        key = switch_key(switch, int(self.clock()) // 60)
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        pipe.execute()


class PinGate:
    """A card's PIN checked with every limit: per switch (a delay), per caller, per card."""

    def __init__(self, pins: Pins, guard: PinGuard, sleep: Callable[[float], None]) -> None:
        self.pins = pins
        self.guard = guard
        self.sleep = sleep

    def check(self, card: str, pin: str, *, caller: str | None, switch: str) -> bool:
        """True when the PIN is right. A refused attempt is counted per card, per caller and per
        switch, and its real reason logged; the caller hears the same answer whatever it was."""
        delay = self.guard.delay_s(switch)
        if delay > 0:
            self.sleep(delay)
        turn = self.guard.begin(caller) if caller is not None else None
        if turn is not None and not turn.go:
            self.guard.failed(switch, "caller_locked")
            log.warning(
                "PIN attempt refused", why="caller_locked", card=card, caller=caller,
                switch=switch, locked_until=turn.locked_until,
            )  # fmt: skip
            return False
        check = self.pins.check(card, pin)
        if check.ok:
            if turn is not None:
                self.guard.undo(turn)
            return True
        self.guard.failed(switch, check.code)
        log.warning(
            "PIN attempt refused", why=check.code, card=card, caller=caller, switch=switch,
            failures=check.failures, locked_until=check.locked_until,
        )  # fmt: skip
        return False
