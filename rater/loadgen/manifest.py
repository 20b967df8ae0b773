"""The manifest of a load-generator run: what was published and what it must cost.

Counts by kind (valid, answered, unanswered, rated, unrated, invalid by kind, duplicates) and
the expected sell price and buy cost totals per customer, card and reseller, in micro-units and
as decimal strings. The amounts come from `rater.reference` (see `pricing.py`); duplicates are
charged once (they are resends of a counted CDR), invalid records never, unrated calls count
zero and are listed by count. The pipeline's checks compare their results against this file.

Definitions (docs/DESIGN.md section 4):
- valid: distinct CDRs that decode and normalise (each stored once by the pipeline);
- unanswered: valid with billsec 0 (price 0, outcome `unanswered`);
- rated: valid, answered, with a sell and a buy match (debited);
- unrated: valid, answered, missing a sell or a buy match (outcome `unrated`, no debit);
- invalid: dead-lettered (the catalogue's kinds; `bad_number` includes any generated callee
  that `rater.switches.numbers` refuses);
- duplicates: resends of a valid CDR (same switch, cdr_id and bytes), never charged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from rater.loadgen.generate import Calls, Chunk
from rater.loadgen.invalid import InvalidKind
from rater.loadgen.population import Scenario
from rater.loadgen.pricing import BAD_NUMBER, RATED, UNANSWERED, UNRATED, Priced
from rater.money import from_micro

FORMAT_VERSION = 1


@dataclass
class Totals:
    """Expected amounts of one account (micro-units) and its call counts."""

    calls: int = 0  # valid CDRs (originals)
    rated: int = 0
    unrated: int = 0
    price_micro: int = 0  # sell price (what customers and cards are debited)
    cost_micro: int = 0  # buy cost (what the reseller is debited)

    def to_json(self, *, with_cost: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls,
            "rated": self.rated,
            "unrated": self.unrated,
            "price_micro": self.price_micro,
            "price": from_micro(self.price_micro),
        }
        if with_cost:
            out["cost_micro"] = self.cost_micro
            out["cost"] = from_micro(self.cost_micro)
            out["margin_micro"] = self.price_micro - self.cost_micro
            out["margin"] = from_micro(self.price_micro - self.cost_micro)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Totals:
        return cls(
            calls=int(data["calls"]),
            rated=int(data["rated"]),
            unrated=int(data["unrated"]),
            price_micro=int(data["price_micro"]),
            cost_micro=int(data.get("cost_micro", 0)),
        )


@dataclass
class Manifest:
    """One run: identity, counts, expected totals, and how fast it was published."""

    run_id: str
    scenario: str
    topic: str
    currency: str = "EUR"
    seed: int = 0
    created_at: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    published: int = 0
    valid: int = 0
    answered: int = 0
    unanswered: int = 0
    rated: int = 0
    unrated: int = 0
    #: dead-lettered records by catalogue kind
    invalid: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    price_micro: int = 0
    cost_micro: int = 0
    resellers: dict[str, Totals] = field(default_factory=dict)
    customers: dict[str, Totals] = field(default_factory=dict)
    cards: dict[str, Totals] = field(default_factory=dict)
    customer_reseller: dict[str, str] = field(default_factory=dict)
    card_customer: dict[str, str] = field(default_factory=dict)
    publish: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    reference_calls: int = 0

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "run_id": self.run_id,
            "scenario": self.scenario,
            "topic": self.topic,
            "currency": self.currency,
            "seed": self.seed,
            "created_at": self.created_at,
            "options": self.options,
            "counts": {
                "published": self.published,
                "valid": self.valid,
                "answered": self.answered,
                "unanswered": self.unanswered,
                "rated": self.rated,
                "unrated": self.unrated,
                "invalid": self.invalid_total,
                "invalid_by_kind": dict(sorted(self.invalid.items())),
                "duplicates": self.duplicates,
            },
            "totals": {
                "price_micro": self.price_micro,
                "price": from_micro(self.price_micro),
                "cost_micro": self.cost_micro,
                "cost": from_micro(self.cost_micro),
                "margin_micro": self.price_micro - self.cost_micro,
                "margin": from_micro(self.price_micro - self.cost_micro),
            },
            "resellers": {k: v.to_json(with_cost=True) for k, v in sorted(self.resellers.items())},
            "customers": {
                k: {"reseller": self.customer_reseller[k], **v.to_json(with_cost=False)}
                for k, v in sorted(self.customers.items())
            },
            "cards": {
                k: {"customer": self.card_customer[k], **v.to_json(with_cost=False)}
                for k, v in sorted(self.cards.items())
            },
            "publish": self.publish,
            "timings_s": self.timings,
            "reference": {
                "engine": "rater.reference, memoised (see rater/loadgen/pricing.py)",
                "calls": self.reference_calls,
            },
        }

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(self.dumps())
        tmp.replace(path)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        counts, totals = data["counts"], data["totals"]
        return cls(
            run_id=data["run_id"],
            scenario=data["scenario"],
            topic=data["topic"],
            currency=data.get("currency", "EUR"),
            seed=data.get("seed", 0),
            created_at=data.get("created_at", ""),
            options=data.get("options", {}),
            published=counts["published"],
            valid=counts["valid"],
            answered=counts["answered"],
            unanswered=counts["unanswered"],
            rated=counts["rated"],
            unrated=counts["unrated"],
            invalid=dict(counts["invalid_by_kind"]),
            duplicates=counts["duplicates"],
            price_micro=totals["price_micro"],
            cost_micro=totals["cost_micro"],
            resellers={k: Totals.from_json(v) for k, v in data["resellers"].items()},
            customers={k: Totals.from_json(v) for k, v in data["customers"].items()},
            cards={k: Totals.from_json(v) for k, v in data["cards"].items()},
            customer_reseller={k: v["reseller"] for k, v in data["customers"].items()},
            card_customer={k: v["customer"] for k, v in data["cards"].items()},
            publish=data.get("publish", {}),
            timings=data.get("timings_s", {}),
            reference_calls=data.get("reference", {}).get("calls", 0),
        )

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_json(orjson.loads(path.read_bytes()))


class ManifestBuilder:
    """Adds up chunks (counts) and their priced calls (amounts) into a Manifest."""

    def __init__(
        self, scenario: Scenario, cards: list[str], card_customer: npt.NDArray[np.int32]
    ) -> None:
        self.scenario = scenario
        self.cards = cards
        self.card_customer = card_customer
        n_customers = len(scenario.customers)
        self.customer_sums = np.zeros(
            (n_customers, 5), dtype=np.int64
        )  # calls rated unrated price cost
        self.card_sums = np.zeros((max(len(cards), 1), 5), dtype=np.int64)
        self.counts: Counter[str] = Counter()
        self.invalid: Counter[str] = Counter()

    def add(self, chunk: Chunk, priced: Priced) -> None:
        calls: Calls = chunk.calls
        self.counts["published"] += chunk.published
        self.counts["duplicates"] += chunk.duplicates
        for kind, n in chunk.invalid.items():
            self.invalid[kind.value] += n
        status = priced.status
        bad = int((status == BAD_NUMBER).sum())
        if bad:
            self.invalid[InvalidKind.BAD_NUMBER.value] += bad
        valid = status != BAD_NUMBER
        self.counts["valid"] += int(valid.sum())
        self.counts["unanswered"] += int((status == UNANSWERED).sum())
        self.counts["answered"] += int(((status == RATED) | (status == UNRATED)).sum())
        self.counts["rated"] += int((status == RATED).sum())
        self.counts["unrated"] += int((status == UNRATED).sum())
        columns = np.stack(
            [
                valid.astype(np.int64),
                (status == RATED).astype(np.int64),
                (status == UNRATED).astype(np.int64),
                priced.price,
                priced.cost,
            ],
            axis=1,
        )
        # np.add.at on int64 is exact (np.bincount would sum in float64)
        np.add.at(self.customer_sums, calls.customer.astype(np.int64), columns)
        on_card = calls.card >= 0
        if on_card.any():
            np.add.at(self.card_sums, calls.card[on_card].astype(np.int64), columns[on_card])

    def build(
        self, *, run_id: str, topic: str, seed: int, created_at: str, options: dict[str, Any]
    ) -> Manifest:
        scenario = self.scenario
        manifest = Manifest(
            run_id=run_id,
            scenario=scenario.name,
            topic=topic,
            currency=scenario.currency,
            seed=seed,
            created_at=created_at,
            options=options,
            published=self.counts["published"],
            valid=self.counts["valid"],
            answered=self.counts["answered"],
            unanswered=self.counts["unanswered"],
            rated=self.counts["rated"],
            unrated=self.counts["unrated"],
            invalid=dict(self.invalid),
            duplicates=self.counts["duplicates"],
        )
        for plan in scenario.resellers:
            manifest.resellers[plan.reseller_id] = Totals()
        for i, customer in enumerate(scenario.customers):
            calls, rated, unrated, price, cost = (int(x) for x in self.customer_sums[i])
            manifest.customers[customer.customer_id] = Totals(calls, rated, unrated, price, 0)
            manifest.customer_reseller[customer.customer_id] = customer.reseller_id
            reseller = manifest.resellers[customer.reseller_id]
            reseller.calls += calls
            reseller.rated += rated
            reseller.unrated += unrated
            reseller.price_micro += price
            reseller.cost_micro += cost
            manifest.price_micro += price
            manifest.cost_micro += cost
        for j, number in enumerate(self.cards):
            calls, rated, unrated, price, _cost = (int(x) for x in self.card_sums[j])
            manifest.cards[number] = Totals(calls, rated, unrated, price, 0)
            manifest.card_customer[number] = scenario.customers[
                int(self.card_customer[j])
            ].customer_id
        return manifest
