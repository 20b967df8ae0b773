"""Helpers for the admin CLI and walkthrough tests: run `rater` as a user would, publish CDRs.

Commands run through `rater.cli.main.main`, the console entry point itself (click parsing,
the one-line printing of rater's errors, exit statuses), with the test session's settings as
RATER_* variables. By default in this process (a subprocess costs about a second of imports
per command); with `process=True` as the `rater` executable in a subprocess, which
`rater run` always uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from rater import clickhouse, kafka
from rater.cli.main import main
from rater.kafka import producer
from rater.settings import Settings

RATER = Path(sys.executable).with_name("rater")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "walkthrough"
BUY_TARIFF = "xeloq buy"
CARD_TARIFF = "Calling cards rates 40% - 60/60 billing - 29 sept 2008"


@contextlib.contextmanager
def own_world(base: Settings, *, topics: bool) -> Iterator[Settings]:
    """The session's services with a ClickHouse database (and topics, consumer group) of our
    own, so the ledger rows and rated CDRs these tests make never meet another test's counts.
    """
    tag = uuid.uuid4().hex[:8]
    ours = base.replace(
        clickhouse_database=f"t_walk_{tag}",
        topic_cdrs=f"walk-{tag}",
        topic_dlq=f"walk-{tag}.dlq",
        topic_meta=f"walk-{tag}.meta",
        consumer_group=f"walk-{tag}",
        # the calls of these tests are of 2026-11-20 (call() below): the clock is that day's
        # noon, so they are neither late nor in the future (docs/DESIGN.md section 4)
        clock_start=base.clock_start or "2026-11-20T12:00:00+00:00",
    )
    clickhouse.migrate(ours)
    if topics:
        asyncio.run(kafka.ensure_topics(ours))
    try:
        yield ours
    finally:
        admin = clickhouse.client(ours, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {ours.clickhouse_database}")
        admin.disconnect()


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a `rater` subprocess use exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
    for field in dataclasses.fields(settings):
        env[f"RATER_{field.name.upper()}"] = str(getattr(settings, field.name))
    env["RATER_LOG_LEVEL"] = "WARNING"
    env["COLUMNS"] = "120"
    return env


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def __str__(self) -> str:
        return f"rater {' '.join(self.args)} -> {self.code}\n{self.out}\n{self.err}"


@dataclass(frozen=True)
class Cli:
    """`cli("reseller", "show", "x")` runs `rater reseller show x` and checks the exit status."""

    settings: Settings
    cwd: Path

    def __call__(
        self, *args: str, code: int = 0, process: bool = False, timeout: float = 120
    ) -> Result:
        if process:
            done = subprocess.run(
                [str(RATER), *args],
                env=cli_env(self.settings),
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        else:
            result = self._in_process(args)
        assert result.code == code, str(result)
        return result

    def run_env(self, changes: dict[str, str | None], *args: str, code: int = 0) -> Result:
        """`rater ARGS` in a subprocess with some RATER_* variables changed (None: unset)."""
        env = cli_env(self.settings)
        for name, value in changes.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        done = subprocess.run(
            [str(RATER), *args], env=env, cwd=self.cwd, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        assert result.code == code, str(result)
        return result

    def _in_process(self, args: tuple[str, ...]) -> Result:
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RATER_")}
        env.update(cli_env(self.settings))
        with (
            _cwd(self.cwd),
            CliRunner().isolation(env=env) as (out, err, _mixed),
        ):
            try:
                main(list(args))
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            return Result(args, code, out.getvalue().decode(), err.getvalue().decode())


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def setup_tariffs(cli: Cli) -> None:
    """The buy tariff from the fixture (the operator's)."""
    cli(
        "tariff", "import", str(FIXTURES / "buy_rates.csv"),
        "--name", BUY_TARIFF, "--steps", "1/1", "--decimals", "4",
    )  # fmt: skip


def derive_card_tariff(cli: Cli, owner: str) -> None:
    """The notice's derived card tariff (+40%, 60/60), a table of reseller `owner`."""
    cli(
        "tariff", "derive", "--base", BUY_TARIFF, "--markup", "40",
        "--steps", "60/60", "--name", CARD_TARIFF, "--owner", owner,
    )  # fmt: skip


def call(
    cdr_id: str,
    *,
    account: str,
    callee: str,
    billsec: int,
    card: str = "",
    caller: str = "31205550000",
    start: datetime | None = None,
    auth_id: str = "",
) -> dict[str, Any]:
    """A CDR message as a switch publishes it (docs/DESIGN.md section 5)."""
    begin = start or datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    answer = begin + timedelta(seconds=4)
    message: dict[str, Any] = {
        "cdr_id": cdr_id,
        "switch": "ams-sbc-1",
        "account": account,
        "caller": caller,
        "callee": callee,
        "start_time": begin.isoformat(),
        "answer_time": answer.isoformat(),
        "end_time": (answer + timedelta(seconds=billsec)).isoformat(),
        "duration": billsec + 4,
        "billsec": billsec,
        "disposition": "ANSWERED",
    }
    if card:
        message["card"] = card
    if auth_id:
        message["auth_id"] = auth_id
    return message


def publish(settings: Settings, messages: Sequence[dict[str, Any]]) -> None:
    """Publish CDR messages to the session's cdrs topic, keyed by account."""

    async def send() -> None:
        client = producer(settings)
        await client.start()
        try:
            for message in messages:
                await client.send_and_wait(
                    settings.topic_cdrs, orjson.dumps(message), key=message["account"].encode()
                )
        finally:
            await client.stop()

    asyncio.run(send())


def rate_published(cli: Cli, expected_records: int) -> Result:
    """Run the streaming rater until the topic is idle; check it took every record."""
    result = cli("run", "--until-idle", "3", process=True, timeout=180)
    assert f"records: {expected_records} " in result.out, str(result)
    return result
