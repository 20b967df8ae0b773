"""The reseller notice (shared seed), step by step, through the `rater` command itself.

Tip 3: derive "Calling cards rates 40% - 60/60 billing - 29 sept 2008" from the buy rates,
create "Calling card user batch 1" on it, create 100 disposable cards of EUR 5 (funding the
customer with EUR 500, covered by the reseller's credit), read the XLSX back, rate calls on
one card until it is empty, and check that it is exhausted, that a top-up is refused and that
the normal SIP account was not touched. Tips 1 and 2: ANI recognition below EUR 1.00, and a
card worth more than its customer's SIP credit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from test_admin_cli_helpers import (
    BUY_TARIFF,
    CARD_TARIFF,
    Cli,
    call,
    derive_card_tariff,
    own_world,
    publish,
    rate_published,
    setup_tariffs,
)

from rater import reference
from rater.accounts.api import Accounts
from rater.accounts.cardsheet import ISSUE_COLUMNS, read_sheet
from rater.accounts.luhn import luhn_digit
from rater.money import to_micro
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

MOBILE_NL = "+31612345678"  # prefix 316: buy 0.0700/min 1/1, sell 0.0980/min 60/60


@pytest.fixture(scope="module")
def world(kafka_topics: Settings) -> Iterator[Settings]:
    """Our own ClickHouse database, topics and consumer group on the session's services."""
    with own_world(kafka_topics, topics=True) as ours:
        yield ours


@pytest.fixture
def cli(world: Settings, redis: RedisLike, tmp_path: Path) -> Cli:
    """A clean Redis, and `rater` running in a scratch folder."""
    return Cli(world, tmp_path)


def _reference_price(settings: Settings, redis: RedisLike, tariff: str, billsec: int) -> int:
    """What one call to MOBILE_NL costs on `tariff`, by the plain-Decimal reference rater."""
    versions = TariffStore(redis, settings, clickhouse=False).versions(tariff)
    rated = reference.rate(versions, MOBILE_NL.lstrip("+"), billsec, datetime.now(UTC))
    assert rated is not None
    return rated.price_micro


