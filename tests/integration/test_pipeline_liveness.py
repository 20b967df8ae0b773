"""A worker stays live through rebalances: it keeps rating while members join and leave the
group, and a stop request ends it within seconds, even in the middle of a rebalance.

The records trickle in (one every few milliseconds) so the worker's loop is mostly waiting in
the consumer's fetch when a rebalance starts: the moment a loop that holds a lock across the
fetch would deadlock against the revoke callback.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import orjson
import pytest
from pipeline_world import cdr, make_world

from rater import kafka
from rater.pipeline.worker import Worker, run_worker
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

#: short sessions: Tansu joins take about session_timeout / 2
FAST = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}


def _stored(ch: Any, tag: str) -> tuple[int, int]:
    rows = ch.execute(
        "SELECT count(), countDistinct(cdr_id) FROM rated_cdrs WHERE cdr_id LIKE %(p)s",
        {"p": f"{tag}-%"},
    )
    return int(rows[0][0]), int(rows[0][1])


async def _trickle(settings: Settings, tag: str, sent: list[int], stop: asyncio.Event) -> None:
    producer = kafka.producer(settings, linger_ms=0)
    await producer.start()
    try:
        while not stop.is_set():
            message = cdr(f"{tag}-{len(sent)}")
            await producer.send_and_wait(settings.topic_cdrs, orjson.dumps(message), key=b"cust1")
            sent.append(1)
            await asyncio.sleep(0.005)
    finally:
        await producer.stop()


async def _grows(ch: Any, tag: str, timeout_s: float) -> bool:
    """True when rated_cdrs gains rows of `tag` within timeout_s."""
    before = (await asyncio.to_thread(_stored, ch, tag))[0]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        if (await asyncio.to_thread(_stored, ch, tag))[0] > before:
            return True
    return False


async def _intrude(settings: Settings, hold_s: float) -> None:
    """A second member joins the group (a rebalance), holds its share a while, then leaves
    (another rebalance). It reads nothing and commits nothing."""
    member = kafka.consumer(settings)
    member.subscribe([settings.topic_cdrs])
    await member.start()
    try:
        deadline = time.monotonic() + 20
        while not member.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(hold_s)
    finally:
        await member.stop()


class ThreadWorker:
    """A Worker on a loop of its own in a daemon thread: a worker that hangs fails the test
    (bounded waits here) instead of hanging it."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.worker = Worker(settings, stop=self.stop_event)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="worker")
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.worker.run())
        except BaseException as error:
            self.error = error

    def state(self) -> str:
        """What the worker says about itself, for failure messages."""
        return repr(self.worker.health)

    def stop(self, timeout_s: float) -> bool:
        """Ask the worker to stop; True when it ended within timeout_s."""
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout_s)
        return not self.thread.is_alive()


def test_a_worker_keeps_rating_through_rebalances_and_stops_promptly(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    # a fetch wait longer than the broker's fetch long-poll (500 ms): the loop is nearly always
    # inside the fetch when a rebalance starts. Topics and a group of its own: a worker left
    # hanging by a failure cannot hold the session's partitions
    own = uuid.uuid4().hex[:6]
    settings = kafka_topics.replace(
        **FAST, batch_timeout_ms=1000, topic_cdrs=f"{kafka_topics.topic_cdrs}-{own}",
        topic_dlq=f"{kafka_topics.topic_cdrs}-{own}.dlq",
        topic_meta=f"{kafka_topics.topic_cdrs}-{own}.meta",
        consumer_group=f"{kafka_topics.consumer_group}-{own}",
    )  # fmt: skip
    asyncio.run(kafka.ensure_topics(settings))
    make_world(settings, redis)
    tag = uuid.uuid4().hex[:6]
    sent: list[int] = []
    worker = ThreadWorker(settings)

    async def scenario() -> None:
        stop_trickle = asyncio.Event()
        trickle = asyncio.create_task(_trickle(settings, tag, sent, stop_trickle))
        try:
            assert await _grows(ch, tag, 60), f"the worker never stored anything: {worker.state()}"
            for round_ in range(4):
                await _intrude(settings, hold_s=0.5 + 0.4 * round_)
                # after each join and leave the worker rates again within a bound
                assert await _grows(ch, tag, 30), (
                    f"no progress after rebalance {round_ + 1}: {worker.state()}"
                )
        finally:
            stop_trickle.set()
            await trickle

    try:
        asyncio.run(scenario())
    finally:
        # a stop request ends the worker within seconds, everything stored committed
        started = time.monotonic()
        assert worker.stop(15), f"the worker did not stop within 15 s: {worker.state()}"
    assert time.monotonic() - started < 15
    assert worker.error is None, repr(worker.error)
    # what was published is stored once: a second worker run finds nothing left to do
    asyncio.run(run_worker(settings, until_idle_s=2.0))
    count, distinct = _stored(ch, tag)
    assert count == distinct == len(sent), f"{count} rows, {distinct} distinct, {len(sent)} sent"
