"""`make demo` keeps to itself (rater/demo.py): its accounts, tariffs and switch settings live in
its own Redis database, its CDRs in its own ClickHouse database, so afterwards `rater
reconcile` reports 0 differences and `rater tariff list` shows no demo table; a second run
replaces the first instead of adding to it; `--clean` removes all of it.

The demo runs as `make demo` runs it (`python -m rater.demo`, a process of its own) on the
test stack, with this session's ClickHouse database and Redis database 0 as the shared ones."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pipeline_world import env_of

from rater import clickhouse, demo
from rater.accounts.api import Accounts
from rater.redis import connection as redis_client
from rater.redis.connection import RedisLike
from rater.settings import Settings
from rater.tariffs.store import TariffStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATER = Path(sys.executable).with_name("rater")


def _env(settings: Settings) -> dict[str, str]:
    env = env_of(settings, metrics_port="0")
    env["RATER_STACK_DIR"] = str(settings.stack_dir)
    env.pop("RATER_REDIS_CLUSTER_NODES", None)
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _demo(env: dict[str, str], *args: str) -> str:
    done = _run(env, sys.executable, "-m", "rater.demo", *args)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def _demo_topics(settings: Settings) -> list[str]:
    async def ask() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            return sorted(t for t in await admin.list_topics() if t.startswith(demo.TOPIC_PREFIX))
        finally:
            await admin.close()

    return asyncio.run(ask())


def _demo_databases(settings: Settings) -> list[str]:
    admin: Any = clickhouse.client(settings, database="default", numpy=False)
    try:
        return sorted(
            name for (name,) in admin.execute("SHOW DATABASES") if name.startswith("demo")
        )
    finally:
        admin.disconnect()


def test_demo_keeps_to_itself_replaces_its_last_run_and_cleans_up(
    kafka_topics: Settings, redis: RedisLike
) -> None:
    # a ClickHouse database of its own: the session's holds other tests' ledger entries
    settings = kafka_topics.replace(clickhouse_database=f"t_demo_{uuid.uuid4().hex[:8]}")
    clickhouse.migrate(settings)
    try:
        _check_demo(settings, redis)
    finally:
        admin: Any = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()


def _check_demo(settings: Settings, redis: RedisLike) -> None:
    env = _env(settings)
    out = _demo(env, "--count", "3000", "--workers", "1")
    assert "ALL TOTALS EQUAL THE MANIFEST" in out, out
    assert "accounts checked, 0 with a difference" in out, out
    if "below zero" in out:
        assert "rater authorize" in out

    # nothing of it in the shared Redis database or ClickHouse database
    assert redis.dbsize() == 0, sorted(redis.scan_iter(count=1000))[:20]
    reconciled = _run(env, str(RATER), "reconcile")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert "0 account(s) checked, 0 with a difference" in reconciled.stdout
    listed = _run(env, str(RATER), "tariff", "list")
    assert listed.returncode == 0, listed.stderr
    assert "demo" not in listed.stdout

    # a second run replaces the first
    ours = demo.demo_settings(settings)
    _demo(env, "--count", "2000", "--workers", "1")
    mine = redis_client.connect(ours)
    try:
        assert len(Accounts(ours, mine).list_resellers()) == 1
        assert sorted(TariffStore(mine, ours, clickhouse=False).names()) == [
            "demo-buy",
            "demo-cards",
            "demo-retail",
        ]
        assert _demo_databases(settings) == [demo.DEMO_DATABASE]
        assert len(_demo_topics(settings)) == 3  # cdrs, dead letters, meta of one run

        cleaned = _demo(env, "--clean")
        assert "removed Redis database" in cleaned
        assert mine.dbsize() == 0
    finally:
        mine.close()
    assert _demo_databases(settings) == []
    assert _demo_topics(settings) == []
    assert not (settings.stack_dir / "demo").exists()
    assert "nothing of the demo was left" in _demo(env, "--clean")


def test_clean_never_flushes_a_database_the_demo_did_not_write(
    settings: Settings, redis: RedisLike
) -> None:
    ours = demo.demo_settings(settings)
    mine = redis_client.connect(ours)
    try:
        mine.flushdb()
        mine.set("someone-else", b"1")
        done = _run(_env(settings), sys.executable, "-m", "rater.demo", "--clean")
        assert done.returncode == 1
        assert "the demo does not touch it" in done.stderr
        assert mine.get("someone-else") == b"1"
    finally:
        mine.flushdb()
        mine.close()


def test_the_demo_shows_the_live_progress_line_on_a_terminal(
    kafka_topics: Settings, redis: RedisLike
) -> None:
    """Step 5 (the workers rate the CDRs) is the newcomer's first look at `rater run`: on a
    terminal it draws the live line (records rated, CDRs/s, lag), as `rater run` does."""
    settings = kafka_topics.replace(clickhouse_database=f"t_demo_{uuid.uuid4().hex[:8]}")
    clickhouse.migrate(settings)
    env = _env(settings)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    out = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            out.extend(chunk)

    try:
        run = subprocess.Popen(
            [sys.executable, "-m", "rater.demo", "--count", "1500", "--workers", "1"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        )  # fmt: skip
        os.close(slave)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            stdout, _ = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                run.kill()
            reader.join(5)
            os.close(master)
        screen = out.decode(errors="replace")
        assert run.returncode == 0, stdout.decode(errors="replace")[-3000:] + screen[-3000:]
        assert b"ALL TOTALS EQUAL THE MANIFEST" in stdout
        bars = [line for line in re.split(r"[\r\n]", screen) if "rating (1 worker)" in line]
        assert bars, screen[-3000:]
        assert any("CDRs/s" in bar and "lag " in bar for bar in bars)
        _demo(env, "--clean")
    finally:
        admin: Any = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()
