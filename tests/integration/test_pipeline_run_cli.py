"""`rater run` as its users see it (real processes, real services): progress while rating, a
stalled worker that says why and exits, an unreachable service waited out, workers restarted
or given up on, and a Ctrl-C in the middle of a rebalance that ends everything in seconds."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import (
    RESELLER,
    env_of,
    make_world,
    pipeline_settings,
    publish,
    spawn,
    workload,
)

from rater import kafka
from rater.redis import keys
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration

#: short sessions: Tansu joins take about session_timeout / 2
FAST = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}
RATER = str(Path(sys.executable).parent / "rater")


def _own(settings: Settings, tag: str) -> Settings:
    """Topics and a group of the test's own: its lag and its ends are its records only; the
    world's clock, so its CDRs are neither late nor in the future."""
    ours = pipeline_settings(settings).replace(
        topic_cdrs=f"{settings.topic_cdrs}-{tag}",
        topic_dlq=f"{settings.topic_cdrs}-{tag}.dlq",
        topic_meta=f"{settings.topic_cdrs}-{tag}.meta",
        consumer_group=f"{settings.consumer_group}-{tag}",
        **FAST,
    )
    asyncio.run(kafka.ensure_topics(ours))
    return ours


def _wait(process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"rater run did not exit within {timeout_s} s:\n{tail}") from None


def _wait_for(predicate: Any, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-4000:]
            raise AssertionError(f"{what}: not within {timeout_s} s\n{tail}")
        time.sleep(0.2)


def _stored(ch: Any, tag: str) -> tuple[int, int, int]:
    rows = ch.execute(
        "SELECT count(), countDistinct(switch, cdr_id), sum(price * sign) FROM rated_cdrs "
        "WHERE cdr_id LIKE %(p)s",
        {"p": f"{tag}-%"},
    )
    return int(rows[0][0]), int(rows[0][1]), int(rows[0][2] or 0)


