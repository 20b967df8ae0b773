"""`rater rerate`: price stored CDRs again (or rate unrated ones) and apply the difference."""

from __future__ import annotations

import sys
from datetime import date
from typing import Any

import click

from rater.analytics.tables import money_text
from rater.billing.rerate import Rerater, RerateRequest, RerateSummary, unrated_span
from rater.cli._output import emit_json, json_option
from rater.cli.db_summaries import DAY
from rater.cli.grammar import Command, Deprecated
from rater.cli.main import settings_of
from rater.clickhouse.executor import DriverExecutor
from rater.escape import terminal
from rater.redis import connection as redis_client


@click.command(cls=Command)
@click.option("--from", "first", type=DAY, help="First UTC day of call starts "
              "[with --unrated: the first day holding unrated CDRs].")  # fmt: skip
@click.option("--to", "last", type=DAY, help="Last UTC day, inclusive "
              "[with --unrated: the last day holding unrated CDRs].")  # fmt: skip
@click.option("--customer", help="Only this customer's CDRs (with --unrated: the CDR's account).")
@click.option("--reseller", help="Only this reseller's CDRs.")
@click.option("--tariff", help="Sell tariff to price with [each customer's current tariff].")
@click.option("--tariff-version", type=int, metavar="N", help="Use this version of --tariff for "
              "every CDR [the version in force at each call's start].")  # fmt: skip
@click.option("--version", "old_version", cls=Deprecated, new="--tariff-version",
              dest="tariff_version", type=int)  # fmt: skip
@click.option("--buy-tariff", help="Buy tariff for the reseller cost [the reseller's current one].")
@click.option(
    "--buy-version", type=int, metavar="N", help="Use this version of --buy-tariff for every CDR."
)
@click.option(
    "--unrated", is_flag=True, help="Rate CDRs stored unrated (account or tariff now exists)."
)
@click.option("--reason", default="", help="Why, for the audit trail.")
@click.option("--actor", default="", help="Who, for the audit trail [the login name].")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@json_option
@click.pass_context
def rerate(
    ctx: click.Context,
    /,
    *,
    first: date | None,
    last: date | None,
    customer: str | None,
    reseller: str | None,
    tariff: str | None,
    tariff_version: int | None,
    buy_tariff: str | None,
    buy_version: int | None,
    unrated: bool,
    reason: str,
    actor: str,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Price stored CDRs again and apply only the difference to balances, once per CDR.

    \b
    Each changed CDR gets a cancelling row (sign -1) and a new revision (sign +1) in
    rated_cdrs, a balance correction (new - old price on customer and card, new - old cost on
    the reseller) and a row in rerate_audit. Running the same re-rate again changes nothing;
    an interrupted run is completed by running it again.

    \b
    Examples:
      rater rerate --from 2026-11-01 --to 2026-11-30 --customer c1 --tariff retail \
          --tariff-version 3
      rater rerate --unrated
    """
    settings = settings_of(ctx)
    ch = DriverExecutor.from_settings(settings)
    if first is None or last is None:
        if not unrated:
            raise click.UsageError("--from and --to are required (optional only with --unrated)")
        span = unrated_span(ch)
        if span is None:
            if as_json:
                emit_json({"examined": 0, "changed": 0, "unchanged": 0, "left": {}})
            else:
                click.echo("no unrated CDRs stored")
            return
        first, last = first or span[0], last or span[1]
    request = RerateRequest(
        first=first,
        last=last,
        unrated=unrated,
        customer=customer,
        reseller=reseller,
        tariff=tariff,
        version=tariff_version,
        buy_tariff=buy_tariff,
        buy_version=buy_version,
        reason=reason,
        actor=actor,
        dry_run=dry_run,
    )
    rerater = Rerater(
        settings, redis_client.connect(settings), DriverExecutor.from_settings(settings)
    )
    summary = rerater.run(request)
    if as_json:
        emit_json(_json(summary, dry_run))
    else:
        _print(summary, dry_run)
    if summary.left and not summary.changed and not summary.unchanged:
        sys.exit(2)  # nothing could be re-rated at all: make scripts notice


def _json(summary: RerateSummary, dry_run: bool) -> dict[str, Any]:
    """The summary as --json prints it: one object, money as decimal strings; with --dry-run
    every change (the text shows the first 200)."""
    data: dict[str, Any] = {
        "run_id": summary.run_id,
        "dry_run": dry_run,
        "examined": summary.examined,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "resumed": summary.resumed,
        "price_difference": money_text(summary.price_delta),
        "cost_difference": money_text(summary.cost_delta),
        "left": dict(sorted(summary.left.items())),
    }
    if dry_run:
        data["changes"] = [
            {
                "switch": old["switch"],
                "cdr_id": old["cdr_id"],
                "start_time": old["start_time"],
                "outcome": [old["outcome"], new["outcome"]],
                "destination": [old["destination"] or None, new["destination"]],
                "price": [money_text(old["price"]), money_text(new["price"])],
                "cost": [money_text(old["cost"]), money_text(new["cost"])],
            }
            for old, new in summary.changes
        ]
    return data


def _print(summary: RerateSummary, dry_run: bool) -> None:
    if dry_run:
        for old, new in summary.changes[:200]:
            click.echo(
                terminal(
                    f"{old['switch']}/{old['cdr_id']} {old['start_time']:%Y-%m-%d %H:%M:%S} "
                    f"{old['outcome']}->{new['outcome']} {old['destination'] or '-'}->"
                    f"{new['destination']} price {money_text(old['price'])}->"
                    f"{money_text(new['price'])} cost {money_text(old['cost'])}->"
                    f"{money_text(new['cost'])}"
                )
            )
        if len(summary.changes) > 200:
            click.echo(f"... and {len(summary.changes) - 200} more")
    verb = "would change" if dry_run else "changed"
    click.echo(
        f"run {summary.run_id}: {summary.examined} CDR(s) examined, {summary.changed} {verb}, "
        f"{summary.unchanged} already right"
        + (f", {summary.resumed} completed from an interrupted run" if summary.resumed else "")
    )
    click.echo(
        f"price difference {money_text(summary.price_delta)}, "
        f"cost difference {money_text(summary.cost_delta)}"
    )
    for why, count in sorted(summary.left.items()):
        click.echo(terminal(f"left as they were: {count} ({why})"))
