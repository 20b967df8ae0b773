"""`rater db check` and `rater db rebuild-summaries` (rater/cli/db.py adds them to `db`)."""

from __future__ import annotations

import dataclasses
import sys
from datetime import date, datetime, timedelta

import click

from rater.analytics.check import check as check_summaries
from rater.analytics.check import unbalanced
from rater.billing.rebuild import rebuild_day
from rater.cli._output import emit_json, emit_json_lines, json_lines_option, json_option
from rater.cli.grammar import Command
from rater.cli.main import settings_of
from rater.clickhouse.executor import DriverExecutor
from rater.escape import terminal


class DayType(click.ParamType):  # type: ignore[type-arg]  # generic in newer click only
    """A UTC calendar day, YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> date:
        if isinstance(value, date):
            return value
        try:
            return datetime.strptime(str(value), "%Y-%m-%d").date()
        except ValueError:
            self.fail(f"{value!r} is not a date like 2026-11-01", param, ctx)


DAY = DayType()


@click.command("check", cls=Command)
@click.option("--from", "first", type=DAY, help="First UTC day (default: the earliest stored).")
@click.option("--to", "last", type=DAY, help="Last UTC day, inclusive (default: the latest).")
@json_option
@click.pass_context
def check(ctx: click.Context, first: date | None, last: date | None, as_json: bool) -> None:
    """Compare every summary table with rated_cdrs, and list every CDR stored twice (or
    cancelled without a new revision); exit 1 if anything is found.

    --json prints one object: "differences" (table, key, and per differing column the sums of
    rated_cdrs and of the summary, in the column's own unit: micro-units for money) and
    "unbalanced" (switch, cdr_id, net sign, copies)."""
    if first and last and last < first:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    ch = DriverExecutor.from_settings(settings_of(ctx))
    differences = check_summaries(ch, first, last)
    doubles = unbalanced(ch)
    if as_json:
        emit_json(
            {
                "ok": not differences and not doubles,
                "differences": [
                    {
                        "table": d.table,
                        "key": d.key,
                        "columns": {
                            c: {"rated_cdrs": b, "summary": v} for c, (b, v) in d.columns.items()
                        },
                    }
                    for d in differences
                ],
                "unbalanced": [dataclasses.asdict(cdr) for cdr in doubles],
            }
        )
    else:
        for difference in differences:
            click.echo(terminal(str(difference)))
        for cdr in doubles:
            click.echo(terminal(str(cdr)))
    if differences or doubles:
        if differences:
            click.echo(f"{len(differences)} summary group(s) differ from rated_cdrs", err=True)
        if doubles:
            click.echo(f"{len(doubles)} CDR(s) whose rows do not net to one copy", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("summaries match rated_cdrs; every CDR nets to one copy")


@click.command("rebuild-summaries", cls=Command)
@click.option("--day", "days", type=DAY, multiple=True, help="UTC day to rebuild (repeatable).")
@click.option("--from", "first", type=DAY, help="Rebuild every day from this one ...")
@click.option("--to", "last", type=DAY, help="... to this one, inclusive.")
@json_lines_option
@click.pass_context
def rebuild_summaries(
    ctx: click.Context,
    days: tuple[date, ...],
    first: date | None,
    last: date | None,
    as_json: bool,
) -> None:
    """Make the summaries of the given days equal the base table again.

    Inserts the difference between rated_cdrs and each summary (summing tables add it up), so
    it is safe to run again. Run it for days that no longer receive CDRs. --json prints one
    object per day and table.
    """
    wanted = list(days)
    if first or last:
        if not (first and last):
            raise click.UsageError("--from and --to go together")
        if last < first:
            raise click.BadParameter("--to is before --from", param_hint="--to")
        wanted.extend(first + timedelta(days=n) for n in range((last - first).days + 1))
    if not wanted:
        raise click.UsageError("name a day with --day D (or a range with --from/--to)")
    ch = DriverExecutor.from_settings(settings_of(ctx))
    for day in sorted(set(wanted)):
        for rebuilt in rebuild_day(ch, day):
            if as_json:
                emit_json_lines(
                    [{"day": day, "table": rebuilt.table, "groups_fixed": rebuilt.groups_fixed}]
                )
            else:
                click.echo(
                    f"{day.isoformat()} {rebuilt.table}: {rebuilt.groups_fixed} group(s) fixed"
                )


COMMANDS: list[click.Command] = [check, rebuild_summaries]
