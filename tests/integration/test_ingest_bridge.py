"""`rater ingest --from-topic`: a switch's own topic (Kamailio's kafka module, Asterisk's
cdr_kafka: records without the rater-switch header) bridged into the cdrs topic and rated; the
bridge commits the switch topic only after the cdrs topic acknowledged, so running it again
forwards nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import make_world, own_topics, run_in_process

from rater import kafka
from rater.ingest.bridge import bridge
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.switches.registry import SwitchRegistry
from rater.tariffs.model import SwitchSettings

pytestmark = pytest.mark.integration

LINES = Path(__file__).parents[1] / "fixtures" / "switches" / "kamailio" / "acc_json.jsonl"


async def _publish_raw(settings: Settings, topic: str, values: list[bytes]) -> None:
    await kafka.create_topics(settings, {topic: 2})
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)  # no key, no header: as the module sends
    finally:
        await producer.stop()


async def _bridge_for(
    settings: Settings, switch: SwitchSettings, topic: str, seconds: float
) -> Any:
    """Run the bridge for a while (a group join takes about half a session timeout), then stop
    it: its counts say what it forwarded."""
    stop = asyncio.Event()
    task = asyncio.create_task(bridge(settings, switch, "", topic, stop=stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


def test_a_switch_topic_is_bridged_once(settings: Settings, redis: RedisLike, ch: Any) -> None:
    ours = own_topics(settings, "bridge").replace(
        session_timeout_ms=3000, heartbeat_interval_ms=500
    )
    make_world(ours, redis, cards=0)
    name = f"kam-{uuid.uuid4().hex[:6]}"
    switch = SwitchRegistry(redis).set(
        SwitchSettings(name=name, format="kamailio-json", country_code="31")
    )
    topic = f"kamailio-cdrs-{uuid.uuid4().hex[:6]}"
    values = LINES.read_bytes().splitlines()
    asyncio.run(_publish_raw(ours, topic, values))
    counts = asyncio.run(_bridge_for(ours, switch, topic, 8.0))
    assert counts.records == len(values)
    # a second run of the bridge (its group committed): joins, finds nothing new
    again = asyncio.run(_bridge_for(ours, switch, topic, 6.0))
    assert again.records == 0
    run_in_process(ours)
    rows = ch.execute(
        "SELECT outcome, billsec FROM rated_cdrs WHERE switch = %(s)s ORDER BY start_time",
        {"s": name},
    )
    assert rows == [("rated", 66), ("unanswered", 0)]
