"""Poison records through the real stages and services (docs/DESIGN.md section 4): no record
stops a batch, switch names are compared exactly, metric labels stay in closed sets, a failing
debit is narrowed to its record, dead letters fit the topic."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_world import (
    RESELLER,
    SELL,
    cdr,
    make_world,
    own_topics,
    pipeline_settings,
    publish,
    run_in_process,
)
from prometheus_client import REGISTRY

from rater.accounts.api import Accounts
from rater.pipeline.fates import count, observe
from rater.pipeline.flow import Pipeline, Prepared
from rater.reasons import Kind
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


_offsets = itertools.count(1)


def _records(values: list[bytes], partition: int = 0) -> list[Rec]:
    return [Rec(partition, next(_offsets), None, v) for v in values]


def _pipeline(settings: Settings, redis: RedisLike) -> Pipeline:
    """The stages up to the debit (prepare needs no producer)."""
    topic_id = f"poison-{uuid.uuid4().hex[:8]}"
    return Pipeline(pipeline_settings(settings), topic_id, redis, producer=None)  # type: ignore[arg-type]


def _prepare(pipeline: Pipeline, records: list[Rec]) -> Prepared:
    return pipeline._rate_and_debit(records)


def test_a_switch_ending_in_nul_does_not_change_another_switchs_numbers(
    settings: Settings, redis: RedisLike
) -> None:
    make_world(settings, redis)
    SwitchRegistry(redis).set(SwitchSettings(name="de1", country_code="49"))
    values = [orjson.dumps(cdr(f"n{i}", switch=s, callee="0301234567"))
              for i, s in enumerate(["de1", "de1\x00", "de1"])]  # fmt: skip
    prepared = _prepare(_pipeline(settings, redis), _records(values))
    rows = prepared.rows
    assert rows.cdrs.cdr_id.tolist() == ["n0", "n2"]
    assert rows.number.tolist() == ["49301234567", "49301234567"]
    assert rows.outcome.tolist() == ["rated", "rated"]
    assert [(r.reason.kind, r.switch) for r in prepared.rejects] == [(Kind.BAD_NUMBER, "de1\x00")]


def test_a_debit_that_fails_for_one_cdr_is_narrowed_to_it(
    settings: Settings, redis: RedisLike
) -> None:
    make_world(settings, redis)
    Accounts(settings, redis, actor="test").create_customer(
        "evil", "Corrupted", reseller_id=RESELLER, tariff=SELL, balance="5"
    )
    # a balance that is not an integer any more (a hand edit, a bad restore): the debit
    # script's HINCRBY on it fails, for this customer's CDRs only
    redis.hset(keys.customer(RESELLER, "evil"), "bal", "five euros")
    before = int(redis.hget(keys.customer(RESELLER, "cust1"), "bal") or 0)
    values = [orjson.dumps(cdr(f"d{i}", account=a))
              for i, a in enumerate(["cust1", "evil", "cust1", "cust1"])]  # fmt: skip
    prepared = _prepare(_pipeline(settings, redis), _records(values))
    rows = prepared.rows
    assert rows.outcome.tolist() == ["rated", "unrated", "rated", "rated"]
    assert rows.reason[1].kind == Kind.DEBIT_ERROR
    assert "ResponseError" in rows.reason[1].detail
    assert rows.price[1] == 0
    after = int(redis.hget(keys.customer(RESELLER, "cust1"), "bal") or 0)
    assert before - after == int(rows.price[[0, 2, 3]].sum()) > 0


def _series() -> int:
    return sum(len(metric.samples) for metric in REGISTRY.collect())


def _observe(prepared: Prepared) -> None:
    count(prepared.report, prepared.rows, prepared.duplicates, prepared.rejects)
    observe(prepared.report, prepared.rows, prepared.replayed)


def test_ten_thousand_bad_values_do_not_grow_the_metrics(
    settings: Settings, redis: RedisLike
) -> None:
    make_world(settings, redis)
    SwitchRegistry(redis).set(SwitchSettings(name="sw1"))
    pipeline = _pipeline(settings, redis)

    def batch(tag: str, n: int) -> list[bytes]:
        out = []
        for i in range(n):
            out.append(orjson.dumps(cdr(f"{tag}-c{i}", card=f"card-{tag}-{i}x")))  # unknown card
            out.append(orjson.dumps(cdr(f"{tag}-s{i}", switch=f"sw-{tag}-{i}", callee=f"x{i}")))
            out.append(orjson.dumps(cdr(f"{tag}-a{i}", account=f"acct {tag} {i}")))
        return out

    _observe(_prepare(pipeline, _records(batch("warm", 5))))
    before = _series()
    prepared = _prepare(pipeline, _records(batch("many", 10_000)))
    _observe(prepared)
    assert _series() == before
    assert prepared.report.outcomes == {
        ("unrated", "unknown card"): 10_000,
        ("unrated", "unknown account"): 10_000,
        ("invalid", "bad number"): 10_000,
    }
    assert set(prepared.report.by_switch) == {("sw1", "unrated"), ("other", "invalid")}


# ------------------------------------------------------------------------ property test
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ("cdr_id", "switch", "account", "card", "caller", "callee", "start_time",
           "answer_time", "end_time", "duration", "billsec", "auth_id")  # fmt: skip
_GOOD = {
    "account": st.sampled_from(["cust1", "cust2", "nobody", ""]),
    "callee": st.sampled_from(["+493012345678", "+4412345678", "0301234567", "+86139"]),
    "billsec": st.integers(-5, 200_000),
    "switch": st.sampled_from(["sw1", "sw1\x00", "de1", "x" * 300]),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                **dict.fromkeys(_FIELDS, _json),
                **_GOOD,
            },
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 2),
)
def test_arbitrary_records_never_stop_the_prepare_stage(
    settings: Settings, redis: RedisLike, changes: list[dict[str, Any]], partition: int
) -> None:
    if not redis.exists(keys.account_index("cust1")):
        make_world(settings, redis)
        SwitchRegistry(redis).set(SwitchSettings(name="de1", country_code="49"))
    values = [
        json.dumps({**cdr(f"p{next(_offsets)}"), **change}, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
        for change in changes
    ]
    records = _records(values, partition)
    prepared = _prepare(_pipeline(settings, redis), records)
    assert len(prepared.rows) + prepared.duplicates + len(prepared.rejects) == len(records)
    for reason in prepared.rows.reason.tolist():
        assert reason is None or len(reason.text) < 1000


# ------------------------------------------------------------------------ dead letters
async def _raw_letters(settings: Settings) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        # the topic was made with settings.partitions partitions (kafka.ensure_topics): no
        # metadata look-up, which a busy broker may answer before it lists a new topic
        tps = [TopicPartition(settings.topic_dlq, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        left = {tp for tp in tps if ends[tp] > 0}
        deadline = asyncio.get_running_loop().time() + 60
        while left and asyncio.get_running_loop().time() < deadline:
            for tp, records in (await consumer.getmany(*left, timeout_ms=500)).items():
                out += records
                if records and records[-1].offset + 1 >= ends[tp]:
                    left.discard(tp)
        return out
    finally:
        await consumer.stop()


def test_a_callee_of_megabytes_is_dead_lettered_within_the_size_limit(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    kafka_topics = own_topics(kafka_topics, "huge")
    make_world(kafka_topics, redis)
    tag = uuid.uuid4().hex[:6]
    huge = orjson.dumps(cdr(f"{tag}-huge", callee="+31" + "x" * 4_500_000))
    publish(kafka_topics, [huge, cdr(f"{tag}-ok")])
    summary = run_in_process(kafka_topics)
    assert summary.outcomes == {("invalid", "bad number"): 1, ("rated", ""): 1}
    assert summary.dead_lettered == 1
    stored = ch.execute("SELECT cdr_id FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{tag}-%"})
    assert stored == [(f"{tag}-ok",)]
    letters = [
        r for r in asyncio.run(_raw_letters(kafka_topics))
        if dict(r.headers).get("original_length") == str(len(huge)).encode()
    ]  # fmt: skip
    assert len(letters) == 1
    letter = letters[0]
    headers = dict(letter.headers)
    size = len(letter.value) + sum(len(k) + len(v) for k, v in letter.headers)
    assert size <= kafka_topics.dlq_max_message_bytes
    assert huge.startswith(letter.value)
    assert headers["truncated"] == b"1"
    assert headers["reason_kind"] == b"bad number"
    assert len(headers["reason"]) < 300


def test_copies_are_found_whatever_their_ids(settings: Settings) -> None:
    """The late check's query: quotes, backslashes, NULs, non-ASCII and ids longer than
    ClickHouse parses in one query, and thousands of pairs at once."""
    from datetime import UTC, datetime

    from rater.billing.rows import blank_row, insert_rows
    from rater.clickhouse.executor import DriverExecutor
    from rater.pipeline.store import stored_copies

    ex = DriverExecutor.from_settings(settings)
    tag = uuid.uuid4().hex[:6]
    odd = [f"{tag}-'q", f"{tag}-\\b", f"{tag}-\x00n", f"{tag}-é", f"{tag}-" + "L" * 300_000,
           f"{tag}-" + "é" * 2000]  # fmt: skip
    many = [f"{tag}-{i:05d}" for i in range(5000)]
    moment = datetime(2026, 9, 21, 14, tzinfo=UTC).replace(tzinfo=None)
    insert_rows(ex, [
        blank_row(topic_id="t", partition=1, offset=i, switch="sw'1", cdr_id=c,
                  start_time=moment, outcome="rated")
        for i, c in enumerate(odd + many)
    ])  # fmt: skip
    start = int(moment.replace(tzinfo=UTC).timestamp())
    missing = [("sw'1", f"{tag}-" + "L" * 299_999 + "M"), ("sw'1", f"{tag}-nope")]
    pairs = [("sw'1", c) for c in odd + many] + missing
    found = stored_copies(ex, pairs, start - 10, start + 10)
    assert set(found) == {("sw'1", c) for c in odd + many}
    assert found[("sw'1", odd[0])] == {("t", 1, 0)}
    assert stored_copies(ex, pairs, start - 10, start + 10, rated_only=True).keys() == found.keys()
