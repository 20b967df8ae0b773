"""The broker restarts and forgets its log: offsets start again at 0. The new topic incarnation
keeps the old watermarks and stored offsets from hiding the new CDRs (docs/DESIGN.md section 3).

The test stops and starts the stack's broker, then re-creates the session's topics the way the
project does (`ensure_topics`), so later tests find them again.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from pipeline_world import (
    cdr,
    make_world,
    pipeline_settings,
    publish,
    publish_async,
    run_in_process,
)

from rater import kafka
from rater.kafka import topic_identity
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.stack import broker, supervisor
from rater.stack.control import services

pytestmark = pytest.mark.integration


def _restart_broker(settings: Settings) -> None:
    svc = next(s for s in services(settings) if s.name == "broker")
    record = supervisor.running(svc.pid_file)
    if record is None:
        pytest.skip("the broker was not started by this stack (no PID file): cannot restart it")
    supervisor.stop(svc.pid_file)
    supervisor.start(
        svc.argv, pid_file=svc.pid_file, log_file=svc.console_log, cwd=svc.directory, env=svc.env
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            broker.probe(settings)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    asyncio.run(kafka.ensure_topics(settings))


def _rows(ch: Any, tag: str) -> list[tuple[str, str, int, str]]:
    return ch.execute(
        "SELECT cdr_id, outcome, offset, topic_id FROM rated_cdrs WHERE cdr_id LIKE %(p)s "
        "ORDER BY cdr_id",
        {"p": f"{tag}-%"},
    )


def test_cdrs_published_after_a_broker_restart_are_all_rated(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    settings = kafka_topics
    make_world(settings, redis)
    tag = uuid.uuid4().hex[:6]
    publish(settings, [cdr(f"{tag}-a{i}") for i in range(30)])
    run_in_process(settings)
    before = _rows(ch, tag)
    assert len(before) == 30
    old_incarnation = asyncio.run(topic_identity.incarnation(settings))

    _restart_broker(settings)
    publish(settings, [cdr(f"{tag}-b{i}") for i in range(30)])
    run_in_process(settings)

    after = [row for row in _rows(ch, tag) if row[0].startswith(f"{tag}-b")]
    assert len(after) == 30
    assert {row[1] for row in after} == {"rated"}
    new_incarnation = asyncio.run(topic_identity.incarnation(settings))
    assert new_incarnation != old_incarnation
    assert {row[3] for row in after} == {new_incarnation}
    # the log started over: offsets from 0 again, under another identity
    assert min(row[2] for row in after) == 0


def test_a_running_worker_follows_the_broker_into_its_new_log(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    from rater.pipeline.worker import run_worker

    settings = kafka_topics
    make_world(settings, redis)
    tag = uuid.uuid4().hex[:6]

    async def scenario() -> None:
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(pipeline_settings(settings), stop=stop))
        await publish_async(settings, [cdr(f"{tag}-a{i}") for i in range(30)])
        await _wait(ch, tag, 30)
        await asyncio.to_thread(_restart_broker, settings)
        await publish_async(settings, [cdr(f"{tag}-b{i}") for i in range(30)])
        await _wait(ch, tag, 60)
        stop.set()
        await worker

    asyncio.run(scenario())
    rows = _rows(ch, tag)
    assert len(rows) == 60
    assert {row[1] for row in rows} == {"rated"}


async def _wait(ch: Any, tag: str, count: int, timeout_s: float = 90.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if len(_rows(ch, tag)) >= count:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"only {len(_rows(ch, tag))} of {count} rows of {tag} stored")