def test_tip3_disposable_calling_cards(cli: Cli, redis: RedisLike, world: Settings) -> None:
    settings = world
    # the operator's buy table, and the reseller buying at it
    setup_tariffs(cli)
    cli("reseller", "create", "xeloq", "--name", "XeloQ reseller", "--credit", "500",
        "--buy-tariff", BUY_TARIFF)  # fmt: skip
    # 1. the reseller's new tariff table: 40% over the buy rates, 60/60 billing
    derive_card_tariff(cli, "xeloq")
    store = TariffStore(redis, settings, clickhouse=False)
    buy = {row.prefix: row.rate for row in store.get(BUY_TARIFF).rows}
    sell = store.get(CARD_TARIFF)
    assert str(sell.steps) == "60/60"
    assert {row.prefix: row.rate for row in sell.rows} == {p: r * 14 // 10 for p, r in buy.items()}
    assert to_micro("0.098") == next(r.rate for r in sell.rows if r.prefix == "316")

    # a normal SIP customer already on the reseller's books
    cli("customer", "create", "sip1", "--name", "SIP account", "--reseller", "xeloq",
        "--tariff", BUY_TARIFF, "--balance", "50")  # fmt: skip

    # 2 + 3. the card-batch customer on the new table
    made = cli("customer", "create", "ccbatch1", "--name", "Calling card user batch 1",
               "--reseller", "xeloq", "--tariff", CARD_TARIFF, "--kind", "card-batch",
               "--json").json()  # fmt: skip
    assert (made["name"], made["tariff"], made["balance"]) == (
        "Calling card user batch 1",
        CARD_TARIFF,
        "0.00",
    )

    # 4. 100 cards of EUR 5: 500 of customer credit, but only 450 of the 500 is free
    refused = cli("card", "create", "--customer", "ccbatch1", "--count", "100", "--value", "5",
                  "--disposable", code=1)  # fmt: skip
    assert "shortfall 50.00 EUR" in refused.err
    assert refused.err.count("\n") == 1  # one clear line
    assert not list(cli.cwd.glob("*.xlsx"))
    assert cli("customer", "show", "ccbatch1", "--json").json()["cards"] == 0
    cli("reseller", "credit", "xeloq", "--add", "100", "--reason", "invoice 2008-0929 paid")
    batch = cli("card", "create", "--customer", "ccbatch1", "--count", "100", "--value", "5",
                "--disposable", "--expires", "2099-12-31", "--json").json()  # fmt: skip
    assert (batch["count"], batch["funded"], batch["customer_balance"]) == (100, "500.00", "500.00")

    # 5. the XLSX: every card, as printed
    sheet = Path(batch["output"])
    assert sheet.parent == cli.cwd
    assert batch["batch"] in sheet.name
    cards = read_sheet(sheet)
    assert len(cards) == 100
    assert len({c.number for c in cards}) == 100
    accounts = Accounts(settings, redis)
    issued = {c.number for c in accounts.list_cards(batch_id=batch["batch"])}
    assert {c.number for c in cards} == issued
    for card in cards:
        assert len(card.number) == settings.card_number_length
        assert card.number.startswith(settings.card_number_prefix)
        assert luhn_digit(card.number[:-1]) == card.number[-1]
        assert card.pin is not None
        assert len(card.pin) == settings.pin_length
        assert card.pin.isdigit()
        assert accounts.verify_pin(card.number, card.pin).ok, card.number
        assert (card.value, card.currency, card.batch_id, card.tariff) == (
            5_000_000,
            "EUR",
            batch["batch"],
            CARD_TARIFF,
        )
        assert card.expires is not None
        assert card.expires.isoformat() == "2099-12-31"
    ws = load_workbook(sheet)["Cards"]
    assert [c.value for c in ws[1]] == [c.header for c in ISSUE_COLUMNS]
    assert all(c.font.b for c in ws[1])
    assert ws.freeze_panes == "A2"

    shown = cli("reseller", "show", "xeloq", "--json").json()
    assert shown["credit"] == "600.00"
    assert shown["customers_balance"] == "550.00"
    assert shown["card_value_disposable"] == "500.00"
    assert shown["covered"] is True
    assert shown["headroom"] == "50.00"
    text = cli("reseller", "show", "xeloq").out
    assert "credit covers all:" in text
    assert "yes, 50.00 EUR to spare" in text

    # rate calls on one card until it is empty: 20-minute calls cost 1.96 each at 0.098/min
    card = cards[0]
    price = _reference_price(settings, redis, CARD_TARIFF, 1200)
    cost = _reference_price(settings, redis, BUY_TARIFF, 1200)
    assert (price, cost) == (1_960_000, 1_400_000)
    calls = -(-5_000_000 // price)  # the last call happened: it goes below zero
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    publish(
        settings,
        [
            call(
                f"cc-{i}",
                account="ccbatch1",
                card=card.number,
                callee=MOBILE_NL,
                billsec=1200,
                start=start + timedelta(hours=i),
            )
            for i in range(calls)
        ],
    )
    rate_published(cli, calls)

    # it is exhausted, a top-up is refused, and nothing else moved
    after = cli("card", "show", card.number, "--json").json()
    assert after["status"] == "exhausted"
    assert to_micro(after["balance"]) == 5_000_000 - calls * price
    refused = cli(
        "card", "topup", card.number, "--amount", "5", "--reason", "customer asked", code=1
    )
    assert "disposable" in refused.err
    assert "never topped up" in refused.err
    assert cli("card", "show", card.number, "--json").json()["balance"] == after["balance"]
    denied = cli("authorize", "--card", card.number, "--pin", str(card.pin),
                 "--callee", MOBILE_NL, "--json", code=2).json()  # fmt: skip
    assert denied["reason"] == "card_exhausted"
    other = cards[1]
    assert cli("card", "show", other.number, "--json").json()["balance"] == "5.00"
    sip = cli("customer", "show", "sip1", "--json").json()
    assert (sip["balance"], sip["status"]) == ("50.00", "active")
    holder = cli("customer", "show", "ccbatch1", "--json").json()
    assert to_micro(holder["balance"]) == 500_000_000 - calls * price
    assert holder["cards_by_status"] == {"active": 99, "exhausted": 1}
    assert to_micro(cli("reseller", "show", "xeloq", "--json").json()["credit"]) == (
        600_000_000 - calls * cost
    )

    # the batch exported later: no PINs, the exhausted card marked
    export = cli("card", "export", "--batch", batch["batch"], "--json").json()
    listed = {c.number: c for c in read_sheet(Path(export["output"]))}
    assert len(listed) == 100
    assert all(c.pin is None for c in listed.values())
    assert listed[card.number].status == "exhausted"
    assert listed[card.number].balance == 5_000_000 - calls * price
    assert listed[other.number].balance == 5_000_000
    assert "PIN" not in [c.value for c in load_workbook(export["output"])["Cards"][1]]


def _sip_customer_with_card(
    cli: Cli, customer: str, *, balance: str, card_value: str
) -> tuple[str, str]:
    """A normal SIP customer on the card tariff with one rechargeable card: (number, PIN)."""
    cli("customer", "create", customer, "--name", f"SIP account {customer}",
        "--reseller", "xeloq", "--tariff", CARD_TARIFF, "--balance", balance)  # fmt: skip
    made = cli("card", "create", "--customer", customer, "--count", "1", "--value", card_value,
               "-o", f"{customer}.xlsx", "--json").json()  # fmt: skip
    assert made["funded"] == "0.00"  # a limit inside the SIP credit, not new money
    (card,) = read_sheet(cli.cwd / f"{customer}.xlsx")
    assert card.pin is not None
    return card.number, card.pin


def test_tips_1_and_2_ani_threshold_and_sip_credit(cli: Cli, world: Settings) -> None:
    """Both tips share one reseller and one run of the rater (a run costs ~8 s of joins)."""
    setup_tariffs(cli)
    cli("reseller", "create", "xeloq", "--name", "XeloQ", "--credit", "1000",
        "--buy-tariff", BUY_TARIFF)  # fmt: skip
    derive_card_tariff(cli, "xeloq")

    # tip 1: a card of EUR 1.50 with a caller number; ANI recognition answers
    ani_card, _ = _sip_customer_with_card(cli, "sip1", balance="20", card_value="1.50")
    added = cli("ani", "add", ani_card, "+31 20 555 0101", "--json").json()
    assert (added["anis"], added["ani_recognition"]) == (["31205550101"], True)
    ok = cli("authorize", "--ani", "+31205550101", "--callee", MOBILE_NL, "--json").json()
    assert (ok["allowed"], ok["card"]) == (True, ani_card)

    # tip 2: a card of EUR 10 on a SIP account holding EUR 5
    big_card, pin = _sip_customer_with_card(cli, "sip2", balance="5", card_value="10")
    first = cli("authorize", "--card", big_card, "--pin", pin, "--callee", MOBILE_NL,
                "--json").json()  # fmt: skip
    assert first["allowed"] is True
    assert first["customer_seconds"] < first["card_seconds"]  # the EUR 5 limits, not the card

    # tip 1: 6 minutes at 0.098/min = 0.588, the card drops to 0.912 (< 1.00);
    # tip 2: 60 minutes = 5.88, the SIP account goes below zero, the card keeps 4.12
    publish(
        world,
        [
            call("t1-1", account="sip1", card=ani_card, callee=MOBILE_NL, billsec=360,
                 auth_id=ok["auth_id"]),
            call("t2-1", account="sip2", card=big_card, callee=MOBILE_NL, billsec=3600,
                 auth_id=first["auth_id"]),
        ],
    )  # fmt: skip
    rate_published(cli, 2)

    # tip 1: recognition stops below EUR 1.00 ...
    shown = cli("card", "show", ani_card, "--json").json()
    assert (shown["balance"], shown["status"], shown["ani_recognition"]) == (
        "0.912",
        "active",
        False,
    )
    assert "off (below 1.00 EUR)" in cli("card", "show", ani_card).out
    off = cli("authorize", "--ani", "+31205550101", "--callee", MOBILE_NL, "--json", code=2)
    assert off.json()["reason"] in ("ani_disabled", "unknown_ani")
    # ... and comes back with a top-up that lifts the card to >= 1.00
    topped = cli(
        "card", "topup", ani_card, "--amount", "0.50", "--reason", "tip 1: keep EUR 1 on the card"
    )
    assert "ANI recognition back on" in topped.out
    back = cli("authorize", "--ani", "+31205550101", "--callee", MOBILE_NL, "--json").json()
    assert (back["allowed"], back["card"]) == (True, ani_card)
    removed = cli("ani", "remove", ani_card, "31205550101", "--json").json()
    assert removed["anis"] == []
    cli("authorize", "--ani", "+31205550101", "--callee", MOBILE_NL, code=2)

    # tip 2: the card still shows money, but calling stops with the SIP account below 0.00
    shown = cli("card", "show", big_card, "--json").json()
    assert (shown["balance"], shown["customer_balance"]) == ("4.12", "-0.88")
    refused = cli("authorize", "--card", big_card, "--pin", pin, "--callee", MOBILE_NL,
                  "--json", code=2).json()  # fmt: skip
    assert refused["reason"] == "customer_negative"
    # "as long as the Customer / SIP account covers the funds, there is no problem"
    cli(
        "customer",
        "topup",
        "sip2",
        "--amount",
        "20",
        "--reason",
        "tip 2: SIP credit covers the card",
    )
    again = cli("authorize", "--card", big_card, "--pin", pin, "--callee", MOBILE_NL, "--json")
    assert again.json()["allowed"] is True
