"""docker-compose.yml and the Dockerfile (no Docker engine runs here: the files are parsed and
checked against the settings the code reads)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import yaml

from rater.settings import PROJECT_ROOT, Settings

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, for "host_ip:host:container" entries."""
    ports = {}
    for entry in service.get("ports", []):
        *_, host, container = str(entry).split(":")
        ports[int(container)] = int(host)
    return ports


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka", "redis", "clickhouse", "rater"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert re.match(r"redis:7(\.|$)", services["redis"]["image"])
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["rater"]["build"] == "."


def test_kafka_is_a_single_kraft_node_without_auto_created_topics(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    assert "/data" in str(compose["services"]["redis"]["volumes"])


def test_host_ports_match_the_local_stack_defaults(compose: dict[str, Any]) -> None:
    defaults = Settings()
    services = compose["services"]
    assert _published(services["kafka"])[defaults.kafka_port] == defaults.kafka_port
    assert _published(services["redis"])[6379] == defaults.redis_port
    clickhouse = _published(services["clickhouse"])
    assert clickhouse[9000] == defaults.clickhouse_port
    assert clickhouse[8123] == defaults.clickhouse_http_port
    for service in services.values():
        for entry in service.get("ports", []):
            assert str(entry).startswith("127.0.0.1:"), f"{entry} is published beyond localhost"


def test_rater_can_scale(compose: dict[str, Any]) -> None:
    rater = compose["services"]["rater"]
    # `--scale rater=N` fails with a fixed name or a published host port
    assert "container_name" not in rater
    assert "ports" not in rater
    assert rater["command"][0] == "run"


def test_rater_variables_are_settings_the_code_reads(compose: dict[str, Any]) -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    for name in ("rater", "migrate"):
        env = _env(compose["services"][name])
        assert env, f"{name} has no RATER_* variables"
        for key in env:
            assert key.startswith("RATER_"), key
            assert key[len("RATER_") :].lower() in fields, f"{key} is not a setting"
        # compose substitutes ${RATER_PIN_SECRET:?...}; any value stands in for it here
        resolved = {k: ("s3cret" if v.startswith("${") else v) for k, v in env.items()}
        settings = Settings.from_env(resolved)
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.redis_url == "redis://redis:6379/0"
        assert (settings.clickhouse_host, settings.clickhouse_port) == ("clickhouse", 9000)


def test_healthchecks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("kafka", "redis", "clickhouse", "rater"):
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    depends = services["rater"]["depends_on"]
    for name in ("kafka", "redis", "clickhouse"):
        assert depends[name]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_dockerfile_runs_the_rater_command() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11", text, re.MULTILINE)
    assert 'ENTRYPOINT ["rater"]' in text
    for copied in ("rater", "kernels", "schemas", "pyproject.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(copied)}\b", text, re.MULTILINE), copied
    # the image copies README.md (pyproject's readme) before installing
    assert (PROJECT_ROOT / "README.md").is_file()
    assert 'CMD ["run", ' in text


def test_dockerfile_installs_the_wheel_not_the_source_tree() -> None:
    """A non-editable install from the wheel, with the runtime dependencies only: what
    `pip install rater` gives a user (tests/integration/test_installed_wheel.py runs that)."""
    text = DOCKERFILE.read_text()
    installs = re.findall(r"pip install[^\n&]*", text)
    assert installs, "the Dockerfile installs nothing"
    for command in installs:
        assert " -e " not in f"{command} ", command
        assert "[" not in command, f"{command}: an extra (dev, stack) in the image"
    assert re.search(r"pip wheel .*-w /wheels \.", text)
    assert re.search(r"pip install --no-deps /wheels/rater-\*\.whl", text)
