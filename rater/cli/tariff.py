"""`rater tariff`: import, derive, list, show and export tariff tables."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from rater.cli._output import emit_json, emit_json_lines, json_lines_option, json_option
from rater.cli.grammar import Deprecated, Group, info, quiet
from rater.cli.main import settings_of
from rater.errors import NotFound, TariffError
from rater.escape import terminal
from rater.money import Rounding, from_micro
from rater.redis import keys
from rater.redis.connection import connect
from rater.tariffs.cells import CellError, parse_date
from rater.tariffs.derive import derive
from rater.tariffs.export import to_csv_text, write_tariff
from rater.tariffs.importers import read_tariff_rows
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

ROUNDINGS = [r.value for r in Rounding]


def _store(ctx: click.Context) -> TariffStore:
    settings = settings_of(ctx)
    return TariffStore(connect(settings), settings)


def _owner(store: TariffStore, owner: str | None) -> str | None:
    """The --owner reseller, which must exist (docs/DESIGN.md section 1, "Tariff owners")."""
    if owner is None:
        return None
    if not store.redis.exists(keys.reseller(owner)):
        raise NotFound(f"reseller {owner!r} does not exist (--owner)")
    return owner


_OWNER_HELP = "The reseller whose table this is (only it and the operator see it) [the operator's]."


def _steps(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Steps | None:
    if value is None:
        return None
    try:
        return Steps.parse(value)
    except TariffError as error:
        raise click.BadParameter(str(error)) from None


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = parse_date(value)
    except CellError as error:
        raise click.BadParameter(str(error)) from None
    if when is None:
        raise click.BadParameter("give a date (2026-10-01 or 2026-10-01 12:00:00), not ASAP")
    return when


def _percent(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(value.rstrip("%"))
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a percentage") from None


def _tariff_version(function: Any) -> Any:
    """--tariff-version, and its old spelling --version (rater/cli/grammar.py)."""
    function = click.option(
        "--version",
        "old_version",
        cls=Deprecated,
        new="--tariff-version",
        dest="tariff_version",
        type=int,
    )(function)
    return click.option(
        "--tariff-version", "tariff_version", type=int, metavar="N", help="Version [latest]."
    )(function)


def _table_json(table: TariffTable, *, rows: int | None = None) -> dict[str, Any]:
    """A version's settings as --json prints them (rates as decimal strings)."""
    return {
        "name": table.name,
        "version": table.version,
        "currency": table.currency,
        "steps": str(table.steps),
        "decimals": table.decimals,
        "rounding": table.rounding.value,
        "effective_from": table.effective_from,
        "source": table.source,
        "rows": len(table.rows) if rows is None else rows,
    }


def _describe(table: TariffTable) -> str:
    since = (
        "the beginning of time"
        if table.effective_from is None
        else f"{table.effective_from:%Y-%m-%d %H:%M:%S} UTC"
    )
    return terminal(
        f"{table.name!r} version {table.version}: {len(table.rows)} rows, {table.currency}, "
        f"steps {table.steps}, {table.decimals} decimals rounded {table.rounding.value}, "
        f"in force from {since}"
    )


@click.group(cls=Group)
def tariff() -> None:
    """Import, derive, list, show and export tariff tables.

    Tables live in Redis (every rater reads the same versions), with a copy in ClickHouse.
    """


@tariff.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Table name (a new version when it exists).")
@click.option("--currency", help="ISO 4217 code [the deck's stated currency, else EUR].")
@click.option("--steps", callback=_steps, metavar="X/Y", help="Default billing steps [1/1].")
@click.option("--decimals", type=click.IntRange(0, 6), default=4, show_default=True,
              help="Decimals prices are rounded to.")  # fmt: skip
@click.option("--rounding", type=click.Choice(ROUNDINGS), default="up", show_default=True,
              help="How prices are rounded to those decimals.")  # fmt: skip
@click.option("--effective-from", callback=_when, metavar="DATE",
              help="When a new version takes effect, UTC [now]. The first version is in force "
                   "from the beginning of time.")  # fmt: skip
