"""Dead letters after a fix: a switch sends national numbers before its country is set; they
are dead-lettered, the switch is fixed, `rater dlq replay` publishes them again and they are
rated. A second replay publishes nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from pipeline_world import cdr, env_of, make_world, publish, run_in_process

from rater.cli.main import cli
from rater.pipeline import deadletter as dlq
from rater.reasons import Kind
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
    ours = [x for x in asyncio.run(dlq.read_all(kafka_topics)) if tag.encode() in x.value]
    assert len(ours) == 5
    assert {x.reason_kind for x in ours} == {Kind.BAD_NUMBER.value}  # the reason_kind header

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


def test_every_dead_letter_is_read_from_a_topic_of_many_record_batches(
    kafka_topics: Settings,
) -> None:
    """The local broker answers ListOffsets(latest) with its last record batch's base offset
    + 1, not the log's end; a reader that stops there misses the rest of that batch."""

    from rater import kafka
    from rater.pipeline import deadletter as dlq

    tag = uuid.uuid4().hex[:6]
    settings = kafka_topics.replace(topic_dlq=f"{kafka_topics.topic_dlq}-{tag}")
    batches, per_batch = 6, 50

    async def publish_batches() -> None:
        await kafka.create_topics(settings, {settings.topic_dlq: 2})
        producer = kafka.producer(settings, linger_ms=0)
        await producer.start()
        try:
            for b in range(batches):
                for partition in (0, 1):
                    batch = producer.create_batch()
                    for i in range(per_batch):
                        offset = b * per_batch + i
                        headers = [("reason", b"bad JSON"), ("topic", b"cdrs"),
                                   ("topic_id", tag.encode()),
                                   ("partition", str(partition).encode()),
                                   ("offset", str(offset).encode())]  # fmt: skip
                        assert batch.append(
                            key=None, value=f"{tag}-{partition}-{offset}".encode(),
                            timestamp=None, headers=headers,
                        ) is not None  # fmt: skip
                    batch.close()
                    sent = await producer.send_batch(batch, settings.topic_dlq, partition=partition)
                    await sent
        finally:
            await producer.stop()

    asyncio.run(publish_batches())
    letters = asyncio.run(dlq.read_all(settings))
    assert len(letters) == 2 * batches * per_batch
    assert len({letter.identity for letter in letters}) == len(letters)
    for partition in (0, 1):
        offsets = [x.dlq_offset for x in letters if x.dlq_partition == partition]
        assert offsets == list(range(batches * per_batch))


def test_the_end_of_a_log_is_the_high_watermark_of_a_fetch_not_end_offsets(
    kafka_topics: Settings,
) -> None:
    """Five batches of 100 records: the log ends at 500, where the local broker's ListOffsets
    answers 401 (its last batch's base offset + 1)."""

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from rater import kafka
    from rater.kafka.ends import high_watermarks

    topic = f"{kafka_topics.topic_cdrs}-ends-{uuid.uuid4().hex[:6]}"

    async def scenario() -> dict[TopicPartition, int]:
        await kafka.create_topics(kafka_topics, {topic: 2})
        producer = kafka.producer(kafka_topics, linger_ms=0)
        await producer.start()
        try:
            for _ in range(5):
                batch = producer.create_batch()
                for i in range(100):
                    batch.append(key=None, value=str(i).encode(), timestamp=None)
                batch.close()
                await (await producer.send_batch(batch, topic, partition=0))
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_topics.kafka_bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
            consumer.assign(tps)
            return await high_watermarks(consumer, tps)
        finally:
            await consumer.stop()

    ends = asyncio.run(scenario())
    assert [ends[tp] for tp in sorted(ends)] == [500, 0]
