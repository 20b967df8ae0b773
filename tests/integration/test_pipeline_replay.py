"""Redis loses its last writes (the append-only file's last second) after the offsets were
committed: on assignment the worker seeks back to the Redis watermark + 1, so the lost debits
are applied again, and ClickHouse, which kept the rows, gets no second copy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pipeline_world import RESELLER, SELL, cdr, make_world, publish, run_in_process

from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration


def _snapshot(redis: RedisLike) -> dict[bytes, tuple[int, bytes]]:
    return {key: (max(0, int(redis.pttl(key))), redis.dump(key)) for key in redis.keys("*")}  # type: ignore[misc, arg-type]


def _restore(redis: RedisLike, snapshot: dict[bytes, tuple[int, bytes]]) -> None:
    redis.flushdb()
    for key, (ttl, blob) in snapshot.items():
        redis.restore(key, ttl, blob)


def test_debits_lost_by_redis_are_applied_again_and_rows_not_doubled(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    world = make_world(kafka_topics, redis, cards=0)
    tag = uuid.uuid4().hex[:6]
    balance = keys.customer(RESELLER, "cust1")
    publish(kafka_topics, [cdr(f"{tag}-a{i}") for i in range(10)])
    run_in_process(kafka_topics)
    before_loss = _snapshot(redis)  # watermarks after the first ten
    after_first = int(redis.hget(balance, "bal") or 0)

    publish(kafka_topics, [cdr(f"{tag}-b{i}") for i in range(10)])
    run_in_process(kafka_topics)  # debited, stored, committed
    _restore(redis, before_loss)  # ... and then Redis forgets the last ten
    assert int(redis.hget(balance, "bal") or 0) == after_first

    run_in_process(kafka_topics)  # no new records: only the replay from the watermark
    price = world.expected(SELL, "+493012345678", 125)
    assert int(redis.hget(balance, "bal") or 0) == after_first - 10 * price
    rows = ch.execute(
        "SELECT count(), countDistinct(cdr_id) FROM rated_cdrs WHERE cdr_id LIKE %(p)s",
        {"p": f"{tag}-%"},
    )[0]
    assert tuple(rows) == (20, 20)
