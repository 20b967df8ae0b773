"""The `rater` command's error paths, run as a user runs it (the installed console script in a
subprocess): whatever fails (a service that is down, a bad option, a bad file), the user
sees one line `error: <cause>` on stderr, exit status 1, and never a traceback. And records
shown by `rater dlq show` reach the terminal with their control characters escaped."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from rater import kafka
from rater.settings import Settings

RATER = Path(sys.executable).with_name("rater")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _dead_env(tmp_path: Path) -> dict[str, str]:
    """RATER_* settings pointing at ports nothing listens on."""
    kafka_port, redis_port, native, http = _free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
    env.update(
        RATER_STACK_DIR=str(tmp_path / "stack"),
        RATER_KAFKA_BOOTSTRAP=f"127.0.0.1:{kafka_port}",
        RATER_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        RATER_CLICKHOUSE_PORT=str(native),
        RATER_CLICKHOUSE_HTTP_PORT=str(http),
        RATER_METRICS_PORT=str(_free_ports(1)[0]),
    )
    return env


def _run(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RATER), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_error_line(done: subprocess.CompletedProcess[str], *expected: str, status: int = 1) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == errors[0], done.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


# ---------------------------------------------------------------------------- services down
SERVICES_DOWN = [
    (("customer", "show", "c1"), "Redis does not answer"),
    (("tariff", "list"), "Redis does not answer"),
    (("switch", "list"), "Redis does not answer"),
    (("reconcile",), "Redis does not answer"),
    (("report", "daily"), "ClickHouse does not answer"),
    (("rerate", "--unrated"), "ClickHouse does not answer"),
    (("db", "migrate"), "does not answer"),
    (("dlq", "show"), "does not answer"),
    (("dlq", "replay"), "does not answer"),
]


@pytest.mark.parametrize(
    ("args", "expected"), SERVICES_DOWN, ids=[" ".join(a) for a, _ in SERVICES_DOWN]
)
def test_a_service_that_is_down_is_one_line(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    _one_error_line(_run(_dead_env(tmp_path), *args), expected)


# ---------------------------------------------------------------------------- bad options
BAD_OPTIONS = [
    (("dlq", "show", "--limit", "x"), ["'--limit'", "rater dlq show --help"]),
    (("nosuch",), ["No such command", "rater --help"]),
    (("stack", "up", "--bogus"), ["--bogus"]),
    (("report", "daily", "--from", "2026-13-01"), ["--from"]),
    (("report", "daily", "--from", "2026-02-01", "--to", "2026-01-01"), ["before"]),
    (("rate", "--tariff"), ["--tariff"]),
]


@pytest.mark.parametrize(
    ("args", "expected"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_a_bad_option_is_one_line(
    tmp_path: Path, args: tuple[str, ...], expected: list[str]
) -> None:
    # usage mistakes exit with status 2 (README.md), every other failure with 1
    _one_error_line(_run(_dead_env(tmp_path), *args), *expected, status=2)


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    env = _dead_env(tmp_path) | {"RATER_PARTITIONS": "many"}
    _one_error_line(_run(env, "stack", "status"), "RATER_PARTITIONS")


# ---------------------------------------------------------------------------- bad files
def test_bad_files_are_one_line(tmp_path: Path) -> None:
    env = _dead_env(tmp_path)
    (tmp_path / "bad.xlsx").write_bytes(b"garbage\x00\x01")
    (tmp_path / "ok.csv").write_text("prefix,rate\n49,0.1\n")
    (tmp_path / "cdrs.jsonl").write_text("{}\n")
    (tmp_path / "folder").mkdir()
    # a path an option refuses is a usage mistake (2); a file that fails to open or read, 1
    cases: list[tuple[tuple[str, ...], str, int]] = [
        (("rate", "--tariff", "missing.csv"), "missing.csv", 2),
        (("rate", "--tariff", "ok.csv", "--input", "missing.jsonl"), "missing.jsonl", 2),
        (("tariff", "import", "folder", "--name", "x"), "directory", 2),
        (
            ("rate", "--tariff", "ok.csv", "--input", "cdrs.jsonl", "--output", "no/such/x"),
            "no/such",
            1,
        ),
        (
            ("--stack-dir", str(tmp_path / "bad.xlsx" / "x"), "stack", "up", "--no-install"),
            "bad.xlsx",
            1,
        ),
    ]
    for args, expected, status in cases:
        _one_error_line(_run(env, *args, cwd=tmp_path), expected, status=status)
    done = _run(env, "rate", "--tariff", "bad.xlsx", "--input", "cdrs.jsonl", cwd=tmp_path)
    assert "Traceback" not in done.stderr
    assert done.returncode == 1
    assert done.stderr.startswith("error: bad.xlsx")


# ---------------------------------------------------------------------------- dlq show
HOSTILE = b'{"cdr_id": "\x1b[2J\x1b]0;owned\x07", "callee": "\xe2\x80\xae123\r"}'


@pytest.mark.integration
def test_dlq_show_escapes_what_the_records_hold(settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    ours = settings.replace(
        topic_cdrs=f"cdrs-esc-{tag}",
        topic_dlq=f"cdrs-esc-{tag}.dlq",
        topic_meta=f"cdrs-esc-{tag}.meta",
    )

    async def put() -> None:
        await kafka.ensure_topics(ours)
        producer = AIOKafkaProducer(bootstrap_servers=ours.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                ours.topic_dlq,
                HOSTILE,
                partition=0,
                headers=[
                    ("reason", b"bad JSON near \x1b[31m"),
                    ("topic", ours.topic_cdrs.encode()),
                    ("topic_id", b"abcdef0123"),
                    ("partition", b"0"),
                    ("offset", b"7"),
                ],
            )
        finally:
            await producer.stop()

    asyncio.run(put())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
    env.update(
        RATER_KAFKA_BOOTSTRAP=ours.kafka_bootstrap,
        RATER_TOPIC_DLQ=ours.topic_dlq,
        RATER_REDIS_URL=ours.redis_url,
    )
    done = _run(env, "dlq", "show")
    assert done.returncode == 0, done.stderr
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in done.stdout, repr(done.stdout)
    assert "\\x1b[2J\\x1b]0;owned\\x07" in done.stdout
    assert "\\u202e123\\x0d" in done.stdout
    assert "bad JSON near \\x1b[31m" in done.stdout
