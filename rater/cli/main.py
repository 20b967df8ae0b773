"""`rater`: the root command. Subcommands live one group per module and are imported lazily,
so `rater --help` stays fast and a broken optional module cannot break the others."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from rater.errors import RaterError
from rater.logs import configure_logging
from rater.settings import Settings

#: command name -> (module, attribute, one-line help shown by `rater --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "stack": (
        "rater.cli.stack",
        "stack",
        "Start, stop and inspect the local Kafka, Redis and ClickHouse.",
    ),
    "db": ("rater.cli.db", "db", "ClickHouse migrations, summary checks and rebuilds."),
    "tariff": (
        "rater.cli.tariff",
        "tariff",
        "Import, derive, list, show and export tariff tables.",
    ),
    "switch": ("rater.cli.switch", "switch", "Per-switch number and time settings."),
    "rate": ("rater.cli.rate", "rate", "Rate a JSONL file of CDRs offline against a tariff file."),
    "reseller": ("rater.cli.reseller", "reseller", "Create resellers, add credit, show coverage."),
    "customer": ("rater.cli.customer", "customer", "Create SIP customers, top up, show balances."),
    "cards": ("rater.cli.cards", "cards", "Create and export batches of calling cards (XLSX)."),
    "card": ("rater.cli.card", "card", "Show, top up or block one calling card."),
    "ani": ("rater.cli.ani", "ani", "Add or remove caller numbers for PIN-less card dialling."),
    "authorize": (
        "rater.cli.authorize",
        "authorize",
        "Ask whether a call may start, and for how long.",
    ),
    "loadgen": (
        "rater.cli.loadgen",
        "loadgen",
        "Publish synthetic CDRs with a reference manifest.",
    ),
    "run": ("rater.cli.run", "run", "Run the streaming rater workers."),
    "dlq": ("rater.cli.dlq", "dlq", "Show or replay dead-lettered CDRs."),
    "reconcile": ("rater.cli.reconcile", "reconcile", "Prove Redis balances against ClickHouse."),
    "report": ("rater.cli.report", "report", "Daily, destination, margin and card reports."),
    "rerate": ("rater.cli.rerate", "rerate", "Price stored CDRs again and apply the difference."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                return None
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    return importlib.util.find_spec(COMMANDS[name][0]) is not None


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--kafka",
    "kafka_bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers [RATER_KAFKA_BOOTSTRAP].",
)
@click.option("--redis-url", metavar="URL", help="Redis URL [RATER_REDIS_URL].")
@click.option("--clickhouse-host", metavar="HOST", help="ClickHouse host [RATER_CLICKHOUSE_HOST].")
@click.option(
    "--clickhouse-port",
    type=int,
    metavar="PORT",
    help="ClickHouse native port [RATER_CLICKHOUSE_PORT].",
)
@click.option(
    "--database",
    "clickhouse_database",
    metavar="NAME",
    help="ClickHouse database [RATER_CLICKHOUSE_DATABASE].",
)
@click.option("--stack-dir", type=click.Path(), help="Local stack state folder [RATER_STACK_DIR].")
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
)
@click.option("--log-json", is_flag=True, default=None, help="Structured JSON logs on stderr.")
@click.version_option(package_name="rater")
@click.pass_context
def cli(ctx: click.Context, /, log_json: bool | None, **overrides: Any) -> None:
    """rater: price VoIP calls from Kafka, debit balances in Redis, store CDRs in ClickHouse.

    \b
    Quick start (local stack on 127.0.0.1):
      rater stack up                 start Kafka (Tansu), Redis and ClickHouse
      rater tariff import buy.csv --name wholesale
      rater run --workers 2          rate the `cdrs` topic
      rater report daily --from 2026-11-01 --to 2026-11-30

    Every option can also be set with a RATER_* environment variable.
    """
    settings = Settings.from_env()
    if log_json:
        overrides["log_format"] = "json"
    if overrides.get("log_level"):
        overrides["log_level"] = overrides["log_level"].upper()
    settings = settings.replace(**overrides)
    configure_logging(settings)
    ctx.obj = settings


def main(argv: list[str] | None = None) -> None:
    """Console entry point: rater's own errors print as one clear message, exit status 1."""
    try:
        cli.main(args=argv, prog_name="rater", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except RaterError as error:
        click.secho(f"error: {error}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def settings_of(ctx: click.Context) -> Settings:
    """The settings object the root command built (for subcommands)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


pass_settings = click.make_pass_decorator(Settings)
