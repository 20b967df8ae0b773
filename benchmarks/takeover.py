"""How long after a worker's SIGKILL do the survivors own its partitions? On the running stack:

    .venv/bin/python -m benchmarks.takeover [--runs 5] [--session-ms 3000 6000] [--workers 2]

Each run starts `--workers` `rater run` processes in a fresh consumer group on a fresh topic,
waits until the group has settled (every partition assigned), SIGKILLs one worker and times
the moment a survivor logs an assignment that includes the killed worker's partitions (log
timestamps, JSON logs). Prints the median, min and max per session timeout. Not part of
`make bench` (a bench_* module): each run takes a session timeout or two plus process starts.
The result is recorded in docs/DESIGN.md section 7.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory

from rater import kafka
from rater.settings import Settings

RATER = str(Path(sys.executable).parent / "rater")


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "kafka_bootstrap", "topic_cdrs", "topic_dlq", "topic_meta", "consumer_group",
        "redis_url", "clickhouse_host", "clickhouse_port", "clickhouse_database",
        "session_timeout_ms", "heartbeat_interval_ms", "partitions",
    ):  # fmt: skip
        env[f"RATER_{name.upper()}"] = str(getattr(settings, name))
    env["RATER_METRICS_PORT"] = "0"
    env["RATER_LOG_FORMAT"] = "json"
    return env


def _assignments(log: Path) -> list[tuple[float, list[int]]]:
    """(epoch seconds, partitions) of each "partitions assigned" line of a worker's log."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"partitions assigned"' not in line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        out.append((when, list(event["partitions"])))
    return out


def _latest(log: Path) -> list[int]:
    found = _assignments(log)
    return found[-1][1] if found else []


def one_run(base: Settings, session_ms: int, workers: int, folder: Path) -> float:
    """Seconds from the SIGKILL to a survivor's assignment covering the victim's partitions."""
    tag = uuid.uuid4().hex[:8]
    settings = base.replace(
        topic_cdrs=f"takeover-{tag}", topic_dlq=f"takeover-{tag}.dlq",
        topic_meta=f"takeover-{tag}.meta", consumer_group=f"takeover-{tag}",
        session_timeout_ms=session_ms, heartbeat_interval_ms=max(100, session_ms // 6),
    )  # fmt: skip
    asyncio.run(kafka.ensure_topics(settings))
    logs = [folder / f"{tag}-{i}.log" for i in range(workers)]
    processes = []
    for log in logs:
        with log.open("ab") as sink:
            processes.append(
                subprocess.Popen([RATER, "run"], env=_env(settings), stdout=sink, stderr=sink)
            )
    try:
        deadline = time.monotonic() + 120
        while True:  # settled: every partition owned, each worker holding some
            owned = [_latest(log) for log in logs]
            if all(owned) and sorted(p for ps in owned for p in ps) == list(
                range(settings.partitions)
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the group did not settle: {owned}")
            time.sleep(0.2)
        time.sleep(1.0)  # a settled group, not one still joining
        victim, survivors = processes[0], list(zip(processes[1:], logs[1:], strict=True))
        lost = set(_latest(logs[0]))
        killed_at = time.time()
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for _process, log in survivors:
                for when, partitions in _assignments(log):
                    if when >= killed_at and lost <= set(partitions):
                        return when - killed_at
            time.sleep(0.05)
        raise RuntimeError("no survivor took the partitions over within 120 s")
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--session-ms", type=int, nargs="+", default=[3000, 6000])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    base = Settings.from_env()
    with TemporaryDirectory() as folder:
        for session_ms in args.session_ms:
            times = []
            for _ in range(args.runs):
                times.append(one_run(base, session_ms, args.workers, Path(folder)))
                print(f"  session {session_ms} ms: takeover {times[-1]:.2f} s", flush=True)
            print(
                f"session timeout {session_ms} ms, {args.workers} workers, {len(times)} runs: "
                f"median {statistics.median(times):.2f} s (min {min(times):.2f}, "
                f"max {max(times):.2f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
