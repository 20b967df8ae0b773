"""SwitchRegistry in the real Redis, and `rater switch` through click's runner."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rater.cli.main import cli
from rater.errors import ConfigError
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.numbers import normalise_number
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration


def test_defaults_set_list_and_generation(redis: RedisLike) -> None:
    registry = SwitchRegistry(redis)
    assert registry.get("pbx1") == SwitchSettings(name="pbx1")
    assert (registry.list(), registry.generation()) == ([], 0)
    nanp = SwitchSettings(
        name="a2b",
        country_code="1",
        trunk_prefix="1",
        tech_prefix=r"^\d{5}#",
        timezone="America/New_York",
    )
    registry.set(nanp)
    registry.set(SwitchSettings(name="ams", country_code="31"))
    assert registry.get("a2b") == nanp
    assert [s.name for s in registry.list()] == ["a2b", "ams"]
    assert registry.generation() == 2
    assert normalise_number("78816#5082159142", registry.get("a2b")) == "15082159142"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"country_code": "031"}, "country code"),
        ({"country_code": "abc"}, "country code"),
        ({"trunk_prefix": "x"}, "trunk prefix"),
        ({"tech_prefix": "(["}, "not a regular expression"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"name": " "}, "needs a name"),
    ],
)
def test_bad_settings_are_refused(redis: RedisLike, change: dict[str, str], message: str) -> None:
    settings = SwitchSettings(name="x", **{k: v for k, v in change.items() if k != "name"})
    if "name" in change:
        settings = SwitchSettings(name=change["name"])
    with pytest.raises(ConfigError, match=message):
        SwitchRegistry(redis).set(settings)
    assert SwitchRegistry(redis).list() == []


def root_options(settings: Settings) -> list[str]:
    return [
        "--redis-url", settings.redis_url,
        "--clickhouse-port", str(settings.clickhouse_port),
        "--database", settings.clickhouse_database,
    ]  # fmt: skip


def test_switch_cli(redis: RedisLike, settings: Settings) -> None:
    runner = CliRunner()
    base = root_options(settings)
    result = runner.invoke(
        cli, [*base, "switch", "set", "a2b", "--country", "1", "--trunk-prefix", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "a2b: country 1, trunk prefix 1" in result.output
    # a second set changes only what it names
    result = runner.invoke(cli, [*base, "switch", "set", "a2b", "--timezone", "America/Chicago"])
    assert result.exit_code == 0, result.output
    assert SwitchRegistry(redis).get("a2b").country_code == "1"
    assert SwitchRegistry(redis).get("a2b").timezone == "America/Chicago"
    result = runner.invoke(cli, [*base, "switch", "show", "a2b"])
    assert "time zone America/Chicago" in result.output
    result = runner.invoke(cli, [*base, "switch", "show", "never-set"])
    assert "never-set: country -, trunk prefix 0" in result.output
    result = runner.invoke(cli, [*base, "switch", "list"])
    assert result.output.count("\n") == 1
    result = runner.invoke(cli, [*base, "switch", "set", "bad", "--country", "0"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
