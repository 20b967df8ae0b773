"""Re-rating against the real Redis and ClickHouse (the 18.16 server and chDB): differences
applied once, cancelling + new rows, audit trail, idempotent re-runs, crash recovery, and
unrated CDRs rated once their account exists."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from analytics_support import cdr, executor

from rater.accounts.api import Accounts
from rater.analytics.check import check
from rater.billing import rerate as rerate_module
from rater.billing.audit import history
from rater.billing.rerate import Rerater, RerateRequest
from rater.billing.rows import insert_rows, select_live
from rater.clickhouse.executor import Executor
from rater.errors import RerateError
from rater.money import Rounding
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration
__all__ = ["executor"]

DAY = date(2026, 11, 2)
WHEN = datetime(2026, 11, 2, 10, 0)
CARD_VALUE = 5_000_000


def table(name: str, mobile: int, fixed: int) -> TariffTable:
    return TariffTable(
        name=name,
        decimals=4,
        rounding=Rounding.UP,
        steps=Steps(60, 60),
        rows=(
            TariffRow("31", "Netherlands", rate=fixed),
            TariffRow("316", "Netherlands Mobile", rate=mobile),
        ),
    )


@pytest.fixture
def world(settings: Settings, redis: Any, executor: Executor) -> dict[str, Any]:
    """retail@1 (mobile 0.20/min) and wholesale@1 (0.12/min); reseller r1, customer c1 with a
    card; two CDRs stored as the pipeline rated them with those versions."""
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(table("wholesale", 120_000, 50_000))
    accounts = Accounts(settings, redis)
    accounts.create_reseller("r1", "Reseller", credit="100", buy_tariff="wholesale")
    store.save(table("retail", 200_000, 100_000), owner="r1")
    accounts.create_customer("c1", "Customer", reseller_id="r1", tariff="retail", balance="50")
    card = accounts.create_cards("c1", count=1, value="5", batch_id="b1").cards[0].number
    rows = [
        # 90 s on 60/60 = 120 billable s: 0.40 sell, 0.24 buy
        cdr(1, when=WHEN, billsec=90, billable=120, price=400_000, cost=240_000, card=card),
        cdr(2, when=WHEN, billsec=0),
        cdr(
            3,
            when=WHEN,
            billsec=30,
            billable=60,
            price=100_000,
            cost=50_000,
            number="31201234567",
            prefix="31",
            destination="Netherlands",
            callee="0201234567",
        ),
    ]
    insert_rows(executor, rows)
    return {"store": store, "accounts": accounts, "card": card, "redis": redis}


def balances(world: dict[str, Any]) -> tuple[int, int, int]:
    accounts: Accounts = world["accounts"]
    return (
        accounts.get_reseller("r1").credit,
        accounts.get_customer("c1").balance,
        accounts.get_card(world["card"]).balance,
    )


def table_state(ex: Executor) -> list[tuple[Any, ...]]:
    return sorted(
        ex.rows("SELECT switch, cdr_id, revision, sign, price, cost, sell_tariff FROM rated_cdrs")
    )


def audit_count(ex: Executor) -> int:
    return int(ex.rows("SELECT count() FROM rerate_audit")[0][0])


def test_rerate_applies_the_difference_once(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    # a corrected retail version in force since before the calls: mobile 0.30/min
    world["store"].save(
        table("retail", 300_000, 100_000), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    before = balances(world)
    rerater = Rerater(settings, world["redis"], executor)
    request = RerateRequest(DAY, DAY, customer="c1", tariff="retail", reason="price fix")
    summary = rerater.run(request)
    assert (summary.examined, summary.changed, summary.unchanged) == (2, 1, 1)
    assert summary.price_delta == 200_000  # 0.40 -> 0.60
    assert summary.cost_delta == 0
    reseller, customer, card = balances(world)
    assert reseller == before[0]
    assert customer == before[1] - 200_000
    assert card == before[2] - 200_000

    live = {r["cdr_id"]: r for r in select_live(executor, DAY, DAY)}
    assert live["cdr-1"]["revision"] == 1
    assert live["cdr-1"]["price"] == 600_000
    assert live["cdr-1"]["margin"] == 360_000
    assert live["cdr-1"]["sell_tariff"] == "retail@2"
    assert live["cdr-3"]["revision"] == 0  # the fixed-line price did not change
    cancel = executor.rows(
        "SELECT price, revision FROM rated_cdrs WHERE cdr_id = 'cdr-1' AND sign = -1"
    )
    assert cancel == [(400_000, 0)]
    assert check(executor) == []
    trail = history(executor, "sw1", "cdr-1")
    assert len(trail) == 1
    assert (trail[0]["old_price"], trail[0]["new_price"]) == (400_000, 600_000)
    assert (trail[0]["old_sell_tariff"], trail[0]["new_sell_tariff"]) == ("retail@1", "retail@2")
    assert trail[0]["reason"] == "price fix"
    assert trail[0]["actor"]

    # the same re-rate again: nothing changes
    state, after_first = table_state(executor), balances(world)
    again = rerater.run(request)
    assert (again.changed, again.unchanged, again.corrections_applied) == (0, 2, 0)
    assert table_state(executor) == state
    assert balances(world) == after_first
    assert audit_count(executor) == 1

    # an explicit older version re-rates back, as a new revision
    back = rerater.run(RerateRequest(DAY, DAY, customer="c1", tariff="retail", version=1))
    assert back.changed == 1
    assert balances(world) == before
    live = {r["cdr_id"]: r for r in select_live(executor, DAY, DAY)}
    assert (live["cdr-1"]["revision"], live["cdr-1"]["price"]) == (2, 400_000)
    assert check(executor) == []


def test_reseller_cost_is_rerated_with_the_buy_tariff(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    world["store"].save(table("wholesale2", 150_000, 50_000))
    before = balances(world)
    summary = Rerater(settings, world["redis"], executor).run(
        RerateRequest(DAY, DAY, buy_tariff="wholesale2")
    )
    assert summary.changed == 1
    assert summary.cost_delta == 300_000 - 240_000
    assert balances(world) == (before[0] - 60_000, before[1], before[2])
    live = {r["cdr_id"]: r for r in select_live(executor, DAY, DAY)}
    assert live["cdr-1"]["buy_tariff"] == "wholesale2@1"
    assert live["cdr-1"]["margin"] == 100_000


def test_interrupted_rerate_is_completed_by_running_it_again(
    settings: Settings, executor: Executor, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    world["store"].save(
        table("retail", 300_000, 150_000), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    before = balances(world)
    state_before = table_state(executor)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("killed between the balance corrections and the rows")

    monkeypatch.setattr(rerate_module, "insert_rows", crash)
    rerater = Rerater(settings, world["redis"], executor)
    with pytest.raises(RuntimeError):
        rerater.run(RerateRequest(DAY, DAY, tariff="retail"))
    monkeypatch.undo()
    # balances were corrected, rows not yet written; the plans wait in Redis
    assert world["redis"].hlen(f"rerate:plans:{DAY.isoformat()}") == 2
    assert balances(world)[1] == before[1] - 250_000  # 0.20 on cdr-1, 0.05 on cdr-3
    assert table_state(executor) == state_before

    # the re-run even asks for another version: the interrupted plan is completed first
    resumed = rerater.run(RerateRequest(DAY, DAY, tariff="retail", version=1))
    assert resumed.resumed == 2
    assert resumed.corrections_applied == 0
    assert balances(world)[1] == before[1] - 250_000
    live = {r["cdr_id"]: r for r in select_live(executor, DAY, DAY)}
    assert (live["cdr-1"]["price"], live["cdr-3"]["price"]) == (600_000, 150_000)
    assert audit_count(executor) == 2
    assert check(executor) == []
    # and the version asked for is applied by the next run, as a new revision
    rerater.run(RerateRequest(DAY, DAY, tariff="retail", version=1))
    assert balances(world) == before
    assert world["redis"].hlen(f"rerate:plans:{DAY.isoformat()}") == 0


def test_unrated_cdrs_are_rated_once_their_account_exists(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    lost = cdr(10, when=WHEN, customer="", reseller="", outcome="unrated", billsec=61,
               account="c9", reason="unknown account 'c9'")  # fmt: skip
    insert_rows(executor, [lost])
    rerater = Rerater(settings, world["redis"], executor)
    first = rerater.run(RerateRequest(DAY, DAY, unrated=True))
    assert first.changed == 0
    assert first.left == {"unknown account: 'c9'": 1}

    accounts: Accounts = world["accounts"]
    accounts.create_customer("c9", "Late", reseller_id="r1", tariff="retail", balance="10")
    reseller_before = accounts.get_reseller("r1").credit
    second = rerater.run(RerateRequest(DAY, DAY, unrated=True, reason="account created"))
    assert second.changed == 1
    # 61 s on 60/60 = 120 s: 0.40 sell, 0.24 buy; charged in full as a correction
    assert accounts.get_customer("c9").balance == 10_000_000 - 400_000
    assert accounts.get_reseller("r1").credit == reseller_before - 240_000
    live = [r for r in select_live(executor, DAY, DAY) if r["cdr_id"] == "cdr-10"]
    assert len(live) == 1
    row = live[0]
    assert (row["outcome"], row["customer"], row["reseller"], row["revision"]) == (
        "rated", "c9", "r1", 1,
    )  # fmt: skip
    assert (row["price"], row["cost"], row["destination"]) == (
        400_000,
        240_000,
        "Netherlands Mobile",
    )
    assert row["reason"] == ""
    assert check(executor) == []

    third = rerater.run(RerateRequest(DAY, DAY, unrated=True))
    assert (third.examined, third.changed) == (0, 0)
    assert accounts.get_customer("c9").balance == 10_000_000 - 400_000
    assert history(executor, "sw1", "cdr-10")[0]["mode"] == "unrated"


def test_unrated_card_call_charges_the_card_once_rated(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    """The pipeline keeps the CDR's own card on an unrated row (unknown account): re-rating it
    later debits the card as well as its customer."""
    accounts: Accounts = world["accounts"]
    card = world["card"]
    card_before = accounts.get_card(card).balance
    customer_before = accounts.get_customer("c1").balance
    lost = cdr(11, when=WHEN, customer="", reseller="", outcome="unrated", billsec=61,
               account="c1", card=card, reason="unknown account 'c1'")  # fmt: skip
    insert_rows(executor, [lost])
    rerater = Rerater(settings, world["redis"], executor)
    done = rerater.run(RerateRequest(DAY, DAY, unrated=True, reason="account restored"))
    assert done.changed == 1
    # 61 s on 60/60 = 120 s at 0.20/min: 0.40, from the card and from its customer
    assert accounts.get_card(card).balance == card_before - 400_000
    assert accounts.get_customer("c1").balance == customer_before - 400_000
    live = [r for r in select_live(executor, DAY, DAY) if r["cdr_id"] == "cdr-11"]
    assert [(r["outcome"], r["card"], r["price"]) for r in live] == [("rated", card, 400_000)]


def test_dry_run_changes_nothing(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    world["store"].save(
        table("retail", 300_000, 100_000), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    before, state = balances(world), table_state(executor)
    summary = Rerater(settings, world["redis"], executor).run(
        RerateRequest(DAY, DAY, tariff="retail", dry_run=True)
    )
    assert summary.changed == 1
    assert summary.changes[0][1]["price"] == 600_000
    assert balances(world) == before
    assert table_state(executor) == state
    assert audit_count(executor) == 0


def test_rerate_and_check_commands(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    from click.testing import CliRunner

    from rater.cli.main import cli
    from rater.clickhouse.executor import DriverExecutor

    if not isinstance(executor, DriverExecutor):
        pytest.skip("the CLI talks to the configured server, not to chDB")
    ex = executor
    world["store"].save(
        table("retail", 300_000, 100_000), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    env = {
        "RATER_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "RATER_CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "RATER_REDIS_URL": settings.redis_url,
    }
    runner = CliRunner()
    args = ["rerate", "--from", "2026-11-02", "--to", "2026-11-02", "--tariff", "retail",
            "--reason", "deck fix", "--actor", "ana"]  # fmt: skip
    dry = runner.invoke(cli, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "1 would change" in dry.output
    assert "price 0.40->0.60" in dry.output
    first = runner.invoke(cli, args, env=env)
    assert first.exit_code == 0, first.output
    assert "1 changed" in first.output
    assert "price difference 0.20" in first.output
    second = runner.invoke(cli, args, env=env)
    assert "0 changed, 2 already right" in second.output
    checked = runner.invoke(cli, ["db", "check"], env=env)
    assert checked.exit_code == 0, checked.output
    ex.insert("daily_summary", ("day", "reseller", "calls"), [(DAY, "zz", 1)])
    broken = runner.invoke(cli, ["db", "check"], env=env)
    assert broken.exit_code == 1
    assert "reseller=zz" in broken.output
    fixed = runner.invoke(cli, ["db", "rebuild-summaries", "--day", "2026-11-02"], env=env)
    assert fixed.exit_code == 0, fixed.output
    assert runner.invoke(cli, ["db", "check"], env=env).exit_code == 0

    # --unrated needs no dates: it finds the days holding unrated CDRs
    lost = cdr(40, when=WHEN, customer="", reseller="", outcome="unrated", billsec=60,
               account="c1", reason="unknown account 'c1'")  # fmt: skip
    insert_rows(ex, [lost])
    unrated = runner.invoke(cli, ["rerate", "--unrated"], env=env)
    assert unrated.exit_code == 0, unrated.output
    assert "1 changed" in unrated.output
    missing = runner.invoke(cli, ["rerate", "--tariff", "retail"], env=env)
    assert missing.exit_code == 2
    assert "--from and --to are required" in missing.output


def test_a_tariff_without_the_destination_leaves_the_cdr_as_it_was(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    fixed_only = TariffTable(name="fixed", rows=(TariffRow("31", "Netherlands", rate=90_000),))
    world["store"].save(fixed_only)
    before, state = balances(world), table_state(executor)
    summary = Rerater(settings, world["redis"], executor).run(
        RerateRequest(DAY, DAY, tariff="fixed", reseller="r1")
    )
    # cdr-1 (mobile) matches the shorter prefix 31 now: re-priced, not refused
    assert summary.changed == 2
    live = {r["cdr_id"]: r for r in select_live(executor, DAY, DAY)}
    assert (live["cdr-1"]["prefix"], live["cdr-1"]["destination"]) == ("31", "Netherlands")
    assert balances(world) != before
    assert table_state(executor) != state

    uk_only = TariffTable(name="uk", rows=(TariffRow("44", "United Kingdom", rate=90_000),))
    world["store"].save(uk_only)
    left = Rerater(settings, world["redis"], executor).run(RerateRequest(DAY, DAY, tariff="uk"))
    assert left.changed == 0
    assert left.left == {"no sell match: uk": 2}
    with pytest.raises(RerateError, match="no version 7"):
        Rerater(settings, world["redis"], executor).run(
            RerateRequest(DAY, DAY, tariff="uk", version=7)
        )
    dollars = TariffTable(name="usd", currency="USD", rows=(TariffRow("31", "NL", rate=1),))
    world["store"].save(dollars)
    with pytest.raises(RerateError, match="is in USD, the account in EUR"):
        Rerater(settings, world["redis"], executor).run(RerateRequest(DAY, DAY, tariff="usd"))


def test_unrated_rerate_of_another_resellers_account_is_left(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    lost = cdr(20, when=WHEN, customer="", reseller="", outcome="unrated", billsec=30,
               account="c1", reason="unknown account 'c1'")  # fmt: skip
    insert_rows(executor, [lost])
    summary = Rerater(settings, world["redis"], executor).run(
        RerateRequest(DAY, DAY, unrated=True, reseller="r2")
    )
    assert (summary.changed, summary.left) == (0, {"another reseller's account: 'r1'": 1})


def test_one_rerate_at_a_time(
    settings: Settings, executor: Executor, world: dict[str, Any]
) -> None:
    redis = world["redis"]
    redis.set(rerate_module.LOCK_KEY, "other-run", ex=60)
    with pytest.raises(RerateError, match="other-run"):
        Rerater(settings, redis, executor).run(RerateRequest(DAY, DAY, tariff="retail"))
    # a dry run changes nothing and needs no lock
    Rerater(settings, redis, executor).run(RerateRequest(DAY, DAY, tariff="retail", dry_run=True))
    redis.delete(rerate_module.LOCK_KEY)
    Rerater(settings, redis, executor).run(RerateRequest(DAY, DAY, tariff="retail"))
    assert redis.get(rerate_module.LOCK_KEY) is None


def test_busy_days_are_read_hour_by_hour(
    settings: Settings, executor: Executor, world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rerate_module, "BIG_DAY", 1)
    late = cdr(30, when=datetime(2026, 11, 2, 23, 59, 59), billsec=60, price=200_000,
               cost=120_000, customer="c1")  # fmt: skip
    insert_rows(executor, [late])
    world["store"].save(
        table("retail", 300_000, 100_000), effective_from=datetime(2026, 1, 1, tzinfo=UTC)
    )
    rerater = Rerater(settings, world["redis"], executor)
    windows = list(rerater._windows(RerateRequest(DAY, DAY)))
    assert len(windows) == 24
    summary = rerater.run(RerateRequest(DAY, DAY, tariff="retail"))
    assert (summary.examined, summary.changed) == (3, 2)  # cdr-1 and cdr-30 (mobile)
    assert rerater.run(RerateRequest(DAY, DAY, tariff="retail")).changed == 0
