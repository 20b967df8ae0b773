"""PIN checks with lockout (rater/redis/lua/pin.lua)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from rater.accounts.cards import pin_hash
from rater.accounts.core import AccountStore
from rater.accounts.replies import PinCode, reply
from rater.errors import NotFound
from rater.redis import keys


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    failures: int  # wrong PINs in a row so far (0 after a right one)
    locked_until: datetime | None  # set when the card is locked


class Pins:
    """Checks PINs against their HMACs; see PinCheck."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def verify(self, number: str, pin: str) -> PinCheck:
        """Check a PIN; after settings.pin_max_failures wrong ones the card is locked for
        settings.pin_lock_s seconds (even the right PIN is refused meanwhile)."""
        store = self.store
        reseller_id, _ = store.owner_of_card(number)
        raw = store.script("pin")(
            [keys.card(reseller_id, number)],
            [
                pin_hash(store.settings, number, pin),
                store.settings.pin_max_failures,
                store.settings.pin_lock_s,
            ],
        )
        code, details = reply(PinCode, raw)
        if code is PinCode.NO_CARD:
            raise NotFound(f"card {number} does not exist")
        if code is PinCode.LOCKED:
            return PinCheck(False, 0, datetime.fromtimestamp(int(details[0]), UTC))
        return PinCheck(code is PinCode.RIGHT, int(details[0]), None)
