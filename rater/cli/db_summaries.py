"""`rater db check` and `rater db rebuild-summaries` (rater/cli/db.py adds them to `db`)."""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta

import click

from rater.analytics.check import check as check_summaries
from rater.analytics.check import unbalanced
from rater.billing.rebuild import rebuild_day
from rater.cli.main import settings_of
from rater.clickhouse.executor import DriverExecutor


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


@click.command("check")
@click.option("--from", "first", type=DAY, help="First UTC day (default: the earliest stored).")
@click.option("--to", "last", type=DAY, help="Last UTC day, inclusive (default: the latest).")
@click.pass_context
def check(ctx: click.Context, first: date | None, last: date | None) -> None:
    """Compare every summary table with rated_cdrs, and list every CDR stored twice (or
    cancelled without a new revision); exit 1 if anything is found."""
    if first and last and last < first:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    ch = DriverExecutor.from_settings(settings_of(ctx))
    differences = check_summaries(ch, first, last)
    for difference in differences:
        click.echo(str(difference))
    doubles = unbalanced(ch)
    for cdr in doubles:
        click.echo(str(cdr))
    if differences or doubles:
        if differences:
            click.echo(f"{len(differences)} summary group(s) differ from rated_cdrs", err=True)
        if doubles:
            click.echo(f"{len(doubles)} CDR(s) whose rows do not net to one copy", err=True)
        sys.exit(1)
    click.echo("summaries match rated_cdrs; every CDR nets to one copy")


@click.command("rebuild-summaries")
@click.option("--day", "days", type=DAY, multiple=True, help="UTC day to rebuild (repeatable).")
@click.option("--from", "first", type=DAY, help="Rebuild every day from this one ...")
@click.option("--to", "last", type=DAY, help="... to this one, inclusive.")
@click.pass_context
def rebuild_summaries(
    ctx: click.Context, days: tuple[date, ...], first: date | None, last: date | None
) -> None:
    """Make the summaries of the given days equal the base table again.

    Inserts the difference between rated_cdrs and each summary (summing tables add it up), so
    it is safe to run again. Run it for days that no longer receive CDRs.
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
            click.echo(f"{day.isoformat()} {rebuilt.table}: {rebuilt.groups_fixed} group(s) fixed")


COMMANDS: list[click.Command] = [check, rebuild_summaries]
