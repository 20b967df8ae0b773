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
from typing import Any

from prometheus_client import Counter

from rater.accounts.core import AccountStore
from rater.accounts.pins import PinCheck, Pins
from rater.accounts.replies import GuardCode, reply
from rater.accounts.roundtrip import RoundTrip
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
    """Caller and switch limits; see the module doc. Each step can be queued on a RoundTrip
    (`queue_*`) so an authorization sends it with its other commands."""

    def __init__(self, store: AccountStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock  # epoch seconds: the minute a switch's failures are counted in

    # ---------------------------------------------------------------- callers
    def _args(self, op: str) -> list[object]:
        settings = self.store.settings
        return [op, settings.pin_caller_max_failures, settings.pin_lock_schedule_s, CALLER_IDLE_S]

    def queue_begin(self, rt: RoundTrip, caller: str) -> tuple[str, int]:
        """Count an attempt of `caller` before its PIN is checked: (its key, reply index)."""
        key = caller_key(caller)
        return key, rt.script(self.store.script("pin_guard"), [key], self._args("begin"))

    @staticmethod
    def turn(key: str, raw: Any) -> CallerTurn:
        code, details = reply(GuardCode, raw)
        if code is GuardCode.LOCKED:
            return CallerTurn(key, int(details[0]))
        return CallerTurn(key)

    def begin(self, caller: str) -> CallerTurn:
        """Count an attempt of `caller` before its PIN is checked (undo it when right)."""
        rt = RoundTrip(self.store.redis)
        key, at = self.queue_begin(rt, caller)
        return self.turn(key, rt.run()[at])

    def queue_undo(self, rt: RoundTrip, turn: CallerTurn) -> None:
        """The PIN was right: the attempt does not count."""
        rt.script(self.store.script("pin_guard"), [turn.key], self._args("undo"))

    def undo(self, turn: CallerTurn) -> None:
        rt = RoundTrip(self.store.redis)
        self.queue_undo(rt, turn)
        rt.run()

    # ---------------------------------------------------------------- switches
    def queue_delay(self, rt: RoundTrip, switch: str) -> int:
        return rt.command("GET", switch_key(switch, int(self.clock()) // 60))

    def delay_from(self, raw: Any) -> float:
        """How long to hold a PIN answer of this switch (0.0 below the free failures)."""
        settings = self.store.settings
        over = int(raw or 0) - settings.pin_switch_free_failures
        if over <= 0:
            return 0.0
        return min(over * settings.pin_switch_delay_ms, settings.pin_switch_max_delay_ms) / 1000

    def delay_s(self, switch: str) -> float:
        rt = RoundTrip(self.store.redis)
        at = self.queue_delay(rt, switch)
        return self.delay_from(rt.run()[at])

    def queue_failed(self, rt: RoundTrip, switch: str, why: str) -> None:
        """Count a refused PIN attempt for its switch and in the metric."""
        PIN_REFUSALS.labels(why=why).inc()
        key = switch_key(switch, int(self.clock()) // 60)
        rt.command("INCR", key)
        rt.command("EXPIRE", key, 120)

    def failed(self, switch: str, why: str) -> None:
        rt = RoundTrip(self.store.redis)
        self.queue_failed(rt, switch, why)
        rt.run()


@dataclass(frozen=True)
class PinStart:
    """The reply indices of a PIN check's first wait: the switch's delay, the caller's turn."""

    delay: int
    caller: tuple[str, int] | None


class PinGate:
    """A card's PIN checked with every limit: per switch (a delay), per caller, per card.

    In three waits, each shared with other commands of an authorization (`start`, `check`,
    `finish`), or alone with `check_alone` (the card balance of docs/SERVE.md):
    1. the switch's failures this minute and the caller's attempt counted (`queue_start`);
    2. the delay slept, then pin.lua (`queue_check`), unless the caller is locked;
    3. the attempt taken back when the PIN was right, or the refusal counted for the switch
       and logged (`queue_finish`)."""

    def __init__(self, pins: Pins, guard: PinGuard, sleep: Callable[[float], None]) -> None:
        self.pins = pins
        self.guard = guard
        self.sleep = sleep

    def queue_start(self, rt: RoundTrip, caller: str | None, switch: str) -> PinStart:
        delay = self.guard.queue_delay(rt, switch)
        return PinStart(delay, self.guard.queue_begin(rt, caller) if caller is not None else None)

    def started(self, replies: list[Any], start: PinStart) -> CallerTurn | None:
        """Sleeps the switch's delay; the caller's turn (None without a caller number)."""
        delay = self.guard.delay_from(replies[start.delay])
        if delay > 0:
            self.sleep(delay)
        if start.caller is None:
            return None
        key, at = start.caller
        return self.guard.turn(key, replies[at])

    def queue_check(self, rt: RoundTrip, reseller_id: str, card: str, pin: str) -> int:
        key, args = self.pins.call(reseller_id, card, pin)
        return rt.script(self.pins.store.script("pin"), [key], list(args))

    def queue_finish(
        self,
        rt: RoundTrip,
        check: PinCheck | None,
        turn: CallerTurn | None,
        *,
        card: str,
        caller: str | None,
        switch: str,
    ) -> bool:
        """True when the PIN was right; check None: not checked (the caller is locked)."""
        if check is not None and check.ok:
            if turn is not None:
                self.guard.queue_undo(rt, turn)
            return True
        if check is None:
            self.guard.queue_failed(rt, switch, "caller_locked")
            log.warning(
                "PIN attempt refused", why="caller_locked", card=card, caller=caller,
                switch=switch, locked_until=turn.locked_until if turn else 0,
            )  # fmt: skip
            return False
        self.guard.queue_failed(rt, switch, check.code)
        log.warning(
            "PIN attempt refused", why=check.code, card=card, caller=caller, switch=switch,
            failures=check.failures, locked_until=check.locked_until,
        )  # fmt: skip
        return False

    def check(self, card: str, pin: str, *, caller: str | None, switch: str) -> bool:
        """True when the PIN is right. A refused attempt is counted per card, per caller and per
        switch, and its real reason logged; the caller hears the same answer whatever it was."""
        redis = self.pins.store.redis
        rt = RoundTrip(redis)
        start = self.queue_start(rt, caller, switch)
        owner = rt.command("GET", keys.card_index(card))
        replies = rt.run()
        turn = self.started(replies, start)
        check: PinCheck | None = None
        if turn is None or turn.go:
            raw = replies[owner]
            rt = RoundTrip(redis)
            at = self.queue_check(rt, raw.decode().split(":", 1)[0] if raw else "", card, pin)
            check = Pins.result(rt.run()[at])
        rt = RoundTrip(redis)
        right = self.queue_finish(rt, check, turn, card=card, caller=caller, switch=switch)
        rt.run()
        return right
