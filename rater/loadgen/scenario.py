"""Setting up (or finding) the accounts and tariffs a load-generator run calls from.

`setup_scenario` creates, through the real APIs, what a small VoIP reseller business looks like:
- a wholesale (buy) deck of about 29,000 prefixes from phonenumbers' data (or a given table);
- per reseller a retail sell table (markup over buy, 30/6 billing) and a calling-card table
  (+40% markup, 60/60 billing: the seed's tip 3);
- resellers with enough credit to cover what they issue (the coverage rule), SIP customers with
  an opening balance and a few normal cards (spending limits), and per reseller one
  "Calling card user batch 1" customer holding disposable cards (funded by the batch);
- the switches' numbering settings (`rater switch`), so the pipeline normalises their numbers.

The scenario is recorded in Redis (`loadgen:scenario:NAME`), so a later run reuses it.
`scenario_from_accounts` builds one from accounts that already exist (made by someone else).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from rater.accounts.api import Accounts
from rater.accounts.model import CustomerKind
from rater.errors import ConfigError, NotFound
from rater.loadgen.numbers import DEFAULT_SWITCHES, SwitchProfile
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.loadgen.prefixes import wholesale_table
from rater.logs import get_logger
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.derive import derive
from rater.tariffs.model import Steps, TariffTable
from rater.tariffs.store import OPERATOR, TariffStore

log = get_logger(__name__)

#: opening balance of each SIP customer, and face values of cards
SIP_BALANCE = Decimal("1000")
NORMAL_CARD_VALUE = Decimal("20")
DISPOSABLE_CARD_VALUE = Decimal("10")
#: share of a reseller's cards that are disposable (the rest are limits on SIP accounts)
DISPOSABLE_SHARE = 0.5


scenario_key = keys.loadgen_scenario


def load_scenario(settings: Settings, name: str, redis: RedisLike | None = None) -> Scenario | None:
    """The scenario recorded under `name`, or None."""
    client = redis if redis is not None else redis_client.connect(settings)
    raw: Any = client.get(scenario_key(name))
    return Scenario.from_json(orjson.loads(raw)) if raw else None


def save_scenario(settings: Settings, scenario: Scenario, redis: RedisLike | None = None) -> None:
    client = redis if redis is not None else redis_client.connect(settings)
    client.set(scenario_key(scenario.name), orjson.dumps(scenario.to_json()))


def setup_scenario(
    settings: Settings,
    *,
    name: str = "lg",
    resellers: int = 3,
    customers: int = 200,
    cards: int = 500,
    buy_tariff: TariffTable | str | None = None,
    switches: Sequence[SwitchProfile] = DEFAULT_SWITCHES,
    seed: int = 7,
    currency: str = "EUR",
    reuse: bool = True,
    redis: RedisLike | None = None,
    accounts: Accounts | None = None,
) -> Scenario:
    """Create the scenario's tariffs, switches and accounts (or return the recorded one).

    `buy_tariff`: a stored table's name, a table to store (under its own name unless one with
    that name exists), or None for the phonenumbers deck `NAME-wholesale`. With `reuse`, a
    scenario already recorded under `name` is returned as it is.
    """
    if resellers < 1 or customers < resellers:
        raise ConfigError("a scenario needs at least one reseller and one customer per reseller")
    if cards < 0:
        raise ConfigError("the number of cards cannot be negative")
    client = redis if redis is not None else redis_client.connect(settings)
    if reuse:
        found = load_scenario(settings, name, client)
        if found is not None:
            log.info("scenario reused", scenario=name, customers=len(found.customers))
            return found
    api = accounts if accounts is not None else Accounts(settings, client)
    store = TariffStore(client, settings)

    base = _buy_table(store, name, buy_tariff, seed=seed, currency=currency)
    registry = SwitchRegistry(client)
    for profile in switches:
        registry.set(profile.settings())

    reseller_plans: list[ResellerPlan] = []
    customer_plans: list[CustomerPlan] = []
    per_reseller = _spread(customers, resellers)
    cards_per_reseller = _spread(cards, resellers)
    for r in range(resellers):
        rid = f"{name}-r{r + 1}"
        n_cards = cards_per_reseller[r]
        n_disposable = round(n_cards * DISPOSABLE_SHARE) if n_cards else 0
        n_normal = n_cards - n_disposable
        n_sip = per_reseller[r] - (1 if n_disposable else 0)
        if n_sip < 1:
            raise ConfigError(f"reseller {rid}: too few customers for its cards; raise --customers")
        credit = n_sip * SIP_BALANCE + n_disposable * DISPOSABLE_CARD_VALUE
        api.create_reseller(
            rid,
            f"Load reseller {r + 1}",
            credit=str(credit * Decimal("1.1")),  # 10% headroom for top-ups in tests
            buy_tariff=base.name,
            currency=currency,
        )
        reseller_plans.append(ResellerPlan(rid, base.name))
        # the reseller's own sell tables (a customer gets only those or its buy table)
        retail = _stored(
            store,
            derive(base, name=f"{rid}-retail", markup=Decimal(20 + 10 * r), steps=Steps(30, 6)),
            rid,
        )
        card_table = _stored(
            store, derive(base, name=f"{rid}-cards", markup=Decimal(40), steps=Steps(60, 60)), rid
        )
        sip_ids = [f"{rid}-c{j + 1:04d}" for j in range(n_sip)]
        for cid in sip_ids:
            api.create_customer(
                cid,
                f"SIP customer {cid}",
                reseller_id=rid,
                tariff=retail.name,
                balance=str(SIP_BALANCE),
            )
        # normal cards: a few per customer on the first SIP accounts (families, small shops)
        normal: dict[str, list[str]] = {cid: [] for cid in sip_ids}
        holders = sip_ids[: max(1, min(len(sip_ids), (n_normal + 4) // 5))]
        for k, cid in enumerate(holders):
            count = len(range(k, n_normal, len(holders)))
            if count:
                batch = api.create_cards(cid, count=count, value=str(NORMAL_CARD_VALUE))
                normal[cid] = [c.number for c in batch.cards]
        for cid in sip_ids:
            customer_plans.append(CustomerPlan(cid, rid, retail.name, tuple(normal[cid])))
        if n_disposable:
            bid = f"{rid}-batch1"
            api.create_customer(
                bid,
                "Calling card user batch 1",
                reseller_id=rid,
                tariff=card_table.name,
                kind=CustomerKind.CARD_BATCH,
            )
            batch = api.create_cards(
                bid, count=n_disposable, value=str(DISPOSABLE_CARD_VALUE), disposable=True
            )
            customer_plans.append(
                CustomerPlan(
                    bid, rid, card_table.name, tuple(c.number for c in batch.cards), disposable=True
                )
            )
    scenario = Scenario(
        name=name,
        resellers=tuple(reseller_plans),
        customers=tuple(customer_plans),
        switches=tuple(switches),
        currency=currency,
    )
    save_scenario(settings, scenario, client)
    log.info(
        "scenario created", scenario=name, resellers=resellers, customers=len(customer_plans),
        cards=scenario.card_count, buy_tariff=base.name,
    )  # fmt: skip
    return scenario


def scenario_from_accounts(
    settings: Settings,
    *,
    name: str = "existing",
    reseller_ids: Sequence[str] | None = None,
    switches: Sequence[SwitchProfile] = DEFAULT_SWITCHES,
    accounts: Accounts | None = None,
) -> Scenario:
    """A scenario over accounts that already exist (all resellers, or the given ones).

    The switches' settings are written to the switch registry as for a new scenario.
    """
    api = accounts if accounts is not None else Accounts(settings)
    found = api.list_resellers()
    if reseller_ids:
        wanted = set(reseller_ids)
        found = [r for r in found if r.reseller_id in wanted]
        missing = wanted - {r.reseller_id for r in found}
        if missing:
            raise NotFound(f"no reseller(s) {', '.join(sorted(missing))}")
    if not found:
        raise NotFound("no resellers exist: create some, or let the load generator set them up")
    plans = [ResellerPlan(r.reseller_id, r.buy_tariff) for r in found]
    customer_plans: list[CustomerPlan] = []
    for reseller in found:
        for customer in api.list_customers(reseller.reseller_id):
            numbers = tuple(c.number for c in api.list_cards(customer.customer_id) if not c.blocked)
            disposable = customer.kind is CustomerKind.CARD_BATCH
            if disposable and not numbers:
                continue  # a card batch without cards makes no calls
            customer_plans.append(
                CustomerPlan(
                    customer.customer_id, reseller.reseller_id, customer.tariff, numbers, disposable
                )
            )
    registry = SwitchRegistry(api.redis)
    for profile in switches:
        registry.set(profile.settings())
    return Scenario(
        name=name,
        resellers=tuple(plans),
        customers=tuple(customer_plans),
        switches=tuple(switches),
        currency=found[0].currency,
    )


def load_tariffs(
    settings: Settings, scenario: Scenario, redis: RedisLike | None = None
) -> dict[str, list[TariffTable]]:
    """Every version of every tariff the scenario rates with, from the tariff store."""
    client = redis if redis is not None else redis_client.connect(settings)
    store = TariffStore(client, settings, clickhouse=False)
    tables: dict[str, list[TariffTable]] = {}
    for tariff in scenario.tariff_names():
        versions = store.versions(tariff)
        if not versions:
            raise NotFound(f"tariff {tariff!r} used by scenario {scenario.name!r} does not exist")
        tables[tariff] = versions
    return tables


def _buy_table(
    store: TariffStore, name: str, given: TariffTable | str | None, *, seed: int, currency: str
) -> TariffTable:
    if isinstance(given, str):
        return store.get(given)
    table = (
        given
        if given is not None
        else wholesale_table(f"{name}-wholesale", seed=seed, currency=currency)
    )
    return _stored(store, table, OPERATOR)


def _stored(store: TariffStore, table: TariffTable, owner: str) -> TariffTable:
    """The latest stored version of `table.name`, saving `table` (owned by reseller `owner`)
    first if there is none."""
    if store.infos(table.name):
        return store.get(table.name)
    return store.save(table, owner=owner)


def _spread(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal whole numbers."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


__all__ = [
    "load_scenario",
    "load_tariffs",
    "scenario_from_accounts",
    "setup_scenario",
]
