"""Prove Redis balances against ClickHouse, per account.

For every reseller, customer and card in Redis:

    expected = credits (ledger entries that are not calls: opening, credit, top-ups,
               adjustments, batch funding, card issue; plus entries still pending in Redis)
             - debits  (rated_cdrs: sum(price * sign) for customers and cards,
                        sum(cost * sign) for resellers, outcome 'rated')

and the Redis balance must equal it. Debits are read from rated_cdrs itself, not from the
ledger's call entries, so a broken materialized view shows up too (`ledger_mismatch`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rater import clickhouse
from rater.accounts.ledger import PENDING, LedgerEntry
from rater.money import from_micro
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

Key = tuple[str, str]  # (level, account id)


@dataclass(frozen=True)
class AccountCheck:
    """One account's balance beside what ClickHouse says it should be."""

    level: str
    account: str
    reseller: str
    redis_balance: int
    credits: int
    debits: int
    ledger_calls: int  # call entries the ledger views hold (should be -debits)

    @property
    def expected(self) -> int:
        return self.credits - self.debits

    @property
    def difference(self) -> int:
        return self.redis_balance - self.expected

    @property
    def ledger_mismatch(self) -> bool:
        return self.ledger_calls != -self.debits

    @property
    def ok(self) -> bool:
        return self.difference == 0 and not self.ledger_mismatch

    def row(self) -> tuple[str, ...]:
        return (
            self.level, self.account, from_micro(self.redis_balance), from_micro(self.credits),
            from_micro(self.debits), from_micro(self.expected), from_micro(self.difference),
        )  # fmt: skip


def reconcile(
    settings: Settings, redis: RedisLike, *, resellers: Sequence[str] | None = None
) -> list[AccountCheck]:
    """Every account in Redis (or only those of `resellers`), checked (see the module doc)."""
    balances, owners = _redis_balances(redis, resellers)
    ch = clickhouse.client(settings, numpy=False)
    try:
        credits = _sum_by(ch, "kind != 'call'")
        calls = _sum_by(ch, "kind = 'call'")
        debits: dict[Key, int] = {}
        for level, column, amount in (
            ("customer", "customer", "price"),
            ("card", "card", "price"),
            ("reseller", "reseller", "cost"),
        ):
            rows = ch.execute(
                f"SELECT {column}, sum({amount} * sign) FROM rated_cdrs "
                f"WHERE outcome = 'rated' AND {column} != '' GROUP BY {column}"
            )
            debits.update({(level, str(a)): int(s) for a, s in rows})
    finally:
        ch.disconnect()
    for entry in _pending(redis):
        key = (entry.level, _account_of(entry.level, entry.reseller, entry.customer, entry.card))
        credits[key] = credits.get(key, 0) + entry.amount
    checks = []
    keys_seen = (
        set(balances) if resellers is not None else set(balances) | set(credits) | set(debits)
    )
    for key in sorted(keys_seen):
        if key[1] == "":
            continue
        checks.append(
            AccountCheck(
                level=key[0],
                account=key[1],
                reseller=owners.get(key, ""),
                redis_balance=balances.get(key, 0),
                credits=credits.get(key, 0),
                debits=debits.get(key, 0),
                ledger_calls=calls.get(key, 0),
            )
        )
    return checks


def _account_of(level: str, reseller: str, customer: str, card: str) -> str:
    return {"reseller": reseller, "customer": customer}.get(level, card)


def _sum_by(ch: Any, where: str) -> dict[Key, int]:
    """Ledger sums per (level, account) for the entries matching `where`."""
    rows = ch.execute(
        "SELECT level AS lv, multiIf(level = 'reseller', reseller, level = 'customer', customer, "
        f"card) AS account_id, sum(amount) AS total FROM ledger WHERE {where} "
        "GROUP BY lv, account_id"
    )
    return {(str(level), str(account)): int(total) for level, account, total in rows}


def _pending(redis: RedisLike) -> Iterable[LedgerEntry]:
    raw: Any = redis.lrange(PENDING, 0, -1)
    return [LedgerEntry.from_json(item) for item in raw]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _redis_balances(
    redis: RedisLike, only: Sequence[str] | None
) -> tuple[dict[Key, int], dict[Key, str]]:
    balances: dict[Key, int] = {}
    owners: dict[Key, str] = {}
    resellers: Any = redis.smembers(keys.RESELLERS)
    for reseller in sorted(_text(r) for r in resellers):
        if only is not None and reseller not in only:
            continue
        balances[("reseller", reseller)] = int(redis.hget(keys.reseller(reseller), "bal") or 0)
        owners[("reseller", reseller)] = reseller
        customers: Any = redis.smembers(keys.customers_of(reseller))
        for customer in sorted(_text(c) for c in customers):
            bal: Any = redis.hget(keys.customer(reseller, customer), "bal")
            balances[("customer", customer)] = int(bal or 0)
            owners[("customer", customer)] = reseller
            cards: Any = redis.smembers(keys.cards_of(reseller, customer))
            numbers = sorted(_text(k) for k in cards)
            if not numbers:
                continue
            pipe = redis.pipeline(transaction=False)
            for number in numbers:
                pipe.hget(keys.card(reseller, number), "bal")
            for number, value in zip(numbers, pipe.execute(), strict=True):
                balances[("card", number)] = int(value or 0)
                owners[("card", number)] = reseller
    return balances, owners
