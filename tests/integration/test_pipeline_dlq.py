"""Dead letters after a fix: a switch sends national numbers before its country is set; they
are dead-lettered, the switch is fixed, `rater dlq replay` publishes them again and they are
rated. A second replay publishes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from pipeline_world import cdr, env_of, make_world, publish, run_in_process

from rater.cli.main import cli
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration


def _rater(settings: Settings, *args: str) -> str:
    env = {k: v for k, v in env_of(settings).items() if k.startswith("RATER_")}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_dead_letters_are_rated_after_the_switch_is_fixed_and_replayed(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    make_world(kafka_topics, redis)
    tag = uuid.uuid4().hex[:6]
    switch = f"sw-{tag}"
    publish(kafka_topics, [cdr(f"{tag}-{i}", switch=switch, callee="0301234567") for i in range(5)])
    first = run_in_process(kafka_topics)
    assert sum(n for (o, _), n in first.outcomes.items() if o == "invalid") == 5
    shown = _rater(kafka_topics, "dlq", "show", "--limit", "50")
    assert "has no country code" in shown

    SwitchRegistry(redis).set(SwitchSettings(name=switch, country_code="49"))
    assert "replayed 5 record(s)" in _rater(kafka_topics, "dlq", "replay")
    assert "replayed 0 record(s)" in _rater(kafka_topics, "dlq", "replay")
    run_in_process(kafka_topics)
    rows = ch.execute(
        "SELECT outcome, number, destination FROM rated_cdrs WHERE cdr_id LIKE %(p)s",
        {"p": f"{tag}-%"},
    )
    assert len(rows) == 5
    assert {tuple(r) for r in rows} == {("rated", "49301234567", "Berlin")}
