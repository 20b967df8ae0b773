"""Refusals by caller number (ANI) do not tell registered numbers apart (docs/DESIGN.md
section 1, "Calls and PINs"): an unregistered number, a registered card under its reseller's
ANI threshold and a card of a reseller the asker does not act for all get one answer, field
for field, while the metric rater_ani_refusals_total keeps the true cause."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer, Reason
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

TABLE = TariffTable(
    name="ani-retail", decimals=4, steps=Steps(60, 60), rows=(TariffRow("31", "NL", rate=100_000),)
)
CALLEE = "31612345678"


def _refusals(why: str) -> float:
    return REGISTRY.get_sample_value("rater_ani_refusals_total", {"why": why}) or 0.0


@pytest.fixture
def world(settings: Settings, redis: Any) -> tuple[Accounts, Authorizer, str]:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(TABLE)
    accounts = Accounts(settings, redis)
    for reseller in ("RA", "RB"):
        accounts.create_reseller(reseller, "Reseller", credit="100", buy_tariff="ani-retail")
    accounts.create_customer("CA", "SIP", reseller_id="RA", tariff="ani-retail", balance="20")
    accounts.create_customer("CB", "SIP", reseller_id="RB", tariff="ani-retail", balance="20")
    low = accounts.create_cards("CA", count=1, value="10").cards[0].number
    other = accounts.create_cards("CB", count=1, value="10").cards[0].number
    accounts.add_ani(low, "+31 6 5555 0001")
    accounts.add_ani(other, "+31 6 5555 0002")
    accounts.adjust("card", low, "-9.50", "spent elsewhere")  # 0.50: under the 1.00 threshold
    return accounts, Authorizer(settings, redis, accounts=accounts), low


def test_unknown_under_threshold_and_out_of_scope_answer_alike(
    world: tuple[Accounts, Authorizer, str],
) -> None:
    _, authorizer, _ = world
    before = {why: _refusals(why) for why in ("unknown", "under_threshold", "out_of_scope")}
    unknown = authorizer.authorize(ani="+31655559999", callee=CALLEE)
    below = authorizer.authorize(ani="+31655550001", callee=CALLEE)
    elsewhere = authorizer.authorize(ani="+31655550002", callee=CALLEE, scope={"RA"}.__contains__)
    assert not unknown.allowed
    assert unknown.reason is Reason.ANI_NOT_ACCEPTED
    assert below.as_dict() == unknown.as_dict()
    assert elsewhere.as_dict() == unknown.as_dict()
    assert unknown.card_number == ""  # never the card a number belongs to
    for why, count in before.items():
        assert _refusals(why) == count + 1, why


def test_a_card_turned_off_after_the_index_was_read_answers_alike(
    world: tuple[Accounts, Authorizer, str], redis: Any
) -> None:
    """The index says the card answers, its hash says ANI is off (a debit in between)."""
    _, authorizer, low = world
    redis.set(keys.ani_index("31655550001"), low)
    unknown = authorizer.authorize(ani="+31655559999", callee=CALLEE)
    raced = authorizer.authorize(ani="+31655550001", callee=CALLEE)
    assert raced.as_dict() == unknown.as_dict()