@click.option("--owner", metavar="RESELLER", help=_OWNER_HELP)
@click.option("--dry-run", is_flag=True, help="Read and check the file; save nothing.")
@click.option("--notes/--no-notes", default=False, help="Print how cells were interpreted.")
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    *,
    file: Path,
    name: str,
    currency: str | None,
    steps: Steps | None,
    decimals: int,
    rounding: str,
    effective_from: datetime | None,
    owner: str | None,
    dry_run: bool,
    notes: bool,
    as_json: bool,
) -> None:
    """Import a rate deck (CSV or XLSX; canonical or a real-world layout).

    Prints rows read, prefixes, destinations and every error with its line and column; a file
    with errors is not imported at all (exit status 1).
    """
    started = time.perf_counter()
    summary = read_tariff_rows(
        file,
        name=name,
        currency=currency.upper() if currency else None,
        steps=steps,
        decimals=decimals,
        rounding=Rounding(rounding),
        effective_from=effective_from,
        progress=sys.stderr.isatty() and not quiet(),
        strict_currency=currency is not None,
    )
    elapsed = time.perf_counter() - started
    counts = {
        "source": summary.source,
        "header_line": summary.header_line,
        "layout": summary.layout,
        "rows_read": summary.rows_read,
        "prefixes": summary.prefixes,
        "destinations": summary.destinations,
        "closed_codes": summary.closed,
        "skipped_lines": summary.skipped,
        "errors": len(summary.problems),
        "seconds": round(elapsed, 3),
    }
    if not as_json:
        _print_import(summary, counts, notes)
    if summary.table is None:
        for problem in summary.problems[:200]:
            click.secho(f"  error: {terminal(str(problem))}", fg="red", err=True)
        if len(summary.problems) > 200:
            click.secho(f"  ... and {len(summary.problems) - 200} more", fg="red", err=True)
        click.secho("nothing imported", fg="red", err=True)
        ctx.exit(1)
        return
    saved = None
    if not dry_run:
        store = _store(ctx)
        saved = store.save(summary.table, effective_from=effective_from, owner=_owner(store, owner))
    if as_json:
        emit_json(
            {
                **counts,
                "notes": list(summary.notes),
                "dry_run": dry_run,
                "saved": None if saved is None else _table_json(saved),
            }
        )
    elif saved is None:
        click.echo("dry run: nothing saved")
    else:
        click.echo(f"saved {_describe(saved)}")


def _print_import(summary: Any, counts: dict[str, Any], notes: bool) -> None:
    click.echo(
        terminal(f"{summary.source}: header on line {summary.header_line} ({summary.layout})")
    )
    click.echo(
        f"rows read: {summary.rows_read}  prefixes: {summary.prefixes}  "
        f"destinations: {summary.destinations}  closed codes: {summary.closed}  "
        f"skipped lines: {summary.skipped}  errors: {counts['errors']}  "
        f"({counts['seconds']:.2f} s)"
    )
    if summary.notes:
        shown = summary.notes if notes else summary.notes[:5]
        for note in shown:
            click.echo(f"  note: {terminal(str(note))}")
        if len(shown) < len(summary.notes):
            click.echo(f"  ... {len(summary.notes) - len(shown)} more notes (--notes)")


@tariff.command("export")
@click.argument("name")
@_tariff_version
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Write to FILE (.csv or .xlsx, by its extension) [CSV on stdout].")  # fmt: skip
@click.pass_context
def export(ctx: click.Context, name: str, tariff_version: int | None, output: Path | None) -> None:
    """Write a version in the canonical columns."""
    table = _store(ctx).get(name, tariff_version)
    if output is None:
        click.echo(to_csv_text(table), nl=False)
        return
    count = write_tariff(table, output)
    info(f"wrote {count} rows of {table.key} to {output}")


@tariff.command("list")
@json_lines_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every table and its versions (--json: one object per version)."""
    store = _store(ctx)
    names = store.names()
    owners = store.owners(names)
    if as_json:
        emit_json_lines(
            {**_table_json(v.table, rows=v.row_count), "owner": owners[name]}
            for name in names
            for v in store.infos(name)
        )
        return
    if not names:
        click.echo("no tariff tables")
        return
    click.echo(
        f"{'name':40} {'ver':>4} {'cur':4} {'rows':>8} {'steps':>7}  {'in force from':19}  "
        f"{'owner':12}  source"
    )
    for name in names:
        owner = owners[name] or "(operator)"
        for version in store.infos(name):
            t = version.table
            since = "-" if t.effective_from is None else f"{t.effective_from:%Y-%m-%d %H:%M:%S}"
            click.echo(
                terminal(
                    f"{t.name:40} {t.version:>4} {t.currency:4} {version.row_count:>8} "
                    f"{t.steps!s:>7}  {since:19}  {owner:12}  {t.source}"
                )
            )


@tariff.command("show")
@click.argument("name")
@_tariff_version
@click.option("--prefix", help="Rows on the longest-prefix path of this number or prefix.")
@click.option("--limit", type=int, default=50, show_default=True, help="Rows shown at most.")
@json_option
@click.pass_context
def show(
    ctx: click.Context,
    *,
    name: str,
    tariff_version: int | None,
    prefix: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """A version's settings and rows (--json: one object, its rows in "rows_shown")."""
    table = _store(ctx).get(name, tariff_version)
    rows = sorted(
        table.rows, key=lambda r: (r.prefix, r.effective_from is not None, r.effective_from)
    )
    longest = ""
    if prefix:
        wanted = prefix.lstrip("+")
        rows = [r for r in rows if wanted.startswith(r.prefix) or r.prefix.startswith(wanted)]
        longest = max((r.prefix for r in rows if wanted.startswith(r.prefix)), key=len, default="")
    if as_json:
        emit_json(
            {
                **_table_json(table),
                "longest_prefix": longest or None,
                "rows_shown": [_row_json(row, table) for row in rows[:limit]],
                "rows_matching": len(rows),
            }
        )
        return
    click.echo(_describe(table))
    click.echo(terminal(f"source: {table.source}"))
    click.echo(
        f"{'prefix':16} {'rate':>10} {'first':>10} {'connect':>9} {'steps':>7}  "
        f"{'from':10} {'to':10}  destination"
    )
    for row in rows[:limit]:
        first = "" if row.first_rate is None else from_micro(row.first_rate, table.decimals)
        since = "" if row.effective_from is None else f"{row.effective_from:%Y-%m-%d}"
        until = "" if row.effective_to is None else f"{row.effective_to:%Y-%m-%d}"
        mark = "*" if longest and row.prefix == longest else " "
        click.echo(
            terminal(
                f"{row.prefix + mark:16} {from_micro(row.rate):>10} {first:>10} "
                f"{from_micro(row.connect_fee):>9} {row.steps or table.steps!s:>7}  "
                f"{since:10} {until:10}  {row.destination}"
            )
        )
    if len(rows) > limit:
        click.echo(f"... {len(rows) - limit} more rows (--limit)")
    if longest:
        click.echo(terminal(f"* the longest prefix of {prefix} (rows with dates apply only then)"))


