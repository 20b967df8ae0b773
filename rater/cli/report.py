"""`rater report daily | destinations | margin | cards`: terminal tables, or CSV / XLSX files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click

from rater.analytics.reports import Reports, Scope, cards_in_scope, query_report
from rater.analytics.tables import Report, to_text, write_csv, write_xlsx
from rater.cli.db_summaries import DAY
from rater.cli.grammar import Group
from rater.cli.main import settings_of
from rater.clickhouse.executor import DriverExecutor, Param
from rater.errors import NotFound
from rater.settings import Settings


@click.group(cls=Group)
def report() -> None:
    """Traffic, destination, margin and card reports from the ClickHouse summaries.

    \b
    Days are inclusive; the default is the current month up to today. Days are UTC, or the
    reseller's own time zone with --reseller (or any zone with --tz; then the figures are
    summed from rated_cdrs, since the summaries are per UTC day).
    Money is shown exactly (decimal strings from micro-units); ASR = answered / calls,
    ACD = average answered seconds (m:ss), billed minutes after billing steps.
    """


def _scope_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--from", "first", type=DAY, help="First day [first of this month]."),
        click.option("--to", "last", type=DAY, help="Last day, inclusive [today]."),
        click.option("--reseller", help="Only this reseller's customers."),
        click.option(
            "--tz",
            "timezone",
            help="Days in this time zone [the reseller's own with --reseller, else UTC].",
        ),
        click.option("--customer", help="Only this customer."),
        click.option(
            "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write CSV."
        ),
        click.option(
            "--xlsx",
            "xlsx_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write XLSX.",
        ),
    ]
    for option in reversed(options):
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


def _emit(result: Report, csv_path: Path | None, xlsx_path: Path | None) -> None:
    if csv_path:
        write_csv(result, csv_path)
        click.echo(f"wrote {len(result.rows)} row(s) to {csv_path}")
    if xlsx_path:
        write_xlsx(result, xlsx_path)
        click.echo(f"wrote {len(result.rows)} row(s) to {xlsx_path}")
    if not csv_path and not xlsx_path:
        click.echo(to_text(result), nl=False)


def _reports(settings: Settings) -> Reports:
    return Reports(DriverExecutor.from_settings(settings))


@report.command()
@_scope_options
@click.pass_context
def daily(
    ctx: click.Context, /, csv_path: Path | None, xlsx_path: Path | None, **scope: Any
) -> None:
    """Calls, ASR, ACD, minutes, revenue, cost and margin per UTC day."""
    settings = settings_of(ctx)
    _emit(_reports(settings).daily(_scope(**scope, settings=settings)), csv_path, xlsx_path)


@report.command()
@_scope_options
@click.pass_context
def destinations(
    ctx: click.Context, /, csv_path: Path | None, xlsx_path: Path | None, **scope: Any
) -> None:
    """The same figures per destination, highest revenue first."""
    settings = settings_of(ctx)
    _emit(_reports(settings).destinations(_scope(**scope, settings=settings)), csv_path, xlsx_path)


@report.command()
@_scope_options
@click.pass_context
def margin(
    ctx: click.Context, /, csv_path: Path | None, xlsx_path: Path | None, **scope: Any
) -> None:
    """Revenue, cost and margin per reseller and customer, highest margin first."""
    settings = settings_of(ctx)
    _emit(_reports(settings).margin(_scope(**scope, settings=settings)), csv_path, xlsx_path)


@report.command()
@_scope_options
@click.pass_context
def cards(
    ctx: click.Context, /, csv_path: Path | None, xlsx_path: Path | None, **scope: Any
) -> None:
    """Card balances and status (live, from Redis) with each card's usage in the period."""
    from rater.accounts.api import Accounts  # noqa: PLC0415 - Redis only for this report

    settings = settings_of(ctx)
    the_scope = _scope(**scope, settings=settings)
    found, currency = cards_in_scope(Accounts(settings), the_scope)
    _emit(_reports(settings).cards(the_scope, found, currency), csv_path, xlsx_path)


@report.command("query")
@click.argument("name", required=False)
@click.option("--reseller", help="The reseller whose data the query reads.")
@click.option("--from", "first", type=DAY, help="First UTC day [first of this month].")
@click.option("--to", "last", type=DAY, help="Last UTC day, inclusive [today].")
@click.option(
    "--limit", type=int, default=10, show_default=True, help="Rows, where the query has a limit."
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), help="Write CSV."
)
@click.option(
    "--xlsx", "xlsx_path", type=click.Path(dir_okay=False, path_type=Path), help="Write XLSX."
)
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
    csv_path: Path | None,
    xlsx_path: Path | None,
) -> None:
    """Run one of the example queries of docs/ANALYSTS.md (without NAME: list them)."""
    from rater.analytics.queries import QUERIES  # noqa: PLC0415

    if not name:
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
    _emit(query_report(ch, name, params), csv_path, xlsx_path)
