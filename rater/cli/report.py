"""`rater report daily | destinations | margin | cards | query`: terminal tables, JSON lines, or
CSV / XLSX / JSON-lines files (-o/--output FILE, the format from its extension or --format)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from rater.analytics.reports import Reports, Scope, cards_in_scope, query_report
from rater.analytics.tables import Kind, Report, money_text, to_text, write_csv, write_xlsx
from rater.cli._output import emit_json_lines, json_line, json_lines_option
from rater.cli.db_summaries import DAY
from rater.cli.grammar import Deprecated, Group, format_of, info, output_option
from rater.cli.main import settings_of
from rater.clickhouse.executor import DriverExecutor, Param
from rater.errors import NotFound
from rater.settings import Settings


@click.group(cls=Group)
def report() -> None:
    """Traffic, destination, margin and card reports from the ClickHouse summaries.

    \b
    Days are inclusive; the default is the current month up to today. Days are UTC, or the
    reseller's own time zone with --reseller (or any zone with --timezone; then the figures
    are summed from rated_cdrs, since the summaries are per UTC day).
    Money is shown exactly (decimal strings from micro-units); ASR = answered / calls,
    ACD = average answered seconds (m:ss), billed minutes after billing steps.
    --json prints one JSON object per row; -o FILE writes .csv, .xlsx or .jsonl.
    """


def _scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--from", "first", type=DAY, help="First day [first of this month]."),
        click.option("--to", "last", type=DAY, help="Last day, inclusive [today]."),
        click.option("--reseller", help="Only this reseller's customers."),
        click.option(
            "--timezone",
            "timezone",
            metavar="ZONE",
            help="Days in this time zone [the reseller's own with --reseller, else UTC].",
        ),
        click.option("--tz", "old_tz", cls=Deprecated, new="--timezone", dest="timezone"),
        click.option("--customer", help="Only this customer."),
        *_output_options(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


#: what -o/--output writes
FORMATS = ("csv", "xlsx", "jsonl")


def _output_options() -> list[Callable[[Any], Any]]:
    """-o/--output, --format and --json, and the old --csv/--xlsx (rater/cli/grammar.py)."""
    path = click.Path(dir_okay=False, path_type=Path)
    return [
        output_option(FORMATS, "a table on stdout"),
        json_lines_option,
        click.option(
            "--csv", "old_csv", cls=Deprecated, new="-o FILE.csv", dest="output", type=path
        ),
        click.option(
            "--xlsx", "old_xlsx", cls=Deprecated, new="-o FILE.xlsx", dest="output", type=path
        ),
    ]


def _outputs(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_output_options()):
        command = option(command)
    return command


def _scope(
    first: date | None,
    last: date | None,
    reseller: str | None,
    customer: str | None,
    *,
    timezone: str | None = None,
    settings: Settings | None = None,
) -> Scope:
    today = datetime.now(UTC).date()
    first = first or today.replace(day=1)
    last = last or today
    if last < first:
        raise click.BadParameter(f"--to {last} is before --from {first}", param_hint="--to")
    if timezone is None and reseller and settings is not None:
        timezone = _reseller_zone(settings, reseller)
    return Scope(first, last, reseller or None, customer or None, timezone or "UTC")


def _reseller_zone(settings: Settings, reseller: str) -> str:
    """The reseller's report time zone from Redis; UTC when Redis does not know it."""
    from rater.accounts.api import Accounts  # noqa: PLC0415 - Redis only when needed

    try:
        return Accounts(settings).get_reseller(reseller).timezone or "UTC"
    except NotFound:
        return "UTC"


def _emit(result: Report, output: Path | None, output_format: str | None, as_json: bool) -> None:
    """The report as a table, JSON lines (--json), or a file (-o): what the grammar says."""
    kind = format_of(output, output_format, FORMATS)
    if output is None:
        if as_json or kind == "jsonl":
            emit_json_lines(json_rows(result))
        elif kind == "csv":
            _csv_to_stdout(result)
        elif kind == "xlsx":
            raise click.UsageError("an XLSX report goes to a file: add -o FILE.xlsx")
        else:
            click.echo(to_text(result), nl=False)
        return
    if kind == "csv":
        write_csv(result, output)
    elif kind == "xlsx":
        write_xlsx(result, output)
    else:
        with output.open("w", encoding="utf-8") as handle:
            handle.writelines(json_line(row) + "\n" for row in json_rows(result))
    info(f"wrote {len(result.rows)} row(s) to {output}")


