"""Who calls: resellers, customers, cards and switches of a load-generator scenario.

A plain description (ids and tariff names), free of Redis, so generation and the manifest can
be tested without services. `rater.loadgen.scenario` creates these accounts through the account
API, or reads them back, and returns a `Scenario`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rater.loadgen.numbers import DEFAULT_SWITCHES, SwitchProfile


@dataclass(frozen=True)
class ResellerPlan:
    """A reseller and the wholesale (buy) tariff its costs are computed with."""

    reseller_id: str
    buy_tariff: str


@dataclass(frozen=True)
class CustomerPlan:
    """A SIP customer (or a card batch's customer), its sell tariff and its cards."""

    customer_id: str
    reseller_id: str
    tariff: str
    cards: tuple[str, ...] = ()
    disposable: bool = False


@dataclass(frozen=True)
class Scenario:
    """Everything the generator needs to know about accounts, tariffs and switches."""

    name: str
    resellers: tuple[ResellerPlan, ...]
    customers: tuple[CustomerPlan, ...]
    switches: tuple[SwitchProfile, ...] = DEFAULT_SWITCHES
    currency: str = "EUR"
    #: share of calls made with a calling card, when the scenario has cards
    card_share: float = 0.35
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {r.reseller_id for r in self.resellers}
        for customer in self.customers:
            if customer.reseller_id not in known:
                raise ValueError(
                    f"customer {customer.customer_id}: reseller {customer.reseller_id} "
                    "is not in the scenario"
                )
        if not self.customers:
            raise ValueError(f"scenario {self.name}: no customers to make calls")
        if not self.switches:
            raise ValueError(f"scenario {self.name}: no switches")

    @property
    def card_count(self) -> int:
        return sum(len(c.cards) for c in self.customers)

    def reseller(self, reseller_id: str) -> ResellerPlan:
        for plan in self.resellers:
            if plan.reseller_id == reseller_id:
                return plan
        raise KeyError(reseller_id)

    def tariff_names(self) -> list[str]:
        """Every sell and buy tariff the scenario rates with, sorted."""
        names = {c.tariff for c in self.customers} | {r.buy_tariff for r in self.resellers}
        return sorted(names)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scenario:
        return cls(
            name=data["name"],
            resellers=tuple(ResellerPlan(**r) for r in data["resellers"]),
            customers=tuple(
                CustomerPlan(**{**c, "cards": tuple(c.get("cards", ()))}) for c in data["customers"]
            ),
            switches=tuple(SwitchProfile(**s) for s in data.get("switches", ()))
            or DEFAULT_SWITCHES,
            currency=data.get("currency", "EUR"),
            card_share=data.get("card_share", 0.35),
            extra=dict(data.get("extra", {})),
        )
