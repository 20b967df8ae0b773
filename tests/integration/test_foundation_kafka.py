"""Kafka through the local broker: committed offsets survive a consumer, and a group's
partitions are split between two members and handed back when one leaves.

Each test uses its own topic and group (derived from the session's unique names), so messages
from other tests never mix in. Waits are bounded; a stuck rebalance fails with the assignments
seen, it does not hang.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from rater import kafka
from rater.settings import Settings

pytestmark = pytest.mark.integration

#: bounded waits for a group to (re)balance; Tansu joins take about session_timeout / 2
REBALANCE_WAIT_S = 60.0
GROUP_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


def _unique(settings: Settings, what: str) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"{settings.topic_cdrs}-{what}-{tag}", f"{settings.consumer_group}-{what}-{tag}"


async def _produce(settings: Settings, topic: str, messages: list[tuple[int, bytes]]) -> None:
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for partition, value in messages:
            await producer.send_and_wait(topic, value=value, key=b"acct", partition=partition)
    finally:
        await producer.stop()


async def _read(
    consumer: AIOKafkaConsumer, count: int, timeout_s: float
) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of the next `count` messages, within timeout_s."""
    got: list[tuple[int, int, bytes]] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < count:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(got)} of {count} messages arrived: {got}")
        batches = await consumer.getmany(timeout_ms=500)
        for tp, records in batches.items():
            got.extend((tp.partition, r.offset, r.value or b"") for r in records)
    return got


def test_second_consumer_resumes_from_the_committed_offset(kafka_topics: Settings) -> None:
    settings = kafka_topics
    topic, group = _unique(settings, "resume")

    async def scenario() -> tuple[list[bytes], int | None, list[bytes]]:
        await kafka.create_topics(settings, {topic: 1})
        await _produce(settings, topic, [(0, f"m{i}".encode()) for i in range(10)])
        tp = TopicPartition(topic, 0)

        first = kafka.consumer(settings, topic, group_id=group, **GROUP_OPTIONS)
        await first.start()
        try:
            seen = await _read(first, 10, REBALANCE_WAIT_S)
            # processed six of them: commit the offset of the next one to read (last + 1)
            await first.commit({tp: seen[5][1] + 1})
        finally:
            await first.stop()

        second = kafka.consumer(settings, topic, group_id=group, **GROUP_OPTIONS)
        await second.start()
        try:
            committed = await second.committed(tp)
            resumed = await _read(second, 4, REBALANCE_WAIT_S)
            extra = await second.getmany(timeout_ms=1000)
        finally:
            await second.stop()
        assert not any(extra.values()), f"more than the uncommitted messages came back: {extra}"
        return [v for _, _, v in seen], committed, [v for _, _, v in resumed]

    seen, committed, resumed = asyncio.run(scenario())
    assert seen == [f"m{i}".encode() for i in range(10)]
    assert committed == 6
    assert resumed == [b"m6", b"m7", b"m8", b"m9"]


def _assigned(consumer: AIOKafkaConsumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


Values = list[list[bytes]]


async def _poll_until(
    consumers: list[AIOKafkaConsumer], done: Callable[[Values], bool], what: str
) -> Values:
    """Poll every consumer (rebalances progress while polling) until done(values received)."""
    values: Values = [[] for _ in consumers]
    deadline = asyncio.get_running_loop().time() + REBALANCE_WAIT_S
    while not done(values):
        if asyncio.get_running_loop().time() > deadline:
            seen = [sorted(_assigned(c)) for c in consumers]
            raise AssertionError(f"{what}: not reached in {REBALANCE_WAIT_S}s; assignments {seen}")
        results = await asyncio.gather(*(c.getmany(timeout_ms=300) for c in consumers))
        for index, batches in enumerate(results):
            for records in batches.values():
                values[index].extend(r.value or b"" for r in records)
    return values


def test_group_splits_partitions_and_hands_them_back(kafka_topics: Settings) -> None:
    settings = kafka_topics
    topic, group = _unique(settings, "rebalance")
    partitions = 4
    everything = set(range(partitions))

    async def scenario() -> None:
        await kafka.create_topics(settings, {topic: partitions})
        a = kafka.consumer(settings, topic, group_id=group, **GROUP_OPTIONS)
        b = kafka.consumer(settings, topic, group_id=group, **GROUP_OPTIONS)
        await a.start()
        try:
            await _poll_until([a], lambda _: _assigned(a) == everything, "alone, A owns all")
            await b.start()
            try:

                def split(_: Values) -> bool:
                    mine, theirs = _assigned(a), _assigned(b)
                    return (
                        bool(mine and theirs) and mine | theirs == everything and not mine & theirs
                    )

                await _poll_until([a, b], split, "A and B split the partitions")
                a_parts, b_parts = _assigned(a), _assigned(b)
                # each member really receives the messages of its own partitions, and only those
                markers = {p: f"split-{p}".encode() for p in range(partitions)}
                await _produce(settings, topic, list(markers.items()))
                wanted = set(markers.values())
                got = await _poll_until(
                    [a, b], lambda v: wanted <= set(v[0]) | set(v[1]), "both read the markers"
                )
                assert (_assigned(a), _assigned(b)) == (a_parts, b_parts), "rebalanced meanwhile"
                assert {markers[p] for p in a_parts} == wanted & set(got[0])
                assert {markers[p] for p in b_parts} == wanted & set(got[1])
            finally:
                await b.stop()  # leaves the group: its partitions go back to A

            await _poll_until([a], lambda _: _assigned(a) == everything, "B left, A owns all")
            after = {f"after-{p}".encode() for p in range(partitions)}
            await _produce(settings, topic, [(p, f"after-{p}".encode()) for p in range(partitions)])
            await _poll_until([a], lambda v: after <= set(v[0]), "A reads every partition")
        finally:
            await a.stop()

    asyncio.run(scenario())
