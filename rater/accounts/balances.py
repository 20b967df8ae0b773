"""Balance changes made by people: credits, top-ups, corrections (docs/DESIGN.md section 1).

Each is one call of rater/redis/lua/adjust.lua, which applies the coverage rule atomically
(raising a customer is issuing credit the reseller's credit must cover; lowering a reseller
below what its customers hold is refused the same way), then one ledger entry with the reason.
"""

from __future__ import annotations

from rater.accounts.core import AccountStore, Amount, amount_micro, required_reason
from rater.accounts.ledger import LedgerEntry
from rater.accounts.model import Level, Reseller
from rater.accounts.replies import AdjustCode, Subject, raise_for, reply
from rater.errors import AccountError
from rater.logs import get_logger
from rater.money import from_micro
from rater.redis import cluster as debit_cluster

log = get_logger(__name__)


class Balances:
    """Signed additions to one balance with a reason; see the module doc."""

    def __init__(self, store: AccountStore) -> None:
        self.store = store

    def adjust(self, level: Level | str, account_id: str, amount: Amount, reason: str) -> int:
        """A signed correction to one balance; returns the new balance (micro-units)."""
        micro = amount_micro(amount, "amount")
        if micro == 0:
            raise AccountError("an adjustment of 0 changes nothing")
        return self.change(Level(level), account_id, micro, required_reason(reason), "adjustment")

    def change(
        self,
        level: Level,
        account_id: str,
        micro: int,
        reason: str,
        kind: str,
        *,
        refuse_disposable: bool = False,
    ) -> int:
        """Apply `micro` to one balance (coverage enforced), record it; the new balance."""
        store = self.store
        reseller, customer_id, card = self._owners(level, account_id)
        entry = LedgerEntry(
            level=level.value, reseller=reseller.reseller_id, customer=customer_id, card=card,
            kind=kind, amount=micro, currency=reseller.currency, reason=reason, actor=store.actor,
        )  # fmt: skip
        raw = store.script("adjust")(
            store.route(reseller.reseller_id),
            [
                level.code, reseller.reseller_id, account_id, micro, 1,
                1 if refuse_disposable else 0, 0 if store.cluster else 1,
                *applied_record_args(entry, store.settings.recovery_horizon_s),
            ],
        )  # fmt: skip
        code, details = reply(AdjustCode, raw)
        if store.cluster and level is Level.CARD and code is AdjustCode.APPLIED:
            debit_cluster.sync_ani(store.redis, reseller.reseller_id, account_id)
        what = f"card {account_id}" if level is Level.CARD else f"{level.value} {account_id!r}"
        raise_for(code, Subject(what, reseller, micro), details[0] if details else 0)
        balance = int(details[0])
        store.ledger.write([entry])
        log.info(
            "balance changed", level=level.value, account=account_id, amount=from_micro(micro),
            balance=from_micro(balance), reason=reason,
        )  # fmt: skip
        return balance

    def _owners(self, level: Level, account_id: str) -> tuple[Reseller, str, str]:
        """(reseller, customer id, card number) a change of this account is booked under."""
        store = self.store
        if level is Level.RESELLER:
            return store.reseller(account_id), "", ""
        if level is Level.CUSTOMER:
            customer = store.customer(account_id)
            return store.reseller(customer.reseller_id), account_id, ""
        reseller_id, customer_id = store.owner_of_card(account_id)
        return store.reseller(reseller_id), customer_id, account_id


def entry_day(entry: LedgerEntry) -> int:
    """The entry's UTC day as an epoch day number (its applied id is recorded under it)."""
    return int(entry.ts.timestamp()) // 86_400


def applied_record_args(entry: LedgerEntry, horizon_s: int) -> list[object]:
    """adjust.lua's last three arguments: the entry id, its UTC day, and when that day's record
    of applied ids may go (the day's end plus the recovery horizon)."""
    day = entry_day(entry)
    return [entry.entry_id, day, (day + 1) * 86_400 + horizon_s]
