"""Each switch format end to end: `rater ingest` publishes the fixtures of tests/fixtures/switches
to the real topic, a worker rates them, ClickHouse holds them in UTC, B-legs are counted and
never stored; a second ingest charges nothing; the same call id from two switches is two CDRs."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pipeline_world import SELL, env_of, make_world, own_topics, run_in_process

from rater.cli.main import cli
from rater.pipeline import deadletter as dlq
from rater.pipeline.formats.common import dump_options
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).parents[1] / "fixtures" / "switches"
S = 1_790_002_800  # 2026-09-21T15:00:00Z
MAPPING = FIXTURES / "mapping" / "cdr_custom.toml"


def ingest(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(cli, ["ingest", *args], env=env_of(settings))
    assert result.exit_code == 0, result.output
    return result.output


def switches(redis: RedisLike, tag: str) -> dict[str, str]:
    """The test's switches (names tagged: other tests' CDRs never share an identity)."""
    registry = SwitchRegistry(redis)
    names = {k: f"{k}-{tag}" for k in ("fs", "ast", "ast-json", "kam", "kam2", "custom")}
    made = [
        SwitchSettings(name=names["fs"], format="freeswitch-json"),
        SwitchSettings(
            name=names["ast"], format="asterisk-csv", country_code="31",
            timezone="Europe/Amsterdam",
        ),
        SwitchSettings(
            name=names["ast-json"], format="asterisk-json", country_code="31",
            timezone="Europe/Moscow",
        ),
        SwitchSettings(name=names["kam"], format="kamailio-json", country_code="31"),
        SwitchSettings(name=names["kam2"], format="kamailio-json", country_code="31"),
        SwitchSettings(
            name=names["custom"], format="mapping", country_code="31",
            timezone="Europe/Amsterdam", mapping=MAPPING.read_text(),
            options=dump_options({"fractions": "up"}),
        ),
    ]  # fmt: skip
    for settings in made:
        registry.set(settings)
    return names


def _rows(ch: Any, switch: str) -> list[dict[str, Any]]:
    names = ("cdr_id", "outcome", "reason", "price", "number", "billsec", "start", "answer",
             "end", "customer")  # fmt: skip
    found = ch.execute(
        "SELECT cdr_id, outcome, reason, price, number, billsec, toUnixTimestamp(start_time), "
        "toUnixTimestamp(answer_time), toUnixTimestamp(end_time), customer FROM rated_cdrs "
        "WHERE switch = %(s)s AND sign = 1 ORDER BY start_time, cdr_id",
        {"s": switch},
    )
    return [dict(zip(names, row, strict=True)) for row in found]


def test_every_format_end_to_end_charged_once(
    settings: Settings, redis: RedisLike, ch: Any
) -> None:
    ours = own_topics(settings, "formats")
    world = make_world(ours, redis, cards=0)
    tag = uuid.uuid4().hex[:6]
    names = switches(redis, tag)
    customer = keys.customer("res1", "cust1")

    def ingest_all() -> None:
        ingest(ours, str(FIXTURES / "freeswitch"), "--switch", names["fs"])
        ingest(ours, str(FIXTURES / "asterisk" / "Master.csv"), "--switch", names["ast"])
        ingest(ours, str(FIXTURES / "asterisk" / "cdr_kafka.jsonl"), "--switch", names["ast-json"])
        ingest(ours, str(FIXTURES / "kamailio" / "acc_json.jsonl"), "--switch", names["kam"])
        ingest(ours, str(FIXTURES / "mapping" / "cdr_custom.csv"), "--switch", names["custom"])

    ingest_all()
    summary = run_in_process(ours)
    assert summary.outcomes.get(("other leg", ""), 0) == 1  # the FreeSWITCH B-leg

    fs = _rows(ch, names["fs"])
    assert [(r["cdr_id"], r["outcome"], r["billsec"]) for r in fs] == [
        ("9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21", "rated", 125),
        ("5c2e9f10-3b4a-4d6c-8e7f-90a1b2c3d4e5", "rated", 61),
        ("7a8b9c0d-1e2f-4a3b-9c4d-5e6f7a8b9c0d", "unanswered", 0),
    ]
    assert (fs[0]["start"], fs[0]["answer"], fs[0]["end"]) == (S, S + 5, S + 130)
    assert fs[0]["price"] == world.expected(SELL, "+493012345678", 125)

    ast = _rows(ch, names["ast"])
    assert [(r["outcome"], r["reason"], r["number"]) for r in ast] == [
        ("rated", "", "493012345678"),
        ("unanswered", "", "31201234567"),
        ("unrated", f"no route: 112 in sell tariff {SELL}", "112"),  # a short number
    ]
    assert (ast[0]["start"], ast[0]["answer"], ast[0]["end"]) == (S, S + 5, S + 130)  # local->UTC

    kafka_json = _rows(ch, names["ast-json"])
    assert [(r["cdr_id"], r["outcome"], r["start"]) for r in kafka_json] == [
        ("1790004800.21/21", "rated", S + 2000),
        ("1790005000.23/23", "unanswered", S + 2200),  # a parallel dial: both CDRs kept
        ("1790005000.23/24", "rated", S + 2200),
    ]

    kam = _rows(ch, names["kam"])
    assert [(r["outcome"], r["billsec"], r["start"], r["answer"]) for r in kam] == [
        ("rated", 66, S + 3000, S + 3004),  # 65.432 s bills 66
        ("unanswered", 0, S + 3100, 0),
    ]
    assert kam[0]["price"] == world.expected(SELL, "+493012345678", 66)

    custom = _rows(ch, names["custom"])
    assert [(r["cdr_id"], r["outcome"], r["billsec"]) for r in custom] == [
        ("1790003800.11", "rated", 126),
        ("1790004000.13", "unanswered", 0),
    ]

    letters = [
        letter for letter in asyncio.run(dlq.read_all(ours))
        if (names["ast"].encode()) in dict(letter.origin_headers).values()
    ]  # fmt: skip
    assert [letter.reason for letter in letters] == ["missing field: dst"]

    balance = redis.hget(customer, "bal")
    stored = ch.execute("SELECT count() FROM rated_cdrs WHERE switch LIKE %(t)s", {"t": f"%{tag}"})
    ingest_all()  # the same files again: every CDR is a duplicate
    again = run_in_process(ours)
    assert again.outcomes.get(("duplicate", ""), 0) == 13  # every stored CDR
    assert redis.hget(customer, "bal") == balance
    assert (
        ch.execute("SELECT count() FROM rated_cdrs WHERE switch LIKE %(t)s", {"t": f"%{tag}"})
        == stored
    )


def test_the_same_call_id_from_two_switches_is_two_cdrs(
    settings: Settings, redis: RedisLike, ch: Any
) -> None:
    ours = own_topics(settings, "two-proxies")
    make_world(ours, redis, cards=0)
    tag = uuid.uuid4().hex[:6]
    names = switches(redis, tag)
    path = FIXTURES / "kamailio" / "acc_json.jsonl"
    ingest(ours, str(path), "--switch", names["kam"])
    ingest(ours, str(path), "--switch", names["kam2"])
    run_in_process(ours)
    one, two = _rows(ch, names["kam"]), _rows(ch, names["kam2"])
    assert [r["cdr_id"] for r in one] == [r["cdr_id"] for r in two]
    assert [r["outcome"] for r in one + two] == ["rated", "unanswered"] * 2
    record = orjson.loads(path.read_bytes().splitlines()[0])
    assert one[0]["cdr_id"] == f"{record['call_id']};from-tag={record['from_tag']}"
