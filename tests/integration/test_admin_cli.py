"""The reseller's admin commands: help, errors a person can act on, --json, and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from clickhouse_driver import Client
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from test_admin_cli_helpers import (
    BUY_TARIFF,
    CARD_TARIFF,
    Cli,
    derive_card_tariff,
    own_world,
    setup_tariffs,
)

from rater import clickhouse
from rater.accounts.cardsheet import read_sheet
from rater.cli._output import amount_micro, money
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

GROUPS = {
    "reseller": ("create", "show", "credit"),
    "customer": ("create", "show", "topup", "correct"),
    "card": ("create", "export", "show", "topup", "block", "unblock"),
    "ani": ("add", "remove"),
}


@pytest.fixture(scope="module")
def world(settings: Settings) -> Iterator[Settings]:
    """A ClickHouse database of our own: the ledger rows made here meet no other test."""
    with own_world(settings, topics=False) as ours:
        yield ours


@pytest.fixture
def cli(world: Settings, redis: RedisLike, tmp_path: Path) -> Cli:
    return Cli(world, tmp_path)


@pytest.fixture
def ledger(world: Settings) -> Iterator[Client]:
    client = clickhouse.client(world, numpy=False)
    yield client
    client.disconnect()


@pytest.fixture
def books(cli: Cli) -> Cli:
    """Tariffs, a reseller with EUR 100 of credit and a normal SIP customer with EUR 30."""
    setup_tariffs(cli)
    cli("reseller", "create", "res1", "--name", "Reseller One", "--credit", "100",
        "--buy-tariff", BUY_TARIFF)  # fmt: skip
    derive_card_tariff(cli, "res1")
    cli("customer", "create", "sip1", "--name", "SIP one", "--reseller", "res1",
        "--tariff", CARD_TARIFF, "--balance", "30")  # fmt: skip
    return cli


def test_every_command_has_help(cli: Cli) -> None:
    listed = cli("--help").out
    for group, commands in GROUPS.items():
        assert group in listed
        text = cli(group, "--help").out
        for command in commands:
            assert command in text, (group, command)
            help_text = cli(group, command, "--help").out
            assert "Usage: rater" in help_text
            assert "--json" in help_text
    assert "--reason" in cli("reseller", "credit", "--help").out
    assert "--disposable" in cli("card", "create", "--help").out


def test_errors_are_one_line_with_exit_status_1(books: Cli) -> None:
    """Through the real executable: no traceback, one line naming the thing, status 1."""
    missing = books("customer", "show", "nobody", code=1, process=True)
    assert missing.err.strip() == "error: customer 'nobody' does not exist"
    assert missing.out == ""
    wrong_kind = books("card", "create", "--customer", "sip1", "--count", "2", "--value", "5",
                       "--disposable", code=1, process=True)  # fmt: skip
    assert wrong_kind.err.count("\n") == 1
    assert "card_batch" in wrong_kind.err
    assert not list(books.cwd.glob("*.xlsx"))
    unknown_tariff = books("customer", "create", "x1", "--name", "X", "--reseller", "res1",
                           "--tariff", "no such table", code=1)  # fmt: skip
    assert "tariff 'no such table' does not exist" in unknown_tariff.err
    unknown_buy = books("reseller", "create", "res2", "--name", "Two", "--credit", "1",
                        "--buy-tariff", "xeloq by", code=1)  # fmt: skip
    assert "tariff 'xeloq by' does not exist (known: " in unknown_buy.err
    books("reseller", "show", "res2", code=1)  # nothing was created


def test_bad_input_is_a_usage_error_naming_the_option(books: Cli) -> None:
    bad = books("customer", "topup", "sip1", "--amount", "5.1234567", "--reason", "x", code=2)
    assert "--amount" in bad.err
    assert "more than 6 decimals" in bad.err
    no_reason = books("customer", "topup", "sip1", "--amount", "5", code=2)
    assert "--reason" in no_reason.err
    both = books("reseller", "credit", "res1", "--add", "1", "--deduct", "1", "--reason", "x",
                 code=2)  # fmt: skip
    assert "exactly one of --add" in both.err
    past = books("card", "create", "--customer", "sip1", "--count", "1", "--value", "5",
                 "--expires", "2008-09-29", code=2)  # fmt: skip
    assert "in the past" in past.err
    zero = books("card", "create", "--customer", "sip1", "--count", "0", "--value", "5", code=2)
    assert "--count" in zero.err
    assert books("customer", "show", "sip1", "--json").json()["cards"] == 0


def test_credit_adds_and_corrects_with_a_reason_never_sets(books: Cli, ledger: Client) -> None:
    added = books("reseller", "credit", "res1", "--add", "50", "--reason", "invoice 17",
                  "--json").json()  # fmt: skip
    assert (added["credit_before"], added["credit"], added["change"]) == (
        "100.00",
        "150.00",
        "50.00",
    )
    fixed = books("reseller", "credit", "res1", "--deduct", "20.5", "--reason", "double booking")
    assert "credit 150.00 -> 129.50 EUR" in fixed.out
    # the customers hold 30: a correction may not leave them uncovered
    refused = books("reseller", "credit", "res1", "--deduct", "110", "--reason", "x", code=1)
    assert "shortfall" in refused.err
    assert books("reseller", "show", "res1", "--json").json()["credit"] == "129.50"
    topped = books(
        "customer", "topup", "sip1", "--amount", "9.99", "--reason", "paid by card", "--json"
    )
    assert (topped.json()["balance_before"], topped.json()["balance"]) == ("30.00", "39.99")
    fixed = books("customer", "correct", "sip1", "--deduct", "0.99", "--reason", "booked twice")
    assert "balance 39.99 -> 39.00 EUR, active" in fixed.out
    books("customer", "correct", "sip1", "--add", "0.99", "--reason", "undo")
    too_much = books("customer", "topup", "sip1", "--amount", "100", "--reason", "x", code=1)
    assert "shortfall 10.49 EUR" in too_much.err
    reasons = {row[0] for row in ledger.execute("SELECT reason FROM ledger")}
    assert {"invoice 17", "double booking", "paid by card", "booked twice", "undo"} <= reasons


def test_reseller_show_names_a_shortfall(books: Cli, redis: RedisLike) -> None:
    shown = books("reseller", "show", "res1").out
    assert "credit covers all:          yes, 70.00 EUR to spare" in shown
    assert "sip1" in shown
    # a reseller whose calls cost more than expected: its credit drops under the customers'
    redis.hincrby("{r:res1}:res", "bal", -80_000_000)
    data = books("reseller", "show", "res1", "--json").json()
    assert (data["credit"], data["customers_balance"], data["covered"], data["shortfall"]) == (
        "20.00",
        "30.00",
        False,
        "10.00",
    )
    assert "NO: short by 10.00 EUR" in books("reseller", "show", "res1").out


def test_rechargeable_cards_block_unblock_ani_and_export(books: Cli) -> None:
    made = books("card", "create", "--customer", "sip1", "--count", "3", "--value", "2.50",
                 "--expires", "2099-06-30", "--json").json()  # fmt: skip
    assert (made["funded"], made["customer_balance"], made["disposable"]) == (
        "0.00",
        "30.00",
        False,
    )
    sheet = Path(made["output"])
    assert sheet.name == f"cards-{made['batch']}.xlsx"
    assert oct(sheet.stat().st_mode & 0o777) == "0o600"  # PINs: owner only
    cards = read_sheet(sheet)
    number = cards[0].number
    # a second batch may not overwrite the PIN sheet of the first
    clash = books("card", "create", "--customer", "sip1", "--count", "1", "--value", "1",
                  "-o", str(sheet), code=2)  # fmt: skip
    assert "never overwritten" in clash.err
    assert len(read_sheet(sheet)) == 3
    assert books("customer", "show", "sip1", "--json").json()["cards"] == 3

    shown = books("card", "show", number, "--json").json()
    assert (shown["balance"], shown["status"], shown["valid_through"]) == (
        "2.50",
        "active",
        "2099-06-30",
    )
    assert "pin" not in {k.lower() for k in shown}
    assert books("card", "block", number, "--json").json()["status"] == "blocked"
    assert books("card", "unblock", number, "--json").json()["status"] == "active"
    topped = books(
        "card", "topup", number, "--amount", "1", "--reason", "asked by phone", "--json"
    ).json()
    assert (topped["balance_before"], topped["balance"]) == ("2.50", "3.50")

    books("ani", "add", number, "0031 6 1234 5678")
    taken = books("ani", "add", cards[1].number, "+31612345678", code=1)
    assert f"already belongs to card {number}" in taken.err
    gone = books("ani", "remove", number, "+31612345678", "--json").json()
    assert gone["anis"] == []
    books("ani", "remove", number, "+31612345678", code=1)

    export = books("card", "export", "--batch", made["batch"], "-o", "export.xlsx")
    assert "3 cards (3 active)" in export.out
    header = [c.value for c in load_workbook(books.cwd / "export.xlsx")["Cards"][1]]
    assert "PIN" not in header
    rows = {c.number: c for c in read_sheet(books.cwd / "export.xlsx")}
    assert rows[number].balance == 3_500_000
    assert rows[cards[2].number].balance == 2_500_000
    missing = books("card", "export", "--batch", "nope", "-o", "n.xlsx", code=1)
    assert "batch 'nope' does not exist" in missing.err


def test_disposable_batch_is_refused_with_the_shortfall(books: Cli) -> None:
    books("customer", "create", "cc1", "--name", "Calling card user batch 1", "--reseller",
          "res1", "--tariff", CARD_TARIFF, "--kind", "card-batch")  # fmt: skip
    # 100 of credit, 30 held by sip1: 20 cards of 5 (100) do not fit, 14 (70) do
    refused = books("card", "create", "--customer", "cc1", "--count", "20", "--value", "5",
                    "--disposable", code=1, process=True)  # fmt: skip
    assert refused.err.strip().endswith("shortfall 30.00 EUR")
    assert not list(books.cwd.glob("*.xlsx"))
    made = books("card", "create", "--customer", "cc1", "--count", "14", "--value", "5",
                 "--disposable", "--json").json()  # fmt: skip
    assert made["funded"] == "70.00"
    shown = books("reseller", "show", "res1", "--json").json()
    assert (shown["customers_balance"], shown["covered"], shown["headroom"]) == (
        "100.00",
        True,
        "0.00",
    )
    card = read_sheet(Path(made["output"]))[0].number
    refused = books("card", "topup", card, "--amount", "5", "--reason", "x", code=1)
    assert "disposable" in refused.err
    refused = books("customer", "topup", "sip1", "--amount", "0.01", "--reason", "x", code=1)
    assert "shortfall 0.01 EUR" in refused.err


@given(micro=st.integers(-(10**15), 10**15))
def test_money_is_exact_with_at_least_two_decimals(micro: int) -> None:
    """No service needed: the output format every command uses for amounts."""
    text = money(micro)
    _whole, fraction = text.split(".")
    assert len(fraction) >= 2
    assert Decimal(text) * 1_000_000 == micro
    assert amount_micro(text, "--x", positive=False) == micro


def test_cards_whose_sheet_cannot_be_written_are_blocked(
    books: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PINs exist only in the sheet: if it cannot be written, nobody may use the cards."""
    import rater.cli.card_batch

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rater.cli.card_batch, "write_issue_sheet", disk_full)
    failed = books("card", "create", "--customer", "sip1", "--count", "4", "--value", "2",
                   "--batch", "lost-1", code=1)  # fmt: skip
    assert "batch lost-1: 4 cards were created but their sheet could not be written" in failed.err
    assert "all 4 cards of the batch are now blocked" in failed.err
    shown = books("customer", "show", "sip1", "--json").json()
    assert shown["cards_by_status"] == {"blocked": 4}
