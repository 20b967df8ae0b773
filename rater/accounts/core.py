"""What every part of the account API shares: settings, the Redis client, the ledger, scripts,
and the reads of one reseller, customer or card (docs/REDIS_KEYS.md has the keys).

Redis holds the balances; every credit, top-up and adjustment is a signed addition with a
reason, also written to the ClickHouse ledger (rater/accounts/ledger.py). The parts of the API
(resellers.py, customers.py, batches.py, card_admin.py, ani.py, balances.py, pins.py) each
take one AccountStore; rater/accounts/api.py puts them behind the `Accounts` facade.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rater.accounts.ledger import LedgerWriter
from rater.accounts.model import Card, Customer, Reseller
from rater.errors import AccountError, NotFound
from rater.money import from_micro, to_micro
from rater.redis import cluster as debit_cluster
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.redis.contract import MAX_AMOUNT
from rater.redis.scripts import Script
from rater.settings import Settings

Amount = Decimal | str | int


def amount_micro(value: Amount, what: str) -> int:
    """Decimal strings and Decimals are currency units; ints are taken as micro-units. Beyond
    +-MAX_AMOUNT (2^53 - 1 micro-units) an amount is refused: no sum with it stays exact."""
    if isinstance(value, bool):
        raise AccountError(f"{what}: {value!r} is not an amount")
    micro = value if isinstance(value, int) else to_micro(value)
    if abs(micro) > MAX_AMOUNT:
        raise AccountError(
            f"{what}: {from_micro(micro)} is beyond the largest amount rater keeps exact "
            f"({from_micro(MAX_AMOUNT)})"
        )
    return micro


def required_reason(reason: str) -> str:
    """Every balance change names why (recorded in the ledger)."""
    if not reason or not reason.strip():
        raise AccountError("a reason is required for every balance change")
    return reason.strip()


class AccountStore:
    """The shared state of the account API; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        client: RedisLike | None = None,
        ledger: LedgerWriter | None = None,
        *,
        actor: str = "",
    ) -> None:
        self.settings = settings
        # typed Any: redis-py's stubs answer bytes | str; this client is always bytes
        self.redis: Any = client if client is not None else redis_client.connect(settings)
        self.ledger = ledger if ledger is not None else LedgerWriter(settings, self.redis)
        self.actor = actor
        #: Redis Cluster: scripts run per reseller slot (rater/redis/cluster.py)
        self.cluster = debit_cluster.is_cluster(self.redis)
        self._scripts: dict[str, Script] = {}

    def script(self, name: str) -> Script:
        """rater/redis/lua/<name>.lua on this client (loaded once)."""
        found = self._scripts.get(name)
        if found is None:
            found = self._scripts[name] = Script(self.redis, name)
        return found

    def route(self, reseller_id: str) -> list[str]:
        """KEYS of a per-reseller script call: on Redis Cluster the reseller's slot; none on one
        server (the scripts build their key names from the ids in ARGV)."""
        return debit_cluster.route(reseller_id) if self.cluster else []

    def bump(self) -> None:
        """Tell every AccountLookup cache that accounts changed."""
        self.redis.incr(keys.GENERATION)

    # ---------------------------------------------------------------- reads
    def reseller(self, reseller_id: str) -> Reseller:
        fields = self.redis.hgetall(keys.reseller(reseller_id))
        if not fields:
            raise NotFound(f"reseller {reseller_id!r} does not exist")
        return Reseller.from_hash(reseller_id, fields)

    def customer(self, customer_id: str) -> Customer:
        reseller_id = self.reseller_of_customer(customer_id)
        fields = self.redis.hgetall(keys.customer(reseller_id, customer_id))
        if not fields:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return Customer.from_hash(customer_id, fields)

    def card(self, number: str) -> Card:
        reseller_id, _ = self.owner_of_card(number)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.card(reseller_id, number))
        pipe.smembers(keys.card_anis(reseller_id, number))
        fields, anis = pipe.execute()
        if not fields:
            raise NotFound(f"card {number} does not exist")
        return Card.from_hash(number, fields, tuple(sorted(a.decode() for a in anis)))

    def reseller_of_customer(self, customer_id: str) -> str:
        raw = self.redis.get(keys.account_index(customer_id))
        if raw is None:
            raise NotFound(f"customer {customer_id!r} does not exist")
        return str(raw.decode())

    def owner_of_card(self, number: str) -> tuple[str, str]:
        """(reseller id, customer id) of a card; NotFound when no card has that number."""
        found = self.find_card_owner(number)
        if found is None:
            raise NotFound(f"card {number} does not exist")
        return found

    def find_card_owner(self, number: str) -> tuple[str, str] | None:
        raw = self.redis.get(keys.card_index(number))
        if raw is None:
            return None
        reseller_id, customer_id = raw.decode().split(":", 1)
        return reseller_id, customer_id
