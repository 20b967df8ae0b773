"""Text from records and users (tariff names and destinations, switch settings, reasons, account
ids) reaches the terminal with its control characters shown, never sent (rater/escape.py
terminal), in every command's text output; --json stays valid JSON with the text intact."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rater.redis.connection import RedisLike
from rater.settings import Settings
from tests.integration.test_admin_cli_helpers import (
    BUY_TARIFF,
    CARD_TARIFF,
    Cli,
    Result,
    derive_card_tariff,
    own_world,
    setup_tariffs,
)

pytestmark = pytest.mark.integration

#: clears the screen, turns text red, reorders what follows, overwrites the line
HOSTILE = "\x1b[2J\x1b[31mred\u202eevil\rover"
RAW = ("\x1b", "\u202e", "\r")
#: the same without the carriage return, for a deck (a CSV line ends there)
IN_FILE = HOSTILE.replace("\r", "")


def _clean(result: Result) -> None:
    for stream in (result.out, result.err):
        for char in RAW:
            assert char not in stream, f"{char!r} reached the terminal: {result}"


@pytest.fixture(scope="module")
def world(settings: Settings) -> Iterator[Settings]:
    with own_world(settings, topics=False) as ours:
        yield ours


@pytest.fixture
def cli(world: Settings, redis: RedisLike, tmp_path: Path) -> Cli:
    return Cli(world, tmp_path)


def test_tariff_list_and_show(cli: Cli) -> None:
    deck = cli.cwd / "hostile.csv"
    deck.write_text(f"prefix,destination,rate\n31,Netherlands {IN_FILE},0.01\n", encoding="utf-8")
    name = f"deck {HOSTILE}"
    _clean(cli("tariff", "import", str(deck), "--name", name))
    listed = cli("tariff", "list")
    _clean(listed)
    assert "\\x1b[2J" in listed.out
    shown = cli("tariff", "show", name)
    _clean(shown)
    assert "Netherlands \\x1b[2J" in shown.out
    rows = json.loads(cli("tariff", "show", name, "--json").out)["rows_shown"]
    assert rows[0]["destination"] == f"Netherlands {IN_FILE}"  # JSON keeps the text
    _clean(cli("tariff", "derive", "--base", name, "--markup", "1", "--name", f"d {HOSTILE}"))
    _clean(cli("tariff", "delete", name, "--yes"))


def test_switch_settings(cli: Cli) -> None:
    _clean(cli("switch", "set", "sw-hostile", "--tech-prefix", f"^{re.escape(HOSTILE)}#"))
    shown = cli("switch", "show", "sw-hostile")
    _clean(shown)
    assert "\\x1b\\[2J" in shown.out
    _clean(cli("switch", "list"))


def test_reasons_and_account_ids(cli: Cli) -> None:
    setup_tariffs(cli)
    cli("reseller", "create", "res1", "--name", "Reseller One", "--credit", "100",
        "--buy-tariff", BUY_TARIFF)  # fmt: skip
    derive_card_tariff(cli, "res1")
    cli("customer", "create", "sip1", "--name", "SIP one", "--reseller", "res1",
        "--tariff", CARD_TARIFF, "--balance", "30")  # fmt: skip
    topped = cli("customer", "topup", "sip1", "--amount", "1", "--reason", HOSTILE)
    _clean(topped)
    assert "\\x1b[2J" in topped.out
    _clean(cli("customer", "correct", "sip1", "--deduct", "1", "--reason", HOSTILE))
    _clean(cli("reseller", "credit", "res1", "--add", "1", "--reason", HOSTILE))
    refused = cli("authorize", "--account", f"nobody{HOSTILE}", "--callee", "+31612345678",
                  code=2)  # fmt: skip
    _clean(refused)
