"""Time rules of docs/DESIGN.md section 4 through Kafka, Redis and ClickHouse: a CDR that ended
before now minus the de-duplication window is not charged by the stream (a copy ClickHouse holds
is a duplicate, a new one is stored unrated `late`), a CDR from beyond the allowed skew goes to
the dead-letter topic, and `rater rerate --unrated` rates late CDRs unless a rated copy exists."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pipeline_world import (
    RESELLER,
    SELL,
    START,
    cdr,
    make_world,
    own_topics,
    publish,
    run_in_process,
)

from rater import clickhouse, metrics
from rater.billing.rerate import Rerater, RerateRequest
from rater.billing.rows import blank_row, insert_rows
from rater.clickhouse.executor import DriverExecutor
from rater.pipeline import deadletter as dlq
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

DAY = datetime.fromtimestamp(START, UTC).date()
#: three days after the calls: every CDR of the world is late
LATER = START + 3 * 86_400


def _rows(ch: Any, tag: str) -> dict[str, tuple[Any, ...]]:
    rows = ch.execute(
        "SELECT cdr_id, outcome, reason, price, customer, sum(sign) FROM rated_cdrs "
        "WHERE cdr_id LIKE %(p)s GROUP BY cdr_id, outcome, reason, price, customer, revision "
        "HAVING sum(sign) > 0",
        {"p": f"{tag}-%"},
    )
    return {row[0]: row[1:] for row in rows}


def _topic_id(ch: Any, tag: str) -> str:
    """The topic identity the pipeline stored this test's rows under."""
    return str(
        ch.execute("SELECT any(topic_id) FROM rated_cdrs WHERE cdr_id = %(a)s", {"a": f"{tag}-a"})[
            0
        ][0]
    )


def _balance(redis: RedisLike) -> int:
    return int(redis.hget(keys.customer(RESELLER, "cust1"), "bal") or 0)


@pytest.fixture
def own_database(kafka_topics: Settings) -> Iterator[Settings]:
    """Topics and a ClickHouse database of this test's own: its dead letter reaches no other
    test's replay, and its `rerate --unrated` sees no other test's unrated CDRs of the day."""
    ours = own_topics(kafka_topics, "late")
    ours = ours.replace(clickhouse_database=f"t_late_{uuid.uuid4().hex[:8]}")
    clickhouse.migrate(ours)
    yield ours
    admin = clickhouse.client(ours, database="default", numpy=False)
    admin.execute(f"DROP DATABASE IF EXISTS {ours.clickhouse_database}")
    admin.disconnect()


def test_late_cdrs_are_not_charged_by_the_stream_and_rerate_checks_for_a_rated_copy(
    own_database: Settings, redis: RedisLike
) -> None:
    kafka_topics = own_database
    ch = clickhouse.client(kafka_topics, numpy=False)
    world = make_world(kafka_topics, redis)
    tag = uuid.uuid4().hex[:6]
    first = cdr(f"{tag}-a")
    publish(kafka_topics, [first])
    run_in_process(kafka_topics)  # on time: rated and charged
    charged = _balance(redis)
    price = world.expected(SELL, "+493012345678", 125)
    assert _rows(ch, tag)[f"{tag}-a"][:3] == ("rated", "", price)

    late_before = metrics.LATE._value.get()
    later = kafka_topics.replace(clock_start=str(LATER))
    future_start = LATER + 3600
    publish(
        later,
        [
            first,  # the switch resent it after the window: Redis may have forgotten it
            cdr(f"{tag}-b"),  # never seen: late
            cdr(f"{tag}-d"),  # late too; a rated copy appears below
            cdr(
                f"{tag}-c",
                start_time=future_start,
                answer_time=future_start + 5,
                end_time=future_start + 130,
            ),
        ],
    )
    dlq_before = {x.identity for x in asyncio.run(dlq.read_all(later))}
    summary = run_in_process(later)
    assert summary.outcomes[("duplicate", "")] == 1
    assert summary.outcomes[("unrated", "late")] == 2
    assert summary.outcomes[("invalid", "end in the future")] == 1
    assert metrics.LATE._value.get() - late_before == 3
    rows = _rows(ch, tag)
    assert set(rows) == {f"{tag}-a", f"{tag}-b", f"{tag}-d"}  # one row of a; no row of c
    outcome, reason, row_price, customer, _ = rows[f"{tag}-b"]
    assert (outcome, row_price, customer) == ("unrated", 0, "cust1")
    assert reason.startswith("late: ended 2026-09-21T14:")
    assert _balance(redis) == charged  # nothing charged by the stream
    letters = [x for x in asyncio.run(dlq.read_all(later)) if x.identity not in dlq_before]
    assert [x.reason.split(":")[0] for x in letters] == ["end in the future"]
    assert "s after now (allowed: 600 s)" in letters[0].reason

    # a rated copy of d under another message (a copy that raced the late one)
    ex = DriverExecutor.from_settings(kafka_topics)
    moment = datetime.fromtimestamp(START, UTC).replace(tzinfo=None)
    insert_rows(ex, [blank_row(
        topic_id="elsewhere", partition=0, offset=1, switch="sw1", cdr_id=f"{tag}-d",
        account="cust1", customer="cust1", reseller=RESELLER, outcome="rated", price=price,
        billsec=125, start_time=moment, end_time=moment + timedelta(seconds=130),
    )])  # fmt: skip
    summary = Rerater(later, redis, ex).run(RerateRequest(DAY, DAY, unrated=True))
    assert summary.left.get("rated copy exists") == 1
    rows = _rows(ch, tag)
    assert rows[f"{tag}-b"][:3] == ("rated", "", price)  # rated now, and charged once
    assert _balance(redis) == charged - price
    d_rows = ch.execute(
        "SELECT topic_id, outcome, sum(sign) FROM rated_cdrs WHERE cdr_id = %(d)s "
        "GROUP BY topic_id, outcome",
        {"d": f"{tag}-d"},
    )
    assert set(d_rows) == {("elsewhere", "rated", 1), (_topic_id(ch, tag), "unrated", 1)}
    ch.disconnect()
