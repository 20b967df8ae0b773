"""`rater db`: ClickHouse migrations (and, when present, summary checks and rebuilds)."""

from __future__ import annotations

import importlib

import click

from rater import clickhouse
from rater.cli._output import emit_json, emit_json_lines, json_lines_option, json_option
from rater.cli.grammar import Group
from rater.cli.main import settings_of


@click.group(cls=Group)
def db() -> None:
    """ClickHouse schema: migrations in schemas/clickhouse/NNN_name.sql."""


@db.command()
@json_option
@click.pass_context
def migrate(ctx: click.Context, as_json: bool) -> None:
    """Create the database and apply the migrations not yet applied (safe to re-run)."""
    settings = settings_of(ctx)
    applied = clickhouse.migrate(settings)
    if as_json:
        emit_json({"database": settings.clickhouse_database, "applied": list(applied)})
        return
    for name in applied:
        click.echo(f"applied {name}")
    if not applied:
        click.echo(f"{settings.clickhouse_database}: up to date, nothing applied")


@db.command("list")
@json_lines_option
@click.pass_context
def list_migrations(ctx: click.Context, as_json: bool) -> None:
    """The migration files and whether each is applied on the configured database (--json: one
    object per migration)."""
    settings = settings_of(ctx)
    client = clickhouse.client(settings, database="default", numpy=False)
    database = settings.clickhouse_database
    exists = client.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'schema_migrations'",
        {"db": database},
    )[0][0]
    done: set[int] = set()
    if exists:
        done = {
            int(r[0]) for r in client.execute(f"SELECT number FROM {database}.schema_migrations")
        }
    for migration in clickhouse.migrations():
        if as_json:
            emit_json_lines([{"name": migration.name, "applied": migration.number in done}])
            continue
        mark = "applied" if migration.number in done else "pending"
        click.echo(f"{migration.name:<40} {mark}")


# Optional commands from the analysts' module (`db check`, `db rebuild-summaries`): added when
# rater/cli/db_summaries.py exists and exports COMMANDS, a list of click commands.
try:
    _summaries = importlib.import_module("rater.cli.db_summaries")
except ModuleNotFoundError as _error:
    if _error.name != "rater.cli.db_summaries":
        raise
else:
    for _command in getattr(_summaries, "COMMANDS", []):
        db.add_command(_command)