def _children(pid: int) -> list[int]:
    """The worker processes a `rater run --workers N` started (spawned interpreters)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _drain_and_check(settings: Settings, ch: Any, tag: str, load: Any, log: Path) -> None:
    """A clean worker takes what is left; then every valid CDR is stored once."""
    final = spawn(settings, "--until-idle", "4", log=log)
    assert _wait(final, log, 120) == 0
    count, distinct, price = _stored(ch, tag)
    assert count == distinct == load.unique
    assert price == sum(load.price.values())


def test_rater_run_logs_progress_lines_when_stderr_is_not_a_terminal(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 3000, seed=21, prefix=tag)
    publish(settings, load.messages)
    log = tmp_path / "run.log"
    run = spawn(settings, "--workers", "2", "--until-idle", "3", "--batch", "20", log=log,
                progress_interval_s="1")  # fmt: skip
    assert _wait(run, log, 120) == 0
    text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if "rated=" in line and "cdrs_per_s=" in line]
    assert len(lines) >= 2, text[-3000:]
    for line in lines:
        assert re.search(r"lag=(\d+|\?)", line)
        assert re.search(r"eta_s=(\d+|\?)", line)
    assert any(re.search(r"lag=\d+", line) for line in lines)
    assert "rated=3000" in lines[-1]
    assert "records: 3000 in" in text  # the summary on stdout (same log here)
    assert _stored(ch, tag)[0] == load.unique


def test_rater_run_draws_a_live_line_on_a_terminal(
    kafka_topics: Settings, redis: RedisLike, ch: Any
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 3000, seed=22, prefix=tag)
    publish(settings, load.messages)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    run = subprocess.Popen(
        [RATER, "run", "--until-idle", "3", "--batch", "20"], env=env_of(settings),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
    )  # fmt: skip
    os.close(slave)
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

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert run.wait(timeout=120) == 0
    finally:
        if run.poll() is None:
            run.kill()
        reader.join(5)
        os.close(master)
    screen = out.decode(errors="replace")
    bars = [line for line in re.split(r"[\r\n]", screen) if "rating (1 worker)" in line]
    assert bars, screen[-3000:]
    assert any("CDRs/s" in bar and "lag " in bar for bar in bars)
    assert any("3.00k" in bar for bar in bars)  # every record rated by the end
    assert _stored(ch, tag)[0] == load.unique


def test_a_stalled_worker_says_why_and_exits_with_status_3(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    """The checkpoint of its second batch never completes, the event loop stays free (as in
    the deadlock of a lock held across the fetch): lag, nothing committed, services answer."""
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 600, seed=23, prefix=tag)
    publish(settings, load.messages)
    log = tmp_path / "run.log"
    started = time.monotonic()
    run = spawn(settings, "--batch", "50", log=log, fault_point="stall_before_commit",
                fault_after_batches="2", stall_timeout_s="4", shutdown_timeout_s="4")  # fmt: skip
    assert _wait(run, log, 90) == 3
    text = log.read_text(errors="replace")
    assert re.search(r"error.*worker stalled: lag \d+ on partitions", text), text[-3000:]
    assert "Redis, ClickHouse and Kafka answer" in text
    assert "Traceback" not in text
    assert time.monotonic() - started < 60
    _drain_and_check(settings, ch, tag, load, log)


def test_a_worker_whose_event_loop_froze_is_ended_by_its_watchdog(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 300, seed=24, prefix=tag)
    publish(settings, load.messages)
    log = tmp_path / "run.log"
    run = spawn(settings, "--batch", "50", log=log, fault_point="freeze_before_commit",
                fault_after_batches="2", stall_timeout_s="4", shutdown_timeout_s="3")  # fmt: skip
    assert _wait(run, log, 90) == 3
    text = log.read_text(errors="replace")
    assert "the event loop has not run for" in text, text[-3000:]
    assert "worker ended at once" in text
    _drain_and_check(settings, ch, tag, load, log)


def test_an_unreachable_clickhouse_is_waited_out_not_taken_for_a_stall(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 200, seed=25, prefix=tag)
    publish(settings, load.messages)
    log = tmp_path / "run.log"
    # port 1: nothing listens there, the connection is refused at once
    run = spawn(settings, "--batch", "50", log=log, clickhouse_port="1", stall_timeout_s="3")

    def said(text: str) -> Any:
        return lambda: text in log.read_text(errors="replace")

    # the first step that needs ClickHouse: the check for Redis losses before the first debit
    _wait_for(said("ClickHouse unreachable: retrying to"), 60, "a retry line", log)
    # well past the stall timeout: the watchdog sees ClickHouse down, the worker waits
    _wait_for(said("ClickHouse (") or said("does not answer"), 30, "the watchdog's note", log)
    time.sleep(2)
    assert run.poll() is None, log.read_text(errors="replace")[-3000:]
    stopping = time.monotonic()
    run.send_signal(signal.SIGTERM)
    assert _wait(run, log, 30) == 0
    assert time.monotonic() - stopping < settings.shutdown_timeout_s + 2
    text = log.read_text(errors="replace")
    assert "worker stalled" not in text
    assert "Traceback" not in text
    assert _stored(ch, tag)[0] == 0  # nothing stored, nothing committed: all of it is left
    _drain_and_check(settings, ch, tag, load, log)


def test_a_killed_worker_is_restarted_and_the_totals_are_exact(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    world = make_world(settings, redis)
    opening = int(redis.hget(keys.reseller(RESELLER), "bal") or 0)
    load = workload(world, 2000, seed=26, prefix=tag)
    log = tmp_path / "run.log"
    run = spawn(settings, "--workers", "2", "--batch", "20", log=log, restart_backoff_ms="200")
    try:
        _wait_for(lambda: len(_children(run.pid)) == 2, 60, "two workers", log)
        publish(settings, load.messages)
        _wait_for(lambda: _stored(ch, tag)[0] > 100, 90, "rows stored", log)
        os.kill(_children(run.pid)[0], signal.SIGKILL)
        _wait_for(lambda: _stored(ch, tag)[0] >= load.unique, 120, "every row", log)
        _wait_for(lambda: len(_children(run.pid)) == 2, 60, "the worker restarted", log)
    finally:
        run.send_signal(signal.SIGTERM)
        code = _wait(run, log, 30)
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert re.search(r"worker \d was killed by SIGKILL: restarting it in 0.2 s", text)
    assert "restarting worker" in text
    assert _children(run.pid) == []
    count, distinct, price = _stored(ch, tag)
    assert count == distinct == load.unique
    assert price == sum(load.price.values())
    assert opening - int(redis.hget(keys.reseller(RESELLER), "bal") or 0) == sum(load.cost.values())


def test_workers_that_keep_failing_are_all_stopped_with_one_clear_line(
    kafka_topics: Settings, redis: RedisLike, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 400, seed=27, prefix=tag)
    publish(settings, load.messages)
    log = tmp_path / "run.log"
    run = spawn(settings, "--workers", "2", "--batch", "20", log=log, fault_point="after_debit",
                fault_after_batches="1", restart_max="3", restart_backoff_ms="100")  # fmt: skip
    assert _wait(run, log, 180) == 1
    text = log.read_text(errors="replace")
    final = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(final) == 1, text[-3000:]
    assert re.match(
        r"error: worker \d failed 3 times in a row \(last: was killed by SIGKILL\): "
        r"stopped all workers$",
        final[0],
    )
    assert "Traceback" not in text
    assert _children(run.pid) == []


def test_ctrl_c_in_the_middle_of_a_rebalance_stops_every_worker_within_seconds(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = _own(kafka_topics, tag)
    load = workload(make_world(settings, redis), 4000, seed=28, prefix=tag)
    log, other_log = tmp_path / "run.log", tmp_path / "other.log"
    with log.open("ab") as sink:  # a session of its own: Ctrl-C reaches the whole group
        run = subprocess.Popen(
            [RATER, "run", "--workers", "2", "--batch", "20"], env=env_of(settings),
            stdout=sink, stderr=sink, start_new_session=True,
        )  # fmt: skip
    other = None
    try:
        text = lambda: log.read_text(errors="replace")  # noqa: E731
        _wait_for(lambda: text().count("partitions assigned") >= 2, 60, "both joined", log)
        publish(settings, load.messages)
        revoked_before = text().count("partitions revoked")
        other = spawn(settings, "--batch", "20", log=other_log)  # joins: a rebalance
        _wait_for(lambda: text().count("partitions revoked") > revoked_before, 60,
                  "the rebalance began", log)  # fmt: skip
        stopping = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)
        code = _wait(run, log, 30)
        took = time.monotonic() - stopping
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        if other is not None:
            other.send_signal(signal.SIGTERM)
            assert _wait(other, other_log, 30) == 0
    assert code == 0, text()[-3000:]
    assert took < settings.shutdown_timeout_s + 3, f"stopping took {took:.1f} s"
    assert "Traceback" not in text()
    assert "KeyboardInterrupt" not in text()
    _drain_and_check(settings, ch, tag, load, log)
