"""Authorization against real Redis: refusals by docs/DESIGN.md section 1, the seconds each
level can pay (checked against the Decimal reference), and reservations under concurrency."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from rater import reference
from rater.accounts.api import Accounts
from rater.accounts.authorize import Authorizer, Reason
from rater.cli.main import cli
from rater.pipeline.debit import DebitBatch, Debiter
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

SELL = TariffTable(
    name="retail",
    decimals=4,
    steps=Steps(60, 60),
    rows=(
        TariffRow("31", "Netherlands", rate=100_000),
        TariffRow("3120", "Amsterdam", rate=120_000, connect_fee=50_000, steps=Steps(30, 6)),
    ),
)
BUY = TariffTable(
    name="wholesale",
    decimals=6,
    steps=Steps(1, 1),
    rows=(TariffRow("31", "Netherlands", rate=40_000), TariffRow("3120", "Amsterdam", rate=45_000)),
)


@pytest.fixture
def world(settings: Settings, redis: Any) -> tuple[Accounts, Authorizer, str, str]:
    store = TariffStore(redis, settings, clickhouse=False)
    store.save(BUY)
    accounts = Accounts(settings, redis)
    accounts.create_reseller("R1", "Reseller", credit="100", buy_tariff="wholesale")
    store.save(SELL, owner="R1")
    accounts.create_customer("C1", "SIP", reseller_id="R1", tariff="retail", balance="5")
    issued = accounts.create_cards("C1", count=1, value="10").cards[0]
    return accounts, Authorizer(settings, redis, accounts=accounts), issued.number, issued.pin


def _reference_seconds(table: TariffTable, available: int, number: str, limit: int) -> int:
    """Brute force with the Decimal reference: the longest affordable call (<= limit)."""
    row = reference.match(table, number, datetime.now(UTC))
    assert row is not None
    best = 0
    for billsec in range(1, limit + 1):
        if reference.price_micro(table, row, billsec) <= available:
            best = billsec
    return best


def test_account_authorization_seconds_match_reference(
    world: tuple[Accounts, Authorizer, str, str],
) -> None:
    accounts, authorizer, _, _ = world
    for balance, callee in (
        ("0.2499", "+31612345678"),
        ("0.37", "+31201234567"),
        ("1.05", "00312012345"),
    ):
        accounts.adjust(
            "customer", "C1", "-" + str(accounts.get_customer("C1").balance_str), "reset"
        )
        accounts.topup_customer("C1", balance, "test balance")
        number = callee.lstrip("+").removeprefix("00")
        answer = authorizer.authorize(account="C1", callee=callee, max_seconds=1200)
        assert answer.allowed, answer.message
        available = accounts.get_customer("C1").balance
        assert answer.customer_seconds == _reference_seconds(SELL, available, number, 1200)
        assert answer.reseller_seconds == 1200  # 100 EUR at wholesale pays more than the cap
        assert answer.card_seconds is None
        assert answer.max_seconds == answer.customer_seconds
        row = reference.match(SELL, number, datetime.now(UTC))
        assert row is not None
        assert answer.reserved["customer"] == reference.price_micro(SELL, row, answer.max_seconds)
        # the whole balance is now reserved: the next call cannot start
        again = authorizer.authorize(account="C1", callee=callee, max_seconds=1200)
        assert again.reason is Reason.INSUFFICIENT_CREDIT
        assert "customer" in again.message
        authorizer.release(answer.auth_id)


def test_tip2_card_stops_when_customer_below_zero(
    world: tuple[Accounts, Authorizer, str, str], settings: Settings, redis: Any
) -> None:
    accounts, authorizer, card, pin = world
    answer = authorizer.authorize(card=card, pin=pin, callee="31612345678", max_seconds=100_000)
    # card 10 EUR would pay 100 min at 0.10; the customer's 5 EUR only 50
    assert (answer.card_seconds, answer.customer_seconds, answer.max_seconds) == (6000, 3000, 3000)
    assert answer.reserved == {"card": 5_000_000, "customer": 5_000_000, "reseller": 2_000_000}
    # the call happens and costs 5.30: the customer is below zero, the card still shows 4.70
    Debiter(redis, settings=settings).apply(
        DebitBatch(
            "t",
            0,
            np.array([1]),
            ["sw"],
            ["c1"],
            ["C1"],
            [card],
            ["R1"],
            np.array([5_300_000]),
            np.array([2_000_000]),
            [answer.auth_id],
        )
    )
    assert accounts.get_card(card).balance == 4_700_000
    refused = authorizer.authorize(card=card, pin=pin, callee="31612345678")
    assert refused.reason is Reason.CUSTOMER_NEGATIVE
    accounts.topup_customer("C1", "10", "top-up")
    assert authorizer.authorize(card=card, pin=pin, callee="31612345678").allowed


def test_refusals_name_their_reason(world: tuple[Accounts, Authorizer, str, str]) -> None:
    accounts, authorizer, card, pin = world
    wrong = "0000" if pin != "0000" else "1111"
    assert (
        authorizer.authorize(card=card, pin=wrong, callee="31612345678").reason
        is Reason.CARD_OR_PIN
    )
    for _ in range(accounts.settings.pin_max_failures):
        last = authorizer.authorize(card=card, pin=wrong, callee="31612345678")
    assert last.reason is Reason.CARD_OR_PIN
    assert accounts.get_card(card).locked_until is not None
    locked = authorizer.authorize(card=card, pin=pin, callee="31612345678")
    assert locked.reason is Reason.CARD_OR_PIN  # locked: even the right PIN
    accounts.unblock_card(card)

    assert (
        authorizer.authorize(account="nobody", callee="31612345678").reason
        is Reason.UNKNOWN_ACCOUNT
    )
    assert authorizer.authorize(ani="4412345", callee="31612345678").reason is Reason.UNKNOWN_ANI
    assert authorizer.authorize(account="C1", callee="441234").reason is Reason.NO_RATE
    assert authorizer.authorize(account="C1", callee="not a number").reason is Reason.BAD_NUMBER

    accounts.block_card(card)
    assert (
        authorizer.authorize(card=card, pin=pin, callee="31612345678").reason is Reason.CARD_BLOCKED
    )
    accounts.unblock_card(card)
    accounts.redis.hset(keys.card("R1", card), "exp", int(datetime.now(UTC).timestamp()) - 1)
    assert (
        authorizer.authorize(card=card, pin=pin, callee="31612345678").reason is Reason.CARD_EXPIRED
    )
    accounts.redis.hset(keys.card("R1", card), "exp", 0)

    accounts.block("reseller", "R1")
    assert (
        authorizer.authorize(account="C1", callee="31612345678").reason is Reason.RESELLER_BLOCKED
    )
    accounts.unblock("reseller", "R1")
    accounts.adjust("customer", "C1", "-5", "to zero")
    zero = authorizer.authorize(account="C1", callee="31612345678")
    assert zero.reason is Reason.INSUFFICIENT_CREDIT


def test_ani_refused_under_threshold_and_disposable_exhausted(
    world: tuple[Accounts, Authorizer, str, str], settings: Settings, redis: Any
) -> None:
    accounts, authorizer, card, _ = world
    accounts.add_ani(card, "+31 6 1111 2222")
    ok = authorizer.authorize(ani="0031611112222", callee="31612345678", max_seconds=60)
    assert ok.allowed
    assert ok.card_number == card
    accounts.adjust("card", card, "-9.01", "spent elsewhere")  # 0.99: under the 1.00 threshold
    refused = authorizer.authorize(ani="31611112222", callee="31612345678")
    assert refused.reason is Reason.ANI_DISABLED

    accounts.create_customer(
        "B1", "Calling card user batch 1", reseller_id="R1", tariff="retail", kind="card_batch"
    )
    issued = accounts.create_cards("B1", count=1, value="5", disposable=True).cards[0]
    Debiter(redis, settings=settings).apply(
        DebitBatch(
            "t",
            0,
            np.array([1]),
            ["sw"],
            ["d1"],
            ["B1"],
            [issued.number],
            ["R1"],
            np.array([5_000_000]),
            np.array([1_000_000]),
        )
    )
    answer = authorizer.authorize(card=issued.number, pin=issued.pin, callee="31612345678")
    assert answer.reason is Reason.CARD_EXHAUSTED
    # the batch's money is reachable only through its cards
    assert authorizer.authorize(account="B1", callee="31612345678").reason is Reason.CARDS_ONLY


def test_expired_reservations_free_the_credit(
    world: tuple[Accounts, Authorizer, str, str], redis: Any
) -> None:
    _, authorizer, _, _ = world
    held = authorizer.authorize(account="C1", callee="31612345678", max_seconds=600)
    assert held.allowed
    again = authorizer.authorize(account="C1", callee="31612345678", max_seconds=10**6)
    assert again.customer_seconds == 3000 - 600  # 5 EUR less the hold of 1.00
    authorizer.release(again.auth_id)
    # the hold's time is over (instead of waiting two hours): its entry and its place in the
    # expiry index say it ended at epoch second 1
    rsv = keys.reservations("R1", "c", "C1")
    redis.hset(rsv, held.auth_id, redis.hget(rsv, held.auth_id).split(b":")[0] + b":1")
    redis.zadd(keys.reservation_expiry("R1", "c", "C1"), {held.auth_id: 1})
    fresh = authorizer.authorize(account="C1", callee="31612345678", max_seconds=10**6)
    assert fresh.customer_seconds == 3000  # the whole 5 EUR again
    assert redis.hget(rsv, held.auth_id) is None  # dropped by the script


def _authorize_many(args: tuple[Settings, int]) -> list[bool]:
    settings, count = args
    authorizer = Authorizer(settings, redis_client.connect(settings))
    return [
        authorizer.authorize(account="C1", callee="31612345678", max_seconds=60).allowed
        for _ in range(count)
    ]


def test_concurrent_authorizations_cannot_overdraw(
    world: tuple[Accounts, Authorizer, str, str], settings: Settings
) -> None:
    accounts, _, _, _ = world
    accounts.adjust("customer", "C1", "-4", "leave 1.00")  # ten one-minute calls at 0.10
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_authorize_many, [(settings, 6)] * 4)
    assert sum(sum(r) for r in results) == 10
    held = accounts.redis.hvals(keys.reservations("R1", "c", "C1"))
    assert sum(int(v.split(b":")[0]) for v in held) == 1_000_000


def test_cli_authorize(world: tuple[Accounts, Authorizer, str, str], settings: Settings) -> None:
    env = {"RATER_REDIS_URL": settings.redis_url}
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "authorize",
            "--account",
            "C1",
            "--callee",
            "+31612345678",
            "--max-seconds",
            "120",
            "--json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output.strip().splitlines()[-1])
    assert answer["allowed"] is True
    assert answer["max_seconds"] == 120
    assert answer["reserved"]["customer"] == "0.200000"
    assert answer["auth_id"]
    refused = runner.invoke(cli, ["authorize", "--account", "nobody", "--callee", "316"], env=env)
    assert "REFUSED (unknown_account)" in refused.output


def test_cli_renew_release_and_held_credit_in_the_show_commands(
    world: tuple[Accounts, Authorizer, str, str], settings: Settings
) -> None:
    _, _, card, pin = world
    env = {"RATER_REDIS_URL": settings.redis_url}
    if settings.redis_cluster_nodes:
        env["RATER_REDIS_CLUSTER_NODES"] = settings.redis_cluster_nodes
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    answer = json.loads(
        run("authorize", "--card", card, "--pin", pin, "--caller", "+31 20 555 0101",
            "--callee", "+31612345678", "--max-seconds", "120", "--json").strip().splitlines()[-1]
    )  # fmt: skip
    auth_id = answer["auth_id"]
    shown = json.loads(run("card", "show", card, "--json"))
    assert shown["held"] == "0.20"
    assert shown["reservations"][0]["auth_id"] == auth_id
    assert "held for calls: 1 call, 0.20 EUR, until" in " ".join(run("card", "show", card).split())
    assert json.loads(run("customer", "show", "C1", "--json"))["held"] == "0.20"
    assert "1 call, 0.20 EUR" in run("customer", "show", "C1")
    reseller = json.loads(run("reseller", "show", "R1", "--json"))
    assert reseller["held"] == "0.08"  # 120 s at the buy rate, 0.04 a minute
    assert "held for calls" in run("reseller", "show", "R1")

    renewed = run("authorize", "renew", auth_id)
    assert "ALLOWED (ok): renewed: 3000 s in all" in renewed  # as far as the customer's 5 EUR go
    first = run("authorize", "release", auth_id)
    assert first == run("authorize", "release", auth_id)  # idempotent: the same answer
    assert first.strip().endswith(f"auth_id {auth_id} released: it holds no credit")
    assert json.loads(run("card", "show", card, "--json"))["reservations"] == []
    assert "held for calls: none" in " ".join(run("card", "show", card).split())
    gone = run("authorize", "renew", auth_id, code=2)
    assert "REFUSED (unknown_auth)" in gone
    bad = runner.invoke(cli, ["authorize", "release", "a:b"], env=env)
    assert bad.exit_code == 2
    assert "has the character ':'" in bad.output
