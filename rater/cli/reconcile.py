"""`rater reconcile`: prove every Redis balance against ClickHouse, and repair what Redis lost."""

from __future__ import annotations

import sys

import click

from rater.billing.reconcile import reconcile as check_all
from rater.billing.recovery import Recovery, missing_accounts, rebuild_balances
from rater.cli.main import settings_of
from rater.escape import terminal
from rater.redis import topology as topologies


@click.command()
@click.option("--all", "show_all", is_flag=True, help="List every account, not only differences.")
@click.option(
    "--reseller", "resellers", multiple=True, help="Only this reseller's accounts (repeatable)."
)
@click.option(
    "--repair",
    is_flag=True,
    help="First apply again what Redis lost and ClickHouse holds: call debits, re-rating "
    "corrections, credits and top-ups (what the workers do on their own).",
)
@click.option(
    "--rebuild-balances",
    "rebuild",
    is_flag=True,
    help="Then set every balance that still differs to what ClickHouse says (after a restore "
    "from an older snapshot; docs/OPERATIONS.md). Needs --yes.",
)
@click.option("--yes", is_flag=True, help="Confirm --rebuild-balances.")
@click.pass_context
def reconcile(
    ctx: click.Context,
    *,
    show_all: bool,
    resellers: tuple[str, ...],
    repair: bool,
    rebuild: bool,
    yes: bool,
) -> None:
    """Per account: Redis balance = credits and top-ups (ledger) - debits (rated_cdrs).

    Also lists accounts ClickHouse knows and Redis lacks (cards, customers, resellers lost with
    a restore from an older snapshot). Exits with status 1 when any account differs or is
    missing, listing it. Run it when the workers are idle: a batch in flight has debited Redis a
    moment before ClickHouse holds its rows.
    """
    settings = settings_of(ctx)
    if rebuild and not yes:
        raise click.UsageError("--rebuild-balances changes balances: add --yes to confirm")
    topology = topologies.connect(settings)
    if repair:
        report = Recovery(settings, topology).check_and_repair_all()
        click.echo(
            f"repaired: {report.cdrs_applied} call debit(s) in {len(report.gaps)} gap(s), "
            f"{report.corrections_applied} correction(s), {report.ledger_applied} ledger entry(ies)"
        )
    checks = check_all(settings, topology.client, resellers=resellers or None)
    if rebuild:
        for check in rebuild_balances(topology, [c for c in checks if not c.ok]):
            click.echo(
                terminal(
                    f"rebuilt {check.level} {check.account}: {check.row()[2]} -> {check.row()[5]}"
                )
            )
        checks = check_all(settings, topology.client, resellers=resellers or None)
    bad = [c for c in checks if not c.ok]
    header = ("level", "account", "redis", "credits", "debits", "expected", "difference")
    shown = checks if show_all else bad
    if shown:
        click.echo("  ".join(f"{h:>16}" for h in header))
        for check in shown:
            flag = "  ledger views differ" if check.ledger_mismatch else ""
            click.echo(terminal("  ".join(f"{v:>16}" for v in check.row()) + flag))
    missing = [
        m for m in missing_accounts(settings, topology) if not resellers or m[2] in resellers
    ]
    for level, account, reseller in missing:
        click.echo(terminal(f"missing in Redis: {level} {account} (reseller {reseller})"))
    click.echo(f"{len(checks)} account(s) checked, {len(bad)} with a difference")
    if missing:
        click.echo(
            f"{len(missing)} account(s) ClickHouse knows are missing in Redis: restored from an "
            "older snapshot? They cannot be made again from ClickHouse (docs/OPERATIONS.md)",
            err=True,
        )
    if bad or missing:
        sys.exit(1)
