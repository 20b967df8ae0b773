"""PIN checks per card (rater/redis/lua/pin.lua): key rotation, escalating locks, a block.

Wrong PINs count until a right one; each settings.pin_max_failures of them lock the card for
the next length of settings.pin_lock_schedule_s (900, 3600, 86400 s by default), and one
round more blocks its PIN until `rater card unblock`. With the defaults a guesser gets
`guess_budget()` tries per card: 15 in the first day, 20 in all, then the card is blocked.
The per-caller and per-switch limits of authorization are rater/accounts/pin_guard.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rater.accounts.core import AccountStore
from rater.accounts.pinkeys import PinKeys
from rater.accounts.replies import PinCode, reply
from rater.errors import NotFound
from rater.redis import keys
from rater.settings import Settings


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    failures: int  # wrong PINs since the last right one (0 after a right one)
    locked_until: datetime | None = None  # set when the card is locked now
    blocked: bool = False  # blocked after too many wrong PINs
    known: bool = True  # False: no card has this number
    rehashed: bool = False  # the right PIN was moved to the current key

    @property
    def code(self) -> str:
        """What happened, for logs and metrics: right, wrong, locked, blocked, unknown_card."""
        if not self.known:
            return "unknown_card"
        if self.ok:
            return "right"
        if self.blocked:
            return "blocked"
        return "locked" if self.locked_until is not None else "wrong"


class Pins:
    """Checks PINs against their HMACs; the PIN keys are read on first use."""

    def __init__(self, store: AccountStore, keys_: PinKeys | None = None) -> None:
        self.store = store
        self._keys = keys_

    @property
    def keys(self) -> PinKeys:
        """The PIN keys; ConfigError (naming RATER_PIN_SECRET) when there is no secret."""
        if self._keys is None:
            self._keys = PinKeys.from_settings(self.store.settings)
        return self._keys

    def verify(self, number: str, pin: str) -> PinCheck:
        """Check a card's PIN; NotFound for a number no card has."""
        found = self.check(number, pin)
        if not found.known:
            raise NotFound(f"card {number} does not exist")
        return found

    def check(self, number: str, pin: str) -> PinCheck:
        """Check a card's PIN; a number no card has answers known=False after the same work
        (HMACs and one script call), so the time taken does not tell it apart."""
        owner = self.store.find_card_owner(number)
        key, args = self.call(owner[0] if owner else "", number, pin)
        return self.result(self.store.script("pin")([key], args))

    def call(self, reseller_id: str, number: str, pin: str) -> tuple[str, list[object]]:
        """KEYS[1] and ARGV of pin.lua for a card of `reseller_id` ('' when no card has the
        number: the script then finds no hash and answers NO_CARD after the same work)."""
        settings = self.store.settings
        limits: list[object] = [settings.pin_max_failures, settings.pin_lock_schedule_s]
        return keys.card(reseller_id, number), [*limits, *self.keys.candidates(number, pin)]

    @staticmethod
    def result(raw: Any) -> PinCheck:
        """pin.lua's answer as a PinCheck."""
        code, details = reply(PinCode, raw)
        if code is PinCode.NO_CARD:
            return PinCheck(False, 0, known=False)
        if code is PinCode.LOCKED:
            return PinCheck(False, 0, datetime.fromtimestamp(int(details[0]), UTC))
        if code is PinCode.BLOCKED:
            return PinCheck(False, int(details[0]), blocked=True)
        if code is PinCode.RIGHT:
            return PinCheck(True, 0, rehashed=int(details[0]) == 1)
        return PinCheck(False, int(details[0]))


def guess_budget(settings: Settings) -> tuple[int, int]:
    """(wrong PINs a guesser gets on one card within its first 24 hours, in all before the
    card's PIN is blocked), from the lock settings."""
    per, schedule = settings.pin_max_failures, settings.pin_lock_schedule
    day, elapsed, first_day = 86_400, 0, per
    for lock in schedule:
        elapsed += lock
        if elapsed >= day:
            break
        first_day += per
    return first_day, per * (len(schedule) + 1)
