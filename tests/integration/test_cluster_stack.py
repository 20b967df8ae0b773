"""`rater stack up --redis-cluster`: ports, the nodes file, idempotent start, a real cluster."""

from __future__ import annotations

import os

import pytest
from redis.cluster import RedisCluster

from rater.errors import StackError
from rater.settings import Settings
from rater.stack import redis_cluster

pytestmark = pytest.mark.integration


def _running(settings: Settings) -> str:
    nodes = redis_cluster.nodes_of(settings)
    if not nodes:
        message = "no Redis Cluster: start it with `rater stack up --redis-cluster`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return nodes


def test_ports_follow_the_stack_port_base_or_the_configured_seeds() -> None:
    base = Settings(redis_url="redis://127.0.0.1:29379/0")
    assert redis_cluster.ports(base) == [29401, 29402, 29403]
    assert redis_cluster.seeds(base) == "127.0.0.1:29401,127.0.0.1:29402,127.0.0.1:29403"
    given = base.replace(redis_cluster_nodes="127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003")
    assert redis_cluster.ports(given) == [7001, 7002, 7003]
    with pytest.raises(StackError, match="has 3 nodes"):
        redis_cluster.ports(base.replace(redis_cluster_nodes="127.0.0.1:7001"))
    with pytest.raises(StackError, match=r"127\.0\.0\.1 only"):
        redis_cluster.ports(base.replace(redis_cluster_nodes="10.0.0.1:1,10.0.0.1:2,10.0.0.1:3"))


def test_second_up_starts_nothing_and_every_node_answers_cluster_ok(settings: Settings) -> None:
    nodes = _running(settings)
    lines: list[str] = []
    # the session's settings name the stack's own ports, so up() finds the running nodes
    again = redis_cluster.up(settings.replace(redis_cluster_nodes=nodes), echo=lines.append)
    assert again == nodes
    assert not [line for line in lines if ": started" in line or "created" in line]
    for port in redis_cluster.ports(settings.replace(redis_cluster_nodes=nodes)):
        assert redis_cluster.cluster_state(port) == "ok"
        client = RedisCluster(host="127.0.0.1", port=port)
        primaries = client.get_primaries()  # type: ignore[no-untyped-call]
        assert sorted(node.port for node in primaries) == sorted(
            redis_cluster.ports(settings.replace(redis_cluster_nodes=nodes))
        )
        client.close()
