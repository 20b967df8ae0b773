"""`rater`: the root command. Subcommands live one group per module and are imported lazily,
so `rater --help` stays fast and a broken optional module cannot break the others."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from typing import Any, NoReturn

import click

from rater.cli.grammar import QUIET, deprecation
from rater.errors import RaterError
from rater.escape import terminal
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
    "switch": (
        "rater.cli.switch",
        "switch",
        "Per-switch number, time and CDR format settings, API tokens and scopes.",
    ),
    "rate": ("rater.cli.rate", "rate", "Rate a JSONL file of CDRs offline against a tariff file."),
    "ingest": ("rater.cli.ingest", "ingest", "Publish a switch's CDR files to the cdrs topic."),
    "reseller": ("rater.cli.reseller", "reseller", "Create resellers, add credit, show coverage."),
    "customer": ("rater.cli.customer", "customer", "Create SIP customers, top up, show balances."),
    "card": (
        "rater.cli.card",
        "card",
        "Create and export batches of calling cards; show, top up or block one card.",
    ),
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
    "serve": ("rater.cli.serve", "serve", "Serve call authorization to switches over HTTP."),
    "dlq": ("rater.cli.dlq", "dlq", "Show or replay dead-lettered CDRs."),
    "conflicts": (
        "rater.cli.conflicts",
        "conflicts",
        "List re-sent CDRs whose rating fields differ from the first copy.",
    ),
    "reconcile": ("rater.cli.reconcile", "reconcile", "Prove Redis balances against ClickHouse."),
    "report": ("rater.cli.report", "report", "Daily, destination, margin and card reports."),
    "rerate": ("rater.cli.rerate", "rerate", "Price stored CDRs again and apply the difference."),
}


#: old group name -> the group it is now (kept for one release; rater/cli/grammar.py)
DEPRECATED_COMMANDS: dict[str, str] = {"cards": "card"}

#: the long-running services: they log at INFO by default, every other command at WARNING
SERVICES = frozenset({"run", "serve"})


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in DEPRECATED_COMMANDS:
            new = DEPRECATED_COMMANDS[cmd_name]
            deprecation(f"`rater {cmd_name}`", f"`rater {new}`")
            cmd_name = new
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
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Logs on stderr from this level [RATER_LOG_LEVEL; WARNING, INFO for `run` and `serve`].",
)
@click.option("--log-json", is_flag=True, default=None, help="Structured JSON logs on stderr.")
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bars and no informational lines (errors and warnings still on stderr).",
)
@click.version_option(package_name="rater", help="Show rater's version and exit.")
@click.pass_context
def cli(ctx: click.Context, /, log_json: bool | None, quiet: bool, **overrides: Any) -> None:
    """rater: price VoIP calls from Kafka, debit balances in Redis, store CDRs in ClickHouse.

    \b
    Quick start (local stack on 127.0.0.1):
      rater stack up                 start Kafka (Tansu), Redis and ClickHouse
      rater tariff import buy.csv --name wholesale
      rater run --workers 2          rate the `cdrs` topic
      rater report daily --from 2026-11-01 --to 2026-11-30

    \b
    Every command follows one grammar (README.md, "Command grammar"): amounts are options
    (--amount, --add/--deduct), -o/--output FILE writes a file, --json prints JSON (one
    object, or one per line for listings), money is always a decimal string.
    Every option can also be set with a RATER_* environment variable.
    """
    ctx.meta[QUIET] = quiet
    settings = Settings.from_env()
    if log_json:
        overrides["log_format"] = "json"
    if overrides.get("log_level"):
        overrides["log_level"] = overrides["log_level"].upper()
    elif ctx.invoked_subcommand not in SERVICES and not Settings.in_env("log_level"):
        # INFO lines of the libraries and of rater itself would mix with a command's output;
        # the services keep INFO (their logs are what an operator reads)
        overrides["log_level"] = "WARNING"
    settings = settings.replace(**overrides)
    configure_logging(settings)
    if settings.log_level.upper() != "DEBUG":
        _drop_client_tracebacks()
    ctx.obj = settings


#: client libraries that log a traceback with every failed connection attempt
_CLIENT_LOGGERS = ("clickhouse_driver", "aiokafka", "redis")


class _NoTraceback(logging.Filter):
    """Client libraries log a warning with a traceback for each connection attempt that fails
    ("Failed to connect to 127.0.0.1:19000" and 30 lines of stack); the command then fails
    with its own one-line error, which says the same. So their records below ERROR are
    dropped, and the others keep their exception as text but not its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".")[0] not in _CLIENT_LOGGERS:
            return True
        if record.levelno < logging.ERROR:
            return False
        if record.exc_info:
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _drop_client_tracebacks() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


def main(argv: list[str] | None = None) -> None:
    """Console entry point. Every failure ends as one line on stderr, `error: <cause>`, and
    exit status 1 (2 for a usage mistake: a bad option, a missing argument, with the command's
    --help to read): rater's own errors with their message (several lines only where the
    message lists several problems, as a tariff import does), and everything else (a service
    that does not answer, a file that cannot be read) described by what failed. No traceback
    reaches the user; with --log-level DEBUG (or RATER_LOG_LEVEL=DEBUG) the traceback of an
    unexpected error is printed as well. Everything printed from the error passes through
    rater.escape.terminal."""
    try:
        cli.main(args=argv, prog_name="rater", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as error:
        hint = f" (see `{error.ctx.command_path} --help`)" if error.ctx is not None else ""
        _fail(error.format_message() + hint, status=error.exit_code)
    except click.ClickException as error:
        _fail(error.format_message())
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except RaterError as error:
        _fail(str(error), lines=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # the reader of a pipe went away (`rater tariff export x | head`): nothing to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as error:  # the last line of defence: one line, no traceback
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        _fail(describe(error))


def _fail(message: str, *, lines: bool = False, status: int = 1) -> NoReturn:
    text = terminal(message.strip(), newlines=lines)
    if not lines:
        text = text.splitlines()[0] if text else "failed"
    click.secho(f"error: {text}", fg="red", err=True)
    sys.exit(status)


#: exception modules -> the service they talk to
_SERVICES = (("redis", "Redis"), ("clickhouse_driver", "ClickHouse"), ("aiokafka", "Kafka"))


def describe(error: BaseException) -> str:
    """One line naming what failed, for an exception that is not one of rater's own."""
    module = type(error).__module__
    name = type(error).__name__
    text = " ".join(str(error).split("Stack trace:")[0].split()) or name
    for prefix, service in _SERVICES:
        if module == prefix or module.startswith(prefix + "."):
            lowered = (name + " " + text).lower()
            if any(word in lowered for word in ("connect", "timeout", "timed out", "network")):
                return f"{service} does not answer: {text}"
            return f"{service}: {text}"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or text}{where}"
    if isinstance(error, TimeoutError):
        return f"timed out: {text}" if text != name else "timed out"
    return f"unexpected {name}: {text} (a fault in rater; --log-level DEBUG prints the traceback)"


def settings_of(ctx: click.Context) -> Settings:
    """The settings object the root command built (for subcommands)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, Settings)
    return obj


pass_settings = click.make_pass_decorator(Settings)
