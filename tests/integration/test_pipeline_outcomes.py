"""Every row of docs/DESIGN.md section 4's fate table, through the real pipeline and services."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pipeline_world import (
    BUY,
    RESELLER,
    SELL,
    cdr,
    make_world,
    pipeline_settings,
    publish,
    run_in_process,
)

from rater.pipeline import deadletter as dlq
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration


EARLY = datetime(2026, 1, 1, tzinfo=UTC)  # before the test CDRs' start time


def _tag() -> str:
    return uuid.uuid4().hex[:6]


def _rows(ch: Any, tag: str) -> dict[str, dict[str, Any]]:
    names = ("cdr_id", "outcome", "reason", "price", "cost", "margin", "blocked", "customer",
             "reseller", "card", "number", "prefix", "destination", "billable_seconds",
             "sell_tariff", "buy_tariff", "sign", "topic_id")  # fmt: skip
    rows = ch.execute(
        f"SELECT {', '.join(names)} FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{tag}-%"}
    )
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}


def _balance(redis: RedisLike, key: str) -> int:
    return int(redis.hget(key, "bal") or 0)


def test_valid_answered_cdr_is_rated_and_debited_at_three_levels(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    world = make_world(kafka_topics, redis)
    card = world.cards[0]
    tag = _tag()
    before = {
        "cust": _balance(redis, keys.customer(RESELLER, "cust1")),
        "card": _balance(redis, keys.card(RESELLER, card)),
        "res": _balance(redis, keys.reseller(RESELLER)),
    }
    publish(kafka_topics, [cdr(f"{tag}-1", card=card), cdr(f"{tag}-2", callee="0044201234567")])
    summary = run_in_process(kafka_topics)
    rows = _rows(ch, tag)
    price1 = world.expected(SELL, "+493012345678", 125)
    cost1 = world.expected(BUY, "+493012345678", 125)
    price2 = world.expected(SELL, "0044201234567", 125)
    cost2 = world.expected(BUY, "0044201234567", 125)
    assert price1 > cost1 > 0
    one = rows[f"{tag}-1"]
    assert (one["outcome"], one["reason"], one["price"], one["cost"]) == (
        "rated",
        "",
        price1,
        cost1,
    )
    assert one["margin"] == price1 - cost1
    assert (one["customer"], one["reseller"], one["card"]) == ("cust1", RESELLER, card)
    assert (one["number"], one["prefix"], one["destination"]) == ("493012345678", "4930", "Berlin")
    assert one["billable_seconds"] == 180  # 60/60 steps on the sell side
    assert one["sell_tariff"] == f"{SELL}@1"
    assert one["buy_tariff"] == f"{BUY}@1"
    assert one["blocked"] == 0
    assert one["sign"] == 1
    assert rows[f"{tag}-2"]["price"] == price2
    assert _balance(redis, keys.customer(RESELLER, "cust1")) == before["cust"] - price1 - price2
    assert _balance(redis, keys.card(RESELLER, card)) == before["card"] - price1
    assert _balance(redis, keys.reseller(RESELLER)) == before["res"] - cost1 - cost2
    assert summary.outcomes[("rated", "")] >= 2


def test_unanswered_cdr_is_stored_at_price_zero_without_debit(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    make_world(kafka_topics, redis)
    tag = _tag()
    before = _balance(redis, keys.customer(RESELLER, "cust1"))
    # ANSWERED with billsec 0 is unanswered too: billsec is authoritative
    publish(
        kafka_topics,
        [cdr(f"{tag}-1", billsec=0), cdr(f"{tag}-2", billsec=0, disposition="ANSWERED")],
    )
    run_in_process(kafka_topics)
    rows = _rows(ch, tag)
    assert {r["outcome"] for r in rows.values()} == {"unanswered"}
    assert {r["price"] for r in rows.values()} == {0}
    assert len(rows) == 2
    assert _balance(redis, keys.customer(RESELLER, "cust1")) == before


def test_blocked_or_negative_account_is_debited_all_the_same_and_flagged(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    world = make_world(kafka_topics, redis)
    tag = _tag()
    publish(kafka_topics, [cdr(f"{tag}-1", account="cust2"), cdr(f"{tag}-2", account="cust2")])
    run_in_process(kafka_topics)
    rows = _rows(ch, tag)
    price = world.expected(SELL, "+493012345678", 125)
    # cust2 held 0.01 EUR: the first call takes it negative, the second finds it negative
    assert rows[f"{tag}-1"]["outcome"] == rows[f"{tag}-2"]["outcome"] == "rated"
    assert rows[f"{tag}-2"]["blocked"] == 1
    assert _balance(redis, keys.customer(RESELLER, "cust2")) == 10_000 - 2 * price


def test_unrated_cdrs_are_stored_with_their_reason_and_not_debited(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    make_world(kafka_topics, redis)
    tag = _tag()
    before = _balance(redis, keys.customer(RESELLER, "cust1"))
    res_before = _balance(redis, keys.reseller(RESELLER))
    publish(
        kafka_topics,
        [
            cdr(f"{tag}-nosell", callee="+8613912345678"),  # China: in neither tariff
            cdr(f"{tag}-acct", account="nobody"),
            cdr(f"{tag}-card", card="899999999999"),
        ],
    )
    run_in_process(kafka_topics)
    rows = _rows(ch, tag)
    assert rows[f"{tag}-nosell"]["outcome"] == "unrated"
    assert rows[f"{tag}-nosell"]["reason"] == f"no sell match: {SELL}"
    assert rows[f"{tag}-acct"]["outcome"] == "unrated"
    assert "unknown account" in rows[f"{tag}-acct"]["reason"]
    assert "unknown card" in rows[f"{tag}-card"]["reason"]
    # the CDR's own card is kept on the unrated row, for `rater rerate --unrated` later
    assert rows[f"{tag}-card"]["card"] == "899999999999"
    assert {r["price"] for r in rows.values()} == {0}
    assert _balance(redis, keys.customer(RESELLER, "cust1")) == before
    assert _balance(redis, keys.reseller(RESELLER)) == res_before


def test_a_second_copy_is_counted_not_stored_nor_debited(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    world = make_world(kafka_topics, redis)
    tag = _tag()
    before = _balance(redis, keys.customer(RESELLER, "cust1"))
    first = cdr(f"{tag}-1")
    unrated = cdr(f"{tag}-2", account="nobody")
    publish(kafka_topics, [first, unrated, first, unrated])  # same batch
    summary = run_in_process(kafka_topics)
    publish(kafka_topics, [first])  # a later batch: the switch resent it
    later = run_in_process(kafka_topics)
    rows = ch.execute(
        "SELECT cdr_id, count() FROM rated_cdrs WHERE cdr_id LIKE %(p)s GROUP BY cdr_id",
        {"p": f"{tag}-%"},
    )
    assert dict(rows) == {f"{tag}-1": 1, f"{tag}-2": 1}
    price = world.expected(SELL, "+493012345678", 125)
    assert _balance(redis, keys.customer(RESELLER, "cust1")) == before - price
    assert summary.outcomes[("duplicate", "")] == 2
    assert later.outcomes == {("duplicate", ""): 1}


def test_a_resend_with_other_rating_fields_is_a_conflict_kept_for_an_operator(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    """docs/DESIGN.md section 4: not charged, not stored as a CDR, kept, listed and counted."""
    world = make_world(kafka_topics, redis)
    tag = _tag()
    before = _balance(redis, keys.customer(RESELLER, "cust1"))
    publish(kafka_topics, [cdr(f"{tag}-1")])
    run_in_process(kafka_topics)
    charged = ch.execute(
        "SELECT partition, offset FROM rated_cdrs WHERE cdr_id = %(c)s", {"c": f"{tag}-1"}
    )
    longer = cdr(f"{tag}-1", billsec=300, end_time=cdr("x")["start_time"] + 305)
    publish(kafka_topics, [longer, cdr(f"{tag}-1"), longer])  # a plain copy between two
    later = run_in_process(kafka_topics)
    assert later.outcomes.get(("conflict", "")) == 2
    assert later.outcomes.get(("duplicate", "")) == 1
    rows = ch.execute(
        "SELECT cdr_id, billsec FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{tag}-%"}
    )
    assert rows == [(f"{tag}-1", 125)]
    price = world.expected(SELL, "+493012345678", 125)
    assert _balance(redis, keys.customer(RESELLER, "cust1")) == before - price
    kept = ch.execute(
        "SELECT billsec, first_partition, first_offset FROM cdr_conflicts WHERE cdr_id = %(c)s",
        {"c": f"{tag}-1"},
    )
    assert sorted(kept) == [(300, *charged[0]), (300, *charged[0])]
    # `rater conflicts list` shows them
    from click.testing import CliRunner

    from rater.cli.main import cli

    listed = CliRunner().invoke(
        cli, ["--database", kafka_topics.clickhouse_database, "conflicts", "list", "--json",
              "--switch", "sw1", "--limit", "1000"],
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    # one JSON object per line (a listing's --json)
    rows = [orjson.loads(line) for line in listed.output.splitlines()]
    found = [c for c in rows if c["cdr_id"] == f"{tag}-1"]
    assert [c["billsec"] for c in found] == [300, 300]


def test_invalid_records_go_to_the_dead_letter_topic_with_origin_and_reason(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    make_world(kafka_topics, redis)
    tag = _tag()
    bad: list[Any] = [
        f"{tag} not json".encode(),
        cdr(f"{tag}-missing", billsec=None, answer_time=None),
        cdr(f"{tag}-type", billsec="12"),
        cdr(f"{tag}-neg", billsec=-4),
        cdr(f"{tag}-order", end_time=1_000_000_000),
        cdr(f"{tag}-number", callee="+12"),
        cdr(f"{tag}-time", start_time="yesterday"),
    ]
    before = asyncio.run(dlq.read_all(kafka_topics))
    publish(kafka_topics, bad)
    summary = run_in_process(kafka_topics)
    assert sum(n for (o, _), n in summary.outcomes.items() if o == "invalid") == len(bad)
    assert _rows(ch, tag) == {}
    seen = {letter.identity for letter in before}
    letters = [x for x in asyncio.run(dlq.read_all(kafka_topics)) if x.identity not in seen]
    assert len(letters) == len(bad)
    originals = {orjson.dumps(m) if isinstance(m, dict) else m for m in bad}
    assert {letter.value for letter in letters} == originals
    reasons = " | ".join(letter.reason for letter in letters)
    for expected in ("bad json: ", "missing field: billsec", "wrong type: billsec: expected an "
                     "integer", "negative: billsec -4", "end before start: end_time",
                     "bad number: callee: ", "bad time: start_time 'yesterday'"):  # fmt: skip
        assert expected in reasons
    for letter in letters:
        assert letter.topic == kafka_topics.topic_cdrs
        assert letter.offset >= 0
        assert letter.partition >= 0
        assert letter.topic_id


def test_a_new_tariff_version_is_picked_up_without_restart(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    from rater.tariffs.model import TariffRow, TariffTable
    from rater.tariffs.store import TariffStore

    make_world(kafka_topics, redis)
    tag = _tag()

    async def scenario() -> None:
        from rater.pipeline.worker import run_worker

        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(pipeline_settings(kafka_topics), stop=stop))
        from pipeline_world import publish_async

        await publish_async(kafka_topics, [cdr(f"{tag}-1", callee="+8613912345678")])
        await _wait_rows(ch, tag, 1)
        TariffStore(redis, kafka_topics, clickhouse=False).save(
            TariffTable(name=SELL, rows=(TariffRow("86", "China", 50_000),)), effective_from=EARLY
        )
        TariffStore(redis, kafka_topics, clickhouse=False).save(
            TariffTable(name=BUY, rows=(TariffRow("86", "China", 30_000),)), effective_from=EARLY
        )
        await asyncio.sleep(1.2)  # the loader checks the generation at most once a second
        await publish_async(kafka_topics, [cdr(f"{tag}-2", callee="+8613912345678")])
        await _wait_rows(ch, tag, 2)
        stop.set()
        await task

    asyncio.run(scenario())
    rows = _rows(ch, tag)
    assert rows[f"{tag}-1"]["outcome"] == "unrated"
    assert rows[f"{tag}-2"]["outcome"] == "rated"
    assert rows[f"{tag}-2"]["sell_tariff"] == f"{SELL}@2"


async def _wait_rows(ch: Any, tag: str, count: int, timeout_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        found = ch.execute(
            "SELECT count() FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{tag}-%"}
        )[0][0]
        if found >= count:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} rows of {tag} not stored within {timeout_s} s")


def test_rejects_of_several_partitions_are_dead_lettered_once(
    kafka_topics: Settings, redis: RedisLike
) -> None:
    """The dead-letter watermarks of four partitions (four slots on Redis Cluster, where one
    MGET of them is refused) are read and written in one round trip."""
    from dataclasses import dataclass

    from rater import kafka
    from rater.pipeline.decode import Reject
    from rater.reasons import Kind, Reason

    @dataclass(frozen=True)
    class Rec:
        partition: int
        offset: int
        key: bytes | None
        value: bytes | None
        timestamp: int = 0

    topic_id = f"dlq-{_tag()}"
    rejects = [
        Reject(Rec(p, 10 + p, None, b"{oops"), Reason(Kind.BAD_JSON, "cut off")) for p in range(4)
    ]

    async def twice() -> tuple[int, int]:
        producer = kafka.producer(kafka_topics)
        await producer.start()
        try:
            first = await dlq.publish(producer, redis, kafka_topics, topic_id, rejects)
            again = await dlq.publish(producer, redis, kafka_topics, topic_id, rejects)
        finally:
            await producer.stop()
        return first, again

    assert asyncio.run(twice()) == (4, 0)
