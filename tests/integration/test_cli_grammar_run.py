"""README.md's "Command grammar" end to end, on the real services: old spellings still do their
work (and warn once on stderr), `card create --json` returns the numbers it made, --json money
is decimal strings, --quiet silences informational lines, and the CLI logs at WARNING unless
told otherwise (the services keep INFO)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from rater.accounts.cardsheet import read_sheet
from rater.billing.rows import insert_rows
from rater.clickhouse.executor import DriverExecutor
from rater.redis.connection import RedisLike
from rater.settings import Settings
from tests.integration.analytics_support import cdr
from tests.integration.test_admin_cli_helpers import (
    BUY_TARIFF,
    CARD_TARIFF,
    FIXTURES,
    Cli,
    Result,
    derive_card_tariff,
    own_world,
    setup_tariffs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(settings: Settings) -> Iterator[Settings]:
    """A database of our own, with one rated call on each of 2026-11-01..03 (12:00 UTC)."""
    with own_world(settings, topics=False) as ours:
        rows = [cdr(n, when=datetime(2026, 11, n, 12), price=123_450) for n in (1, 2, 3)]
        insert_rows(DriverExecutor.from_settings(ours), rows)
        yield ours


@pytest.fixture
def books(world: Settings, redis: RedisLike, tmp_path: Path) -> Cli:
    """Tariffs, a reseller with EUR 100 of credit and a SIP customer with EUR 30."""
    cli = Cli(world, tmp_path)
    setup_tariffs(cli)
    cli("reseller", "create", "res1", "--name", "Reseller One", "--credit", "100",
        "--buy-tariff", BUY_TARIFF)  # fmt: skip
    derive_card_tariff(cli, "res1")
    cli("customer", "create", "sip1", "--name", "SIP one", "--reseller", "res1",
        "--tariff", CARD_TARIFF, "--balance", "30")  # fmt: skip
    return cli


def _warned(result: Result, old: str, new: str) -> None:
    lines = [line for line in result.err.splitlines() if "deprecated" in line]
    assert len(lines) == 1, result.err
    assert old in lines[0]
    assert f"use {new}" in lines[0]


def test_card_create_json_returns_the_numbers_it_made_never_the_pins(books: Cli) -> None:
    made = books("card", "create", "--customer", "sip1", "--count", "3", "--value", "2",
                 "--json").json()  # fmt: skip
    sheet = read_sheet(Path(made["output"]))
    assert sorted(made["cards"]) == sorted(row.number for row in sheet)
    text = json.dumps(made)
    assert all(row.pin not in text.split('"') for row in sheet)
    assert made["value"] == "2.00"  # money as decimal strings
    assert made["total_value"] == "6.00"


def test_old_group_cards_still_creates_and_exports(books: Cli) -> None:
    made = books("cards", "create", "--customer", "sip1", "--count", "2", "--value", "1",
                 "--json")  # fmt: skip
    _warned(made, "`rater cards`", "`rater card`")
    assert len(made.json()["cards"]) == 2
    export = books("cards", "export", "--batch", made.json()["batch"], "-o", "e.xlsx")
    _warned(export, "`rater cards`", "`rater card`")
    assert len(read_sheet(books.cwd / "e.xlsx")) == 2


def test_old_xlsx_option_still_names_the_sheet(books: Cli) -> None:
    made = books("card", "create", "--customer", "sip1", "--count", "1", "--value", "1",
                 "--xlsx", "old.xlsx", "--json")  # fmt: skip
    _warned(made, "--xlsx", "-o/--output")
    assert (books.cwd / "old.xlsx").exists()
    export = books("card", "export", "--batch", made.json()["batch"], "--xlsx", "exp.xlsx")
    _warned(export, "--xlsx", "-o/--output")
    assert "PIN" not in [c.value for c in load_workbook(books.cwd / "exp.xlsx")["Cards"][1]]
    both = books("card", "export", "--batch", made.json()["batch"], "--xlsx", "a.xlsx",
                 "-o", "b.xlsx", code=2)  # fmt: skip
    assert "old spelling of -o/--output" in both.err


def test_old_positional_amounts_still_top_up(books: Cli) -> None:
    topped = books("customer", "topup", "sip1", "5", "--reason", "paid", "--json")
    _warned(topped, "AMOUNT", "--amount")
    assert (topped.json()["balance_before"], topped.json()["balance"]) == ("30.00", "35.00")
    made = books("card", "create", "--customer", "sip1", "--count", "1", "--value", "1",
                 "--json").json()  # fmt: skip
    card = books("card", "topup", made["cards"][0], "2", "--reason", "paid", "--json")
    _warned(card, "AMOUNT", "--amount")
    assert card.json()["balance"] == "3.00"
    missing = books("card", "topup", made["cards"][0], "--reason", "paid", code=2)
    assert "--amount" in missing.err


def test_old_tariff_version_options(books: Cli) -> None:
    shown = books("tariff", "show", BUY_TARIFF, "--version", "1", "--json")
    _warned(shown, "--version", "--tariff-version")
    assert shown.json()["version"] == 1
    new = books("tariff", "show", BUY_TARIFF, "--tariff-version", "1", "--json")
    assert new.json() == shown.json()
    assert new.err == ""
    exported = books("tariff", "export", BUY_TARIFF, "--version", "1")
    _warned(exported, "--version", "--tariff-version")
    assert exported.out == books("tariff", "export", BUY_TARIFF, "--tariff-version", "1").out
    missing = books("tariff", "show", BUY_TARIFF, "--version", "9", code=1)
    assert "9" in missing.err  # the old spelling's value is the one used
    derived = books("tariff", "derive", "--base", BUY_TARIFF, "--base-version", "1",
                    "--markup", "10", "--name", "plus ten", "--json")  # fmt: skip
    _warned(derived, "--base-version", "--tariff-version")
    assert f"{BUY_TARIFF}@1" in derived.json()["source"]


def test_old_report_options_still_write_files(books: Cli) -> None:
    daily = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-02",
                  "--csv", "d.csv")  # fmt: skip
    _warned(daily, "--csv", "-o FILE.csv")
    rows = list(csv.DictReader((books.cwd / "d.csv").open(newline="")))
    assert [row["day"] for row in rows] == ["2026-11-01", "2026-11-02"]
    xlsx = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-01",
                 "--xlsx", "d.xlsx")  # fmt: skip
    _warned(xlsx, "--xlsx", "-o FILE.xlsx")
    assert (books.cwd / "d.xlsx").exists()
    zone = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-01",
                 "--tz", "Europe/Amsterdam", "--json")  # fmt: skip
    _warned(zone, "--tz", "--timezone")
    new = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-01",
                "--timezone", "Europe/Amsterdam", "--json")  # fmt: skip
    assert zone.out == new.out


def test_report_json_is_one_object_per_row_with_money_as_strings(books: Cli) -> None:
    out = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-03", "--json").out
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["day"] for row in rows] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [row["revenue"] for row in rows] == ["0.12345"] * 3  # exact, a string
    for row in rows:
        assert not any(isinstance(v, float) for v in row.values()), row
    written = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-03",
                    "-o", "d.jsonl")  # fmt: skip
    assert (books.cwd / "d.jsonl").read_text().splitlines() == out.splitlines()
    as_csv = books("report", "daily", "--from", "2026-11-01", "--to", "2026-11-03",
                   "--format", "csv").out  # fmt: skip
    assert [row["revenue"] for row in csv.DictReader(as_csv.splitlines())] == ["0.12345"] * 3
    assert "wrote 3 row(s)" in written.err
    quiet = books("--quiet", "report", "daily", "--from", "2026-11-01", "--to", "2026-11-03",
                  "-o", "q.jsonl")  # fmt: skip
    assert quiet.err == ""
    assert quiet.out == ""


def test_listings_print_one_json_object_per_line(books: Cli) -> None:
    tariffs = [json.loads(line) for line in books("tariff", "list", "--json").out.splitlines()]
    assert {t["name"] for t in tariffs} >= {BUY_TARIFF, CARD_TARIFF}
    books("switch", "set", "sw-grammar", "--country", "31")
    switches = [json.loads(line) for line in books("switch", "list", "--json").out.splitlines()]
    assert "sw-grammar" in {s["switch"] for s in switches}
    shown = books("switch", "show", "sw-grammar", "--json").json()
    assert shown["country"] == "31"


def test_the_cli_logs_at_warning_unless_told(books: Cli) -> None:
    """`tariff import` logs "tariff saved" at INFO: it stays out of a command's output."""
    env = {"RATER_LOG_LEVEL": None}
    deck = str(FIXTURES / "buy_rates.csv")
    plain = books.run_env(env, "tariff", "import", deck, "--name", "log test")
    assert "tariff saved" not in plain.err
    assert "saved 'log test' version 1" in plain.out
    told = books.run_env(env, "--log-level", "INFO", "tariff", "import", deck, "--name", "log test")
    assert "tariff saved" in told.err
    by_env = books.run_env({"RATER_LOG_LEVEL": "INFO"}, "tariff", "import", deck,
                           "--name", "log test")  # fmt: skip
    assert "tariff saved" in by_env.err