def _row_json(row: TariffRow, table: TariffTable) -> dict[str, Any]:
    return {
        "prefix": row.prefix,
        "destination": row.destination,
        "rate": from_micro(row.rate),
        "first_rate": None if row.first_rate is None else from_micro(row.first_rate),
        "connect_fee": from_micro(row.connect_fee),
        "steps": str(row.steps or table.steps),
        "effective_from": row.effective_from,
        "effective_to": row.effective_to,
    }


@tariff.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@click.pass_context
def delete(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Remove every version of a table from Redis (raters stop using it at their next check;
    the ClickHouse copy is kept as history)."""
    if not yes:
        click.confirm(f"delete every version of tariff {name!r}?", abort=True)
    count = _store(ctx).delete(name)
    if as_json:
        emit_json({"name": name, "versions_deleted": count})
        return
    click.echo(terminal(f"deleted {count} version(s) of {name!r}"))


@tariff.command("derive")
@click.option("--base", required=True, help="The buy table to derive from.")
@click.option("--tariff-version", "base_version", type=int, metavar="N",
              help="The version of --base [latest].")  # fmt: skip
@click.option("--base-version", "old_base_version", cls=Deprecated, new="--tariff-version",
              dest="base_version", type=int)  # fmt: skip
@click.option("--markup", callback=_percent, metavar="P", help="sell = buy x (1 + P/100).")
@click.option("--margin", callback=_percent, metavar="P", help="sell = buy / (1 - P/100).")
@click.option("--steps", callback=_steps, metavar="X/Y", help="Billing steps [the base's].")
@click.option("--decimals", type=click.IntRange(0, 6), help="Price decimals [the base's].")
@click.option("--rounding", type=click.Choice(ROUNDINGS), help="[the base's]")
@click.option("--name", required=True, help="Name of the new table (or its new version).")
@click.option("--effective-from", callback=_when, metavar="DATE", help="For a new version [now].")
@click.option("--owner", metavar="RESELLER", help=_OWNER_HELP)
@json_option
@click.pass_context
def derive_(
    ctx: click.Context,
    *,
    base: str,
    base_version: int | None,
    markup: Decimal | None,
    margin: Decimal | None,
    steps: Steps | None,
    decimals: int | None,
    rounding: str | None,
    name: str,
    effective_from: datetime | None,
    owner: str | None,
    as_json: bool,
) -> None:
    """Derive a sell table from a buy table with a markup or a margin (a snapshot).

    The notice's calling-card table: --markup 40 --steps 60/60 --owner RESELLER (a reseller's
    customers get its own tables or its buy table).
    """
    if (markup is None) == (margin is None):
        raise click.UsageError("give exactly one of --markup P or --margin P")
    store = _store(ctx)
    base_table = store.get(base, base_version)
    derived = derive(
        base_table,
        name=name,
        markup=markup,
        margin=margin,
        steps=steps,
        decimals=decimals,
        rounding=Rounding(rounding) if rounding else None,
    )
    saved = store.save(derived, effective_from=effective_from, owner=_owner(store, owner))
    if as_json:
        emit_json(_table_json(saved))
        return
    click.echo(terminal(saved.source))
    click.echo(f"saved {_describe(saved)}")
