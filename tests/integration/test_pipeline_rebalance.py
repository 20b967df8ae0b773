"""Two workers split the partitions; one leaves (SIGTERM) while CDRs keep coming: the other
takes its partitions over and nothing is lost or doubled."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from typing import Any

import pytest
from pipeline_world import RESELLER, make_world, publish, spawn, workload

from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration


def _count(ch: Any, prefix: str) -> int:
    return int(
        ch.execute("SELECT count() FROM rated_cdrs WHERE cdr_id LIKE %(p)s", {"p": f"{prefix}-%"})[
            0
        ][0]
    )


def _wait_count(ch: Any, prefix: str, count: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _count(ch, prefix) < count:
        assert time.monotonic() < deadline, f"{_count(ch, prefix)} of {count} stored"
        time.sleep(0.2)


class _Log:
    """Collects a worker's stderr in a thread (so its pipe never fills)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.text = ""
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.text += line.decode(errors="replace")

    def assigned(self) -> list[str]:
        return re.findall(r"partitions assigned.*?partitions=(\[[0-9, ]*\])", self.text)


def test_a_worker_leaving_hands_its_partitions_over_without_loss(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    settings = kafka_topics.replace(session_timeout_ms=3000, heartbeat_interval_ms=500)
    world = make_world(settings, redis)
    opening = int(redis.hget(keys.reseller(RESELLER), "bal") or 0)
    load = workload(world, 1600, seed=3, prefix="rb")
    first, second = load.messages[:800], load.messages[800:]
    valid_ids = {m["cdr_id"] for m in _valid(load)}
    first_unique = len({m["cdr_id"] for m in first if isinstance(m, dict)} & valid_ids)

    a = spawn(settings, "--batch-size", "100")
    b = spawn(settings, "--batch-size", "100")
    logs = (_Log(a), _Log(b))
    try:
        publish(settings, first)
        _wait_count(ch, "rb", first_unique)
        # both workers hold partitions once the group settled
        deadline = time.monotonic() + 30
        while not (
            any(x != "[]" for x in logs[0].assigned())
            and any(x != "[]" for x in logs[1].assigned())
        ):
            assert time.monotonic() < deadline, logs[0].text[-2000:] + logs[1].text[-2000:]
            time.sleep(0.2)
        a.send_signal(signal.SIGTERM)  # finish the batch, commit, leave the group
        publish(settings, second)
        assert a.wait(timeout=60) == 0, logs[0].text[-3000:]
        _wait_count(ch, "rb", load.unique)
    finally:
        for worker in (a, b):
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        assert b.wait(timeout=60) == 0, logs[1].text[-3000:]
    assert "worker stopped" in logs[0].text
    # b took over a's partitions after it left
    assert logs[1].assigned()[-1] == "[0, 1, 2, 3]"
    rows = ch.execute(
        "SELECT count(), countDistinct(switch, cdr_id), sum(price * sign), sum(cost * sign) "
        "FROM rated_cdrs WHERE cdr_id LIKE 'rb-%'"
    )[0]
    assert rows[0] == rows[1] == load.unique
    assert rows[2] == sum(load.price.values())
    assert rows[3] == sum(load.cost.values())
    assert opening - int(redis.hget(keys.reseller(RESELLER), "bal") or 0) == rows[3]


def _valid(load: Any) -> list[dict[str, Any]]:
    """First copies of the valid CDRs (what rated_cdrs should hold)."""
    seen: list[dict[str, Any]] = []
    ids: set[str] = set()
    for message in load.messages:
        if not isinstance(message, dict) or message["cdr_id"] in ids:
            continue
        if message.get("billsec", 0) < 0 or message.get("callee") == "+12":
            continue
        ids.add(message["cdr_id"])
        seen.append(message)
    return seen
