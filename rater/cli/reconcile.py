"""`rater reconcile`: prove every Redis balance against ClickHouse."""

from __future__ import annotations

import sys

import click

from rater.billing.reconcile import reconcile as check_all
from rater.cli.main import settings_of
from rater.redis import connection as redis_client


@click.command()
@click.option("--all", "show_all", is_flag=True, help="List every account, not only differences.")
@click.option(
    "--reseller", "resellers", multiple=True, help="Only this reseller's accounts (repeatable)."
)
@click.pass_context
def reconcile(ctx: click.Context, show_all: bool, resellers: tuple[str, ...]) -> None:
    """Per account: Redis balance = credits and top-ups (ledger) - debits (rated_cdrs).

    Exits with status 1 when any account differs (or the ledger's call entries disagree with
    rated_cdrs), listing it. Run it when the workers are idle: a batch in flight has debited
    Redis a moment before ClickHouse holds its rows.
    """
    settings = settings_of(ctx)
    checks = check_all(settings, redis_client.connect(settings), resellers=resellers or None)
    bad = [c for c in checks if not c.ok]
    header = ("level", "account", "redis", "credits", "debits", "expected", "difference")
    shown = checks if show_all else bad
    if shown:
        click.echo("  ".join(f"{h:>16}" for h in header))
        for check in shown:
            flag = "  ledger views differ" if check.ledger_mismatch else ""
            click.echo("  ".join(f"{v:>16}" for v in check.row()) + flag)
    click.echo(f"{len(checks)} account(s) checked, {len(bad)} with a difference")
    if bad:
        sys.exit(1)
