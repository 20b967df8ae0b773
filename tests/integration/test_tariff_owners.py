"""Tariff owners (docs/DESIGN.md section 1, "Tariff owners"): a reseller sees its own tables
and its buy table, never another reseller's; the account API and the CLI assign a customer
only such a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from rater.accounts.api import Accounts
from rater.errors import AccountError, TariffError
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import OPERATOR, TariffStore, may_see

pytestmark = pytest.mark.integration


def _table(name: str) -> TariffTable:
    return TariffTable(name=name, steps=Steps(60, 60), rows=(TariffRow("31", "NL", 10_000),))


@pytest.fixture
def books(redis: RedisLike, settings: Settings) -> tuple[Accounts, TariffStore]:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(_table("buy A"))
    store.save(_table("buy B"))
    store.save(_table("operator retail"))
    accounts = Accounts(settings, redis, actor="test")
    accounts.create_reseller("RA", "A", credit="100", buy_tariff="buy A")
    accounts.create_reseller("RB", "B", credit="100", buy_tariff="buy B")
    store.save(_table("cards A"), owner="RA")
    store.save(_table("cards B"), owner="RB")
    return accounts, store


def test_owners_and_what_each_reseller_sees(books: tuple[Accounts, TariffStore]) -> None:
    _, store = books
    assert store.owner("cards A") == "RA"
    assert store.owner("buy A") == OPERATOR
    assert store.owner("no such table") == OPERATOR
    assert store.visible("RA", "buy A") == ["buy A", "cards A"]
    assert store.visible("RB", "buy B") == ["buy B", "cards B"]
    assert not may_see("cards B", "RB", reseller_id="RA", buy_tariff="buy A")
    # an operator's table is not visible unless it is the reseller's buy table
    assert not may_see("operator retail", OPERATOR, reseller_id="RA", buy_tariff="buy A")


def test_versions_only_by_the_owner(books: tuple[Accounts, TariffStore]) -> None:
    _, store = books
    assert store.save(_table("cards A"), owner="RA").version == 2
    assert store.save(_table("cards A")).version == 3  # the operator may
    with pytest.raises(TariffError, match="not yours to change") as refused:
        store.save(_table("cards A"), owner="RB")
    assert "RA" not in str(refused.value)  # who owns it is not told
    with pytest.raises(TariffError, match="not yours"):
        store.save(_table("buy A"), owner="RA")
    assert store.owner("cards A") == "RA"
    store.delete("cards A")
    assert store.owner("cards A") == OPERATOR


def test_customers_get_only_tables_their_reseller_sees(
    books: tuple[Accounts, TariffStore],
) -> None:
    accounts, _ = books
    assert accounts.create_customer("a1", "x", reseller_id="RA", tariff="cards A").tariff == (
        "cards A"
    )
    assert accounts.create_customer("a2", "x", reseller_id="RA", tariff="buy A").tariff == "buy A"
    for other in ("cards B", "buy B", "operator retail"):
        with pytest.raises(AccountError, match="not one of reseller 'RA'"):
            accounts.create_customer("a3", "x", reseller_id="RA", tariff=other)
    assert not accounts.redis.exists(keys.account_index("a3"))
    # a buy table is the operator's
    with pytest.raises(AccountError, match="a buy table is one of the operator's"):
        accounts.create_reseller("RC", "C", credit="1", buy_tariff="cards A")


def test_cli_owner_option(
    books: tuple[Accounts, TariffStore], settings: Settings, tmp_path: Path
) -> None:
    from test_admin_cli_helpers import Cli

    cli = Cli(settings, tmp_path)
    cli("tariff", "derive", "--base", "buy A", "--markup", "40", "--name", "derived A",
        "--owner", "RA")  # fmt: skip
    _, store = books
    assert store.owner("derived A") == "RA"
    missing = cli("tariff", "derive", "--base", "buy A", "--markup", "40", "--name", "d2",
                  "--owner", "nobody", code=1)  # fmt: skip
    assert "reseller 'nobody' does not exist" in missing.err
    listed = cli("tariff", "list").out
    assert any("derived A" in line and "RA" in line for line in listed.splitlines())
    refused = cli("customer", "create", "b9", "--name", "x", "--reseller", "RB", "--tariff",
                  "derived A", code=1)  # fmt: skip
    assert "not one of reseller 'RB'" in refused.err
