"""Redis connections: one server (redis_url) or Redis Cluster (redis_cluster_nodes)."""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from rater.errors import ServiceUnavailable
from rater.settings import Settings

RedisLike = redis.Redis | RedisCluster


def connect(settings: Settings, **kwargs: Any) -> RedisLike:
    """A client for the configured Redis; bytes in and out (decode_responses off)."""
    if settings.redis_cluster_nodes:
        nodes = []
        for seed in settings.redis_cluster_nodes.split(","):
            host, port = seed.strip().rsplit(":", 1)
            nodes.append(ClusterNode(host, int(port)))  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kwargs)
    return redis.Redis.from_url(settings.redis_url, **kwargs)


def ping(settings: Settings) -> str:
    """The server version; ServiceUnavailable when it does not answer."""
    try:
        client = connect(settings, socket_connect_timeout=3, socket_timeout=5)
        info = client.info("server")
    except (redis.RedisError, OSError) as error:
        message = f"Redis at {settings.redis_url} does not answer: {error}"
        raise ServiceUnavailable(message) from error
    if isinstance(info, dict) and "redis_version" in info:
        return str(info["redis_version"])
    first = next(iter(info.values())) if isinstance(info, dict) else {}
    return str(first.get("redis_version", "?")) if isinstance(first, dict) else "?"
