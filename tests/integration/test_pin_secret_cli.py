"""Commands that hash or check PINs refuse to start without a PIN secret, with one line naming
the variable; the others do not need one (rater/accounts/pinkeys.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_admin_cli_helpers import (
    BUY_TARIFF,
    CARD_TARIFF,
    Cli,
    derive_card_tariff,
    own_world,
    setup_tariffs,
)

from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

NO_SECRET = "error: RATER_PIN_SECRET is not set: PINs cannot be hashed or checked without it"


@pytest.fixture(scope="module")
def world(settings: Settings) -> Iterator[Settings]:
    with own_world(settings, topics=False) as ours:
        yield ours


@pytest.fixture
def books(world: Settings, redis: RedisLike, tmp_path: Path) -> tuple[Cli, Cli]:
    """(with the session's secret, without any): a reseller and a SIP customer with a card."""
    cli = Cli(world, tmp_path)
    setup_tariffs(cli)
    cli("reseller", "create", "res1", "--name", "R", "--credit", "100", "--buy-tariff", BUY_TARIFF)
    derive_card_tariff(cli, "res1")
    cli("customer", "create", "sip1", "--name", "S", "--reseller", "res1", "--tariff",
        CARD_TARIFF, "--balance", "30")  # fmt: skip
    cli("card", "create", "--customer", "sip1", "--count", "1", "--value", "5",
        "-o", "one.xlsx")  # fmt: skip
    bare = world.replace(pin_secret="", pin_secret_file="", stack_dir=tmp_path / "no-stack")
    return cli, Cli(bare, tmp_path)


def test_pin_commands_refuse_to_start_without_a_secret(books: tuple[Cli, Cli]) -> None:
    with_secret, without = books
    made = without("card", "create", "--customer", "sip1", "--count", "2", "--value", "5",
                   "-o", "two.xlsx", code=1, process=True)  # fmt: skip
    assert made.err.startswith(NO_SECRET)
    assert len(made.err.strip().splitlines()) == 1
    assert not (with_secret.cwd / "two.xlsx").exists()
    shown = without("customer", "show", "sip1", "--json").json()  # no PINs: no secret needed
    assert shown["cards"] == 1  # nothing of the refused batch exists
    number = with_secret("customer", "show", "sip1", "--cards", "--json").json()["card_list"][0]
    asked = without("authorize", "--card", number["card"], "--pin", "1234", "--callee",
                    "+31612345678", code=1)  # fmt: skip
    assert asked.err.startswith(NO_SECRET)
    account = without("authorize", "--account", "sip1", "--callee", "+31612345678", "--json")
    assert account.json()["allowed"] is True


def test_a_short_secret_is_refused(books: tuple[Cli, Cli], world: Settings, tmp_path: Path) -> None:
    short = Cli(world.replace(pin_secret="x" * 31, pin_secret_file=""), tmp_path)
    made = short("card", "create", "--customer", "sip1", "--count", "1", "--value", "5", code=1)
    assert "RATER_PIN_SECRET is 31 bytes; at least 32 are needed" in made.err
