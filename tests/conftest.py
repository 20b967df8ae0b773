"""Shared fixtures for tests that talk to the real Kafka, Redis and ClickHouse.

The services come from the environment (RATER_*), normally the stack `make test` starts on its
own ports. Each test session gets its own ClickHouse database and its own topic names and
consumer group, so sessions and other helpers' stacks never see each other's data.

When a service does not answer, the tests that need it are skipped, except under CI=true,
where that is a failure: CI must never pass by skipping.

Fixtures:
    settings      (session)  Settings from the environment with a fresh migrated database
                             `t_<hex>`, topics `cdrs-<hex>`, `cdrs-<hex>.dlq`, `cdrs-<hex>.meta`
                             and consumer group `rater-test-<hex>`
    kafka_topics  (session)  the same settings, after ensure_topics created the three topics
    redis         (function) a Redis client (bytes in and out); the DB is flushed first
    ch            (function) a ClickHouse client on the test database, rows as Python values
    ch_numpy      (function) the same with numpy columnar results and inserts
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Iterator

import pytest
from clickhouse_driver import Client

from rater import clickhouse, kafka
from rater.errors import ServiceUnavailable
from rater.redis import connection as redis_client
from rater.redis.connection import RedisLike
from rater.settings import PROJECT_ROOT, Settings
from rater.stack import broker

# `benchmarks` is not an installed package (only rater and kernels are): tests that smoke-test
# benchmark modules import it from the checkout
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

_unavailable: dict[str, str] = {}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _need(service: str, base: Settings) -> None:
    """Skip (or, under CI, fail) when service does not answer; asked once per session."""
    if service not in _unavailable:
        probes = {
            "kafka": lambda: broker.probe(base),
            "redis": lambda: redis_client.ping(base),
            "clickhouse": lambda: clickhouse.ping(base),
        }
        try:
            probes[service]()
            _unavailable[service] = ""
        except ServiceUnavailable as error:
            _unavailable[service] = str(error)
    reason = _unavailable[service]
    if reason:
        message = f"{service} is not reachable ({reason}); start the stack with `rater stack up`"
        if _in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """Settings from the environment, untouched (the shared names: use `settings` instead)."""
    return Settings.from_env()


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Iterator[Settings]:
    """Settings with a unique, migrated ClickHouse database and unique topics and group."""
    _need("clickhouse", base_settings)
    tag = uuid.uuid4().hex[:8]
    ours = base_settings.replace(
        clickhouse_database=f"t_{tag}",
        topic_cdrs=f"cdrs-{tag}",
        topic_dlq=f"cdrs-{tag}.dlq",
        topic_meta=f"cdrs-{tag}.meta",
        consumer_group=f"rater-test-{tag}",
    )
    clickhouse.migrate(ours)
    yield ours
    admin = clickhouse.client(ours, database="default", numpy=False)
    admin.execute(f"DROP DATABASE IF EXISTS {ours.clickhouse_database}")
    admin.disconnect()


@pytest.fixture(scope="session")
def kafka_topics(settings: Settings) -> Settings:
    """The session's settings after its cdrs, dead-letter and meta topics were created."""
    _need("kafka", settings)
    asyncio.run(kafka.ensure_topics(settings))
    return settings


#: what ClickHouse keeps of the changes Redis held: a worker re-applies from these what Redis
#: lacks (rater/billing/recovery.py), so they are emptied with Redis
_REDIS_HISTORY = ("stored_offsets", "ledger", "rerate_audit")


@pytest.fixture
def redis(settings: Settings) -> Iterator[RedisLike]:
    """A Redis client on the configured database, flushed before the test; the session
    database's record of what Redis held is emptied with it (a flushed Redis beside that record
    is a Redis that lost data, which workers repair: docs/DESIGN.md section 3)."""
    _need("redis", settings)
    client = redis_client.connect(settings)
    client.flushdb()
    admin = clickhouse.client(settings, numpy=False)
    try:
        for table in _REDIS_HISTORY:
            admin.execute(f"TRUNCATE TABLE IF EXISTS {table}")
    finally:
        admin.disconnect()
    yield client
    client.close()


@pytest.fixture
def ch(settings: Settings) -> Iterator[Client]:
    """A ClickHouse client on the session's database; rows come back as Python values."""
    client = clickhouse.client(settings, numpy=False)
    yield client
    client.disconnect()


@pytest.fixture
def ch_numpy(settings: Settings) -> Iterator[Client]:
    """A ClickHouse client on the session's database with numpy columnar inserts."""
    client = clickhouse.client(settings)
    yield client
    client.disconnect()
