"""`rater stack up | down | status | logs`: the local services on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable

import click

from rater import stack as local_stack
from rater.cli._output import emit_json
from rater.cli.grammar import Group, quiet
from rater.cli.main import settings_of
from rater.stack import redis_cluster as redis_cluster_stack
from rater.stack.broker import MEMORY_ONLY_NOTE


@click.group(cls=Group)
def stack() -> None:
    """Start, stop and inspect the local Kafka (Tansu), Redis and ClickHouse.

    \b
    Ports and the state folder come from the settings:
      RATER_KAFKA_BOOTSTRAP   127.0.0.1:19092     broker (log in memory only)
      RATER_REDIS_URL         redis://127.0.0.1:16379/0   (append-only file on)
      RATER_CLICKHOUSE_PORT   19000  native,  RATER_CLICKHOUSE_HTTP_PORT 18123  HTTP
      RATER_METRICS_PORT      9464   metrics of `rater run`;  RATER_HTTP_PORT 18080  HTTP API
      RATER_STACK_DIR         .stack/ in a checkout, else ~/.local/state/rater/stack
    """


@stack.command()
@click.option("--no-install", is_flag=True, help="Never run apt-get; fail if a package is missing.")
@click.option(
    "--timeout", type=float, default=None, help="Seconds to wait for each service to answer."
)
@click.option(
    "--redis-cluster",
    is_flag=True,
    help="Also start a three-node Redis Cluster on 127.0.0.1:<P>401-<P>403 (see redis_cluster).",
)
@click.pass_context
def up(ctx: click.Context, no_install: bool, timeout: float | None, redis_cluster: bool) -> None:
    """Start what is not running, wait for answers, create topics, apply migrations.

    Running it again changes nothing. On failure it exits non-zero with the log tail of the
    service that failed.
    """
    settings = settings_of(ctx)
    echo = _say()
    # the single Redis is probed on redis_url even when RATER_REDIS_CLUSTER_NODES is exported
    single = settings.replace(redis_cluster_nodes="")
    report = local_stack.up(single, echo=echo, install=not no_install, wait_s=timeout)
    if redis_cluster:
        redis_cluster_stack.up(settings, echo=echo)
    if not report.started:
        echo("stack already up: nothing started")
    echo(f"state folder: {settings.stack_dir}")
    echo(f"note: {MEMORY_ONLY_NOTE}")


def _say() -> Callable[[str], None]:
    """What `stack up` and `stack down` print as they go: nothing with `rater --quiet`."""
    silent = quiet()

    def say(line: str) -> None:
        if not silent:
            click.echo(line)

    return say


@stack.command()
@click.option(
    "--purge", is_flag=True, help="Also delete the state folder (Redis and ClickHouse data)."
)
@click.pass_context
def down(ctx: click.Context, purge: bool) -> None:
    """Stop the services this stack started (by PID file). Data stays unless --purge."""
    local_stack.down(settings_of(ctx), purge=purge, echo=_say())


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each service's ports, its PID and whether it answers a real request; then the ports of
    rater's own processes (worker metrics, the HTTP API) and whether something listens there.

    Exits with status 1 when a service of the stack does not answer.
    """
    settings = settings_of(ctx)
    rows = local_stack.status(settings)
    own = local_stack.endpoints(settings)
    ok = all(row.answering for row in rows)
    if as_json:
        emit_json(
            {
                "services": [dataclasses.asdict(row) for row in rows],
                "rater": [dataclasses.asdict(endpoint) for endpoint in own],
                "answering": ok,
                "state_folder": str(settings.stack_dir),
                "note": MEMORY_ONLY_NOTE,
            }
        )
    else:
        click.echo(f"{'service':<20} {'port':>6} {'pid':>8}  {'answering':<9}  version / detail")
        for row in rows:
            pid = str(row.pid) if row.pid else "-"
            answer = "yes" if row.answering else "no"
            # the broker's note (log in memory only) is printed once, below
            note = "" if row.note == MEMORY_ONLY_NOTE else row.note
            detail = "; ".join(d for d in (row.version, row.binary, note) if d)
            click.echo(f"{row.name:<20} {row.port:>6} {pid:>8}  {answer:<9}  {detail}")
        for endpoint in own:
            listening = "listening" if endpoint.listening else "free"
            click.echo(
                f"{endpoint.name:<20} {endpoint.port:>6} {'-':>8}  {listening:<9}  "
                f"{endpoint.what} [{endpoint.setting}]"
            )
        click.echo(f"state folder: {settings.stack_dir}")
        click.echo(f"note: {MEMORY_ONLY_NOTE}")
    if not ok:
        sys.exit(1)


@stack.command()
@click.argument("service", required=False, type=click.Choice(local_stack.service_names()))
@click.option("-n", "--lines", type=int, default=40, show_default=True, help="Lines per log file.")
@click.pass_context
def logs(ctx: click.Context, service: str | None, lines: int) -> None:
    """The last lines of a service's logs (all services when none is named)."""
    click.echo(local_stack.logs(settings_of(ctx), service, lines))
