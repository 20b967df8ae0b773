"""What one reseller may touch in the portal: its customers, cards, batches and the tariff
tables it may see (rater/tariffs/store.py `may_see`). Anything else is NotFound, shown as 404
whether it exists or not, so ids of other resellers cannot be told from unknown ones."""

from __future__ import annotations

from dataclasses import dataclass

from rater.accounts.api import Accounts
from rater.accounts.model import Card, Customer, Reseller
from rater.errors import NotFound
from rater.redis import keys
from rater.tariffs.store import TariffStore, may_see


@dataclass
class Scope:
    reseller: Reseller
    accounts: Accounts
    tariffs: TariffStore

    @property
    def reseller_id(self) -> str:
        return self.reseller.reseller_id

    def customer(self, customer_id: str) -> Customer:
        try:
            found = self.accounts.get_customer(customer_id)
        except NotFound:
            found = None
        if found is None or found.reseller_id != self.reseller_id:
            raise NotFound(f"no customer {customer_id!r}")
        return found

    def card(self, number: str) -> Card:
        owner = self.accounts.store.find_card_owner(number) if number.isdigit() else None
        if owner is None or owner[0] != self.reseller_id:
            raise NotFound(f"no card {number!r}")
        return self.accounts.get_card(number)

    def batch_owner(self, batch_id: str) -> str:
        """The customer id of one of the reseller's batches."""
        raw = self.accounts.redis.get(keys.batch_index(batch_id)) if batch_id else None
        reseller_id, _, customer_id = (raw or b"").decode().partition(":")
        if reseller_id != self.reseller_id:
            raise NotFound(f"no batch {batch_id!r}")
        return customer_id

    def may_see(self, name: str) -> bool:
        return may_see(
            name, self.tariffs.owner(name),
            reseller_id=self.reseller_id, buy_tariff=self.reseller.buy_tariff,
        )  # fmt: skip

    def tariff(self, name: str) -> str:
        """The name of a table the reseller may see (and that exists)."""
        if not name or not self.may_see(name) or not self.tariffs.infos(name):
            raise NotFound(f"no tariff table named {name!r}")
        return name

    def visible_tariffs(self) -> list[str]:
        return self.tariffs.visible(self.reseller_id, self.reseller.buy_tariff)
