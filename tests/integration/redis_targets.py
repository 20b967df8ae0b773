"""A fixture that runs a test on one Redis server and on the stack's three-node Redis Cluster.

Import `target` into a test module; each test then runs twice ([single], [cluster]) with a
flushed client. The cluster comes from the stack's nodes file (`rater stack up --redis-cluster`,
which `make test` runs): missing, it skips, or fails under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis as redis_py

from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.stack import redis_cluster


@dataclass(frozen=True)
class Target:
    name: str  #: "single" or "cluster"
    settings: Settings
    client: Any  #: bytes in and out


def _cluster_settings(settings: Settings) -> Settings:
    nodes = redis_cluster.nodes_of(settings)
    if not nodes:
        message = "no Redis Cluster: start it with `rater stack up --redis-cluster`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return settings.replace(redis_cluster_nodes=nodes)


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Target]:
    if request.param == "cluster":
        ours = _cluster_settings(settings)
        client = redis_client.connect(ours)
        client.flushall()  # every primary
    else:
        ours = settings.replace(redis_cluster_nodes="")
        try:
            client = redis_client.connect(ours)
            client.ping()
        except (redis_py.RedisError, OSError) as error:
            if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                pytest.fail(f"CI=true: Redis is not reachable ({error})", pytrace=False)
            pytest.skip(f"Redis is not reachable ({error})")
        client.flushdb()
    yield Target(request.param, ours, client)
    client.close()
