"""`rater tariff` import / list / show / export / derive through click's runner, real services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from clickhouse_driver import Client

from rater.cli.main import cli
from rater.errors import NotFound
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.importers import read_tariff
from rater.tariffs.model import Steps
from rater.tariffs.store import TariffStore

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tariffs"
Invoke = Callable[..., Result]
SEED_NAME = "Calling cards rates 40% - 60/60 billing - 29 sept 2008"


@pytest.fixture
def run(redis: RedisLike, settings: Settings) -> Invoke:
    runner = CliRunner()
    base = [
        "--redis-url", settings.redis_url,
        "--clickhouse-port", str(settings.clickhouse_port),
        "--database", settings.clickhouse_database,
    ]  # fmt: skip

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, [*base, *args])

    return invoke


def test_import_list_show_and_new_versions(
    run: Invoke, redis: RedisLike, settings: Settings
) -> None:
    result = run("tariff", "import", str(FIXTURES / "rate_notice.csv"), "--name", "notice")
    assert result.exit_code == 0, result.output
    assert "header on line 6" in result.output
    assert "rows read: 7  prefixes: 16  destinations: 7  closed codes: 1" in result.output
    assert "saved 'notice' version 1" in result.output
    assert "from the beginning of time" in result.output

    result = run(
        "tariff", "import", str(FIXTURES / "rate_notice.csv"), "--name", "notice",
        "--effective-from", "2026-04-01", "--steps", "60/60", "--decimals", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "version 2" in result.output
    assert "2026-04-01 00:00:00 UTC" in result.output
    store = TariffStore(redis, settings)
    second = store.get("notice")
    assert (second.version, second.steps, second.decimals) == (2, Steps(60, 60), 2)
    assert second.effective_from == datetime(2026, 4, 1, tzinfo=UTC)

    result = run("tariff", "list")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("notice")]
    assert len(lines) == 2
    assert "2026-04-01 00:00:00" in lines[1]

    result = run("tariff", "show", "notice", "--tariff-version", "1", "--prefix", "233271234")
    assert result.exit_code == 0, result.output
    assert "23327" in result.output
    assert "2026-03-12" in result.output
    assert "34609" not in result.output


def test_import_errors_exit_1_and_save_nothing(
    run: Invoke, tmp_path: Path, redis: RedisLike, settings: Settings
) -> None:
    deck = tmp_path / "bad.csv"
    deck.write_text("Dial Code,Rate/Min\n44,0.01\n44,0.02\n45,0.1234567\n")
    result = run("tariff", "import", str(deck), "--name", "bad")
    assert result.exit_code == 1
    assert "line 3, column 'Dial Code': duplicate prefix 44" in result.output
    assert "line 4, column 'Rate/Min': '0.1234567' has more than 6 decimals" in result.output
    assert "nothing imported" in result.output
    assert TariffStore(redis, settings).names() == []


def test_currency_from_the_letterhead_or_refused(run: Invoke, tmp_path: Path) -> None:
    deck = tmp_path / "usd.csv"
    deck.write_text("Carrier X\nCurrency:,USD per minute\n\nCode,Rate\n1,0.01\n")
    result = run("tariff", "import", str(deck), "--name", "usd", "--currency", "EUR")
    assert result.exit_code == 1
    assert "line 2: the deck says its currency is USD" in result.output
    result = run("tariff", "import", str(deck), "--name", "usd")
    assert result.exit_code == 0, result.output
    assert "version 1: 1 rows, USD" in result.output


def test_delete(run: Invoke, redis: RedisLike, settings: Settings) -> None:
    assert run("tariff", "import", str(FIXTURES / "canonical.csv"), "--name", "gone").exit_code == 0
    result = run("tariff", "delete", "gone", "--yes")
    assert result.exit_code == 0, result.output
    assert "deleted 1 version(s) of 'gone'" in result.output
    assert TariffStore(redis, settings).names() == []
    assert isinstance(run("tariff", "delete", "gone", "--yes").exception, NotFound)


def test_dry_run_saves_nothing(run: Invoke, redis: RedisLike, settings: Settings) -> None:
    result = run("tariff", "import", str(FIXTURES / "canonical.csv"), "--name", "c", "--dry-run")
    assert result.exit_code == 0, result.output
    assert TariffStore(redis, settings).names() == []


def test_export_csv_and_xlsx_round_trip(run: Invoke, tmp_path: Path) -> None:
    assert run("tariff", "import", str(FIXTURES / "canonical.csv"), "--name", "c").exit_code == 0
    result = run("tariff", "export", "c")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "prefix,destination,rate,connect_fee,steps,first_rate,effective_from,effective_to"
    )
    assert "316,Netherlands Mobile,0.045000,0.010000,60/60,0.060000,," in result.output
    original = read_tariff(FIXTURES / "canonical.csv", name="c")
    for suffix in ("csv", "xlsx"):
        out = tmp_path / f"c.{suffix}"
        assert run("tariff", "export", "c", "-o", str(out)).exit_code == 0
        again = read_tariff(out, name="c")
        assert {(r.prefix, r.rate, r.effective_from) for r in again.rows} == {
            (r.prefix, r.rate, r.effective_from) for r in original.rows
        }


def test_derive_the_seeds_table(
    run: Invoke, redis: RedisLike, settings: Settings, ch: Client, tmp_path: Path
) -> None:
    assert (
        run("tariff", "import", str(FIXTURES / "astpp_style.csv"), "--name", "buy").exit_code == 0
    )
    result = run(
        "tariff",
        "derive",
        "--base",
        "buy",
        "--markup",
        "40",
        "--steps",
        "60/60",
        "--name",
        SEED_NAME,
    )
    assert result.exit_code == 0, result.output
    assert "derived from buy@1 (+40% markup)" in result.output
    sell = TariffStore(redis, settings).get(SEED_NAME)
    rates = {row.prefix: (row.rate, row.connect_fee, row.steps) for row in sell.rows}
    assert rates["2782"] == (138_180, 0, None)  # 0.0987 x 1.4
    assert rates["2783"] == (143_220, 14_000, None)
    assert sell.steps == Steps(60, 60)
    copied = ch.execute(
        "SELECT count(), min(steps_minimum), max(steps_increment) FROM tariff_rows "
        "WHERE name = %(n)s",
        {"n": SEED_NAME},
    )
    assert copied == [(4, 60, 60)]

    sheet = tmp_path / "cards.xlsx"
    result = run("tariff", "export", SEED_NAME, "-o", str(sheet))
    assert result.exit_code == 0, result.output
    assert read_tariff(sheet, name="again").rows[0].rate == 57_680  # 0.0412 x 1.4 for ^27.*

    result = run("tariff", "derive", "--base", "buy", "--name", "x")
    assert result.exit_code == 2
    assert "exactly one of --markup P or --margin P" in result.output
    result = run("tariff", "derive", "--base", "nope", "--margin", "10", "--name", "x")
    assert isinstance(result.exception, NotFound)
