"""The local Redis Cluster's bus ports stay out of Linux's ephemeral port range, where a
client connection can hold them (Redis' default bus port is the node's port + 10000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rater.settings import Settings
from rater.stack import redis_cluster
from rater.stack.redis import redis_binary

EPHEMERAL = range(32768, 61000)


@pytest.mark.parametrize("base", [16, 21, 25, 28, 29])
def test_bus_ports_are_below_the_ephemeral_range(base: int, tmp_path: Path) -> None:
    binary = redis_binary()
    if binary is None or redis_cluster._major_version(str(binary)) < 7:
        pytest.skip("the bus port is configurable from Redis 7 on")
    settings = Settings(redis_url=f"redis://127.0.0.1:{base}379/0", stack_dir=tmp_path)
    for service in redis_cluster.services(settings):
        argv = service.argv
        bus = int(argv[argv.index("--cluster-port") + 1])
        assert bus == service.port + redis_cluster.BUS_OFFSET
        assert bus not in EPHEMERAL
        assert service.port not in EPHEMERAL
