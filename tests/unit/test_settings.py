"""Settings: RATER_* parsing, overrides, derived values and the errors for bad values."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from rater.errors import ConfigError
from rater.settings import Secret, Settings


def test_defaults_point_at_the_local_stack() -> None:
    settings = Settings.from_env({})
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert (settings.kafka_port, settings.redis_port, settings.clickhouse_port) == (
        19092,
        16379,
        19000,
    )
    assert settings.clickhouse_http_port == 18123
    assert (settings.topic_cdrs, settings.topic_dlq, settings.topic_meta) == (
        "cdrs",
        "cdrs.dlq",
        "cdrs.meta",
    )


def test_environment_values_are_converted_to_field_types() -> None:
    settings = Settings.from_env(
        {
            "RATER_KAFKA_BOOTSTRAP": "k1:29092,k2:29092",
            "RATER_PARTITIONS": "12",
            "RATER_REDIS_URL": "redis://127.0.0.1:29379/3",
            "RATER_CLICKHOUSE_PORT": "29000",
            "RATER_STACK_DIR": "/tmp/some-stack",
            "RATER_PIN_SECRET": "hunter2",
            "PATH": "/usr/bin",  # not ours: ignored
        }
    )
    assert settings.partitions == 12
    assert settings.kafka_port == 29092  # the first bootstrap server's port
    assert (settings.redis_port, settings.redis_db) == (29379, 3)
    assert settings.clickhouse_port == 29000
    assert settings.stack_dir == Path("/tmp/some-stack")
    assert isinstance(settings.pin_secret, Secret)
    assert settings.pin_secret == "hunter2"


def test_there_is_no_default_pin_secret() -> None:
    """A fixed default let anyone with a Redis dump try the 10^4 PINs of every card."""
    assert Settings().pin_secret == ""
    assert Settings.from_env({}).pin_secret == ""


def test_secrets_do_not_print_themselves() -> None:
    settings = Settings.from_env({"RATER_PIN_SECRET": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.pin_secret)


def test_other_rater_prefixed_variables_are_ignored() -> None:
    assert Settings.from_env({"RATER_TEST_SOMETHING": "x"}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RATER_PARTITIONS", "four", r"RATER_PARTITIONS='four' is not a valid int"),
        ("RATER_CLICKHOUSE_PORT", "9000.5", r"RATER_CLICKHOUSE_PORT='9000\.5' is not a valid int"),
        ("RATER_PARTITIONS", "0", r"RATER_PARTITIONS must be >= 1, not 0"),
        ("RATER_BATCH_MAX_RECORDS", "0", r"RATER_BATCH_MAX_RECORDS must be >= 1"),
        ("RATER_LOG_FORMAT", "xml", r"RATER_LOG_FORMAT must be console or json, not 'xml'"),
        ("RATER_RESERVATION_RING_S", "7200", r"RING_S \(7200\) must be less than .*TTL_S \(7200\)"),
        ("RATER_MAX_CALLS_PER_CARD", "0", r"RATER_MAX_CALLS_PER_CARD must be >= 1, not 0"),
        (
            "RATER_PIN_LOCK_SCHEDULE_S",
            "15m",
            r"RATER_PIN_LOCK_SCHEDULE_S='15m' must be lock lengths",
        ),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_replace_overrides_ignores_none_and_converts_strings() -> None:
    base = Settings.from_env({"RATER_PARTITIONS": "8"})
    changed = base.replace(partitions=None, clickhouse_port="29000", topic_cdrs="cdrs-x")
    assert changed.partitions == 8  # None: the CLI option was not given
    assert changed.clickhouse_port == 29000
    assert changed.topic_cdrs == "cdrs-x"
    assert base.topic_cdrs == "cdrs"  # the original is untouched


def test_replace_refuses_unknown_names_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'kafka'"):
        Settings().replace(kafka="x:1")
    with pytest.raises(ConfigError, match="RATER_PARTITIONS must be >= 1"):
        Settings().replace(partitions=0)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().partitions = 3  # type: ignore[misc]


def test_redis_url_without_port_or_db_uses_redis_defaults() -> None:
    settings = Settings.from_env({"RATER_REDIS_URL": "redis://cache.internal"})
    assert (settings.redis_port, settings.redis_db) == (6379, 0)