def _csv_to_stdout(result: Report) -> None:
    """`--format csv` without -o: the file write_csv makes, on stdout."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.csv"
        write_csv(result, path)
        click.echo(path.read_text(encoding="utf-8"), nl=False)


def json_rows(result: Report) -> list[dict[str, Any]]:
    """A report's rows as --json prints them: money as exact decimal strings, counts as
    integers, ratios and minutes as decimal strings, null where undefined (no calls)."""
    return [
        {
            col.key: _json_value(value, col.kind)
            for col, value in zip(result.columns, row, strict=True)
        }
        for row in result.rows
    ]


def _json_value(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind is Kind.MONEY:
        return money_text(int(value))
    if kind is Kind.COUNT:
        return int(value)
    return str(value)


def _reports(settings: Settings) -> Reports:
    return Reports(DriverExecutor.from_settings(settings))


@report.command()
@_scope_options
@click.pass_context
def daily(
    ctx: click.Context,
    /,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    **scope: Any,
) -> None:
    """Calls, ASR, ACD, minutes, revenue, cost and margin per UTC day."""
    settings = settings_of(ctx)
    _emit(
        _reports(settings).daily(_scope(**scope, settings=settings)), output, output_format, as_json
    )


@report.command()
@_scope_options
@click.pass_context
def destinations(
    ctx: click.Context,
    /,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    **scope: Any,
) -> None:
    """The same figures per destination, highest revenue first."""
    settings = settings_of(ctx)
    _emit(
        _reports(settings).destinations(_scope(**scope, settings=settings)),
        output,
        output_format,
        as_json,
    )


@report.command()
@_scope_options
@click.pass_context
def margin(
    ctx: click.Context,
    /,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    **scope: Any,
) -> None:
    """Revenue, cost and margin per reseller and customer, highest margin first."""
    settings = settings_of(ctx)
    _emit(
        _reports(settings).margin(_scope(**scope, settings=settings)),
        output,
        output_format,
        as_json,
    )


@report.command()
@_scope_options
@click.pass_context
def cards(
    ctx: click.Context,
    /,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
    **scope: Any,
) -> None:
    """Card balances and status (live, from Redis) with each card's usage in the period."""
    from rater.accounts.api import Accounts  # noqa: PLC0415 - Redis only for this report

    settings = settings_of(ctx)
    the_scope = _scope(**scope, settings=settings)
    found, currency = cards_in_scope(Accounts(settings), the_scope)
    _emit(_reports(settings).cards(the_scope, found, currency), output, output_format, as_json)


@report.command("query")
@click.argument("name", required=False)
@click.option("--reseller", help="The reseller whose data the query reads.")
@click.option("--from", "first", type=DAY, help="First UTC day [first of this month].")
@click.option("--to", "last", type=DAY, help="Last UTC day, inclusive [today].")
@click.option(
    "--limit", type=int, default=10, show_default=True, help="Rows, where the query has a limit."
)
@_outputs
@click.pass_context
def query(
    ctx: click.Context,
    /,
    *,
    name: str | None,
    reseller: str | None,
    first: date | None,
    last: date | None,
    limit: int,
    output: Path | None,
    output_format: str | None,
    as_json: bool,
) -> None:
    """Run one of the example queries of docs/ANALYSTS.md (without NAME: list them)."""
    from rater.analytics.queries import QUERIES  # noqa: PLC0415

    if not name:
        if as_json:
            emit_json_lines({"name": q.name, "question": q.question} for q in QUERIES)
            return
        for known in QUERIES:
            click.echo(f"{known.name:<28} {known.question}")
        return
    if name not in {q.name for q in QUERIES}:
        raise click.BadParameter(
            f"{name!r}; known: {', '.join(q.name for q in QUERIES)}", param_hint="NAME"
        )
    if not reseller:
        raise click.UsageError("--reseller is required: the example queries read one reseller")
    scope = _scope(first, last, reseller, None, timezone="UTC")
    params: dict[str, Param] = {
        "reseller": reseller,
        "from": scope.first,
        "to": scope.last,
        "limit": limit,
    }
    ch = DriverExecutor.from_settings(settings_of(ctx))
    _emit(query_report(ch, name, params), output, output_format, as_json)
