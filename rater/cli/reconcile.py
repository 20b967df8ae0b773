"""`rater reconcile`: prove every Redis balance against ClickHouse, and repair what Redis lost."""

from __future__ import annotations

import sys
from typing import Any

import click

from rater.billing.reconcile import AccountCheck
from rater.billing.reconcile import reconcile as check_all
from rater.billing.recovery import Recovery, missing_accounts, rebuild_balances
from rater.cli._output import emit_json, json_option, money
from rater.cli.grammar import Command
from rater.cli.main import settings_of
from rater.escape import terminal
from rater.redis import topology as topologies


@click.command(cls=Command)
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
@json_option
@click.pass_context
def reconcile(
    ctx: click.Context,
    *,
    show_all: bool,
    resellers: tuple[str, ...],
    repair: bool,
    rebuild: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Per account: Redis balance = credits and top-ups (ledger) - debits (rated_cdrs).

    Also lists accounts ClickHouse knows and Redis lacks (cards, customers, resellers lost with
    a restore from an older snapshot). Exits with status 1 when any account differs or is
    missing, listing it. Run it when the workers are idle: a batch in flight has debited Redis a
    moment before ClickHouse holds its rows.

    --json prints one object: "accounts" (those that differ, or all with --all; money as
    decimal strings), "missing", and with --repair and --rebuild-balances what was done.
    """
    settings = settings_of(ctx)
    if rebuild and not yes:
        raise click.UsageError("--rebuild-balances changes balances: add --yes to confirm")
    topology = topologies.connect(settings)
    data: dict[str, Any] = {}
    if repair:
        report = Recovery(settings, topology).check_and_repair_all()
        data["repaired"] = {
            "call_debits": report.cdrs_applied,
            "gaps": len(report.gaps),
            "corrections": report.corrections_applied,
            "ledger_entries": report.ledger_applied,
        }
        if not as_json:
            click.echo(
                f"repaired: {report.cdrs_applied} call debit(s) in {len(report.gaps)} gap(s), "
                f"{report.corrections_applied} correction(s), "
                f"{report.ledger_applied} ledger entry(ies)"
            )
    checks = check_all(settings, topology.client, resellers=resellers or None)
    if rebuild:
        rebuilt = rebuild_balances(topology, [c for c in checks if not c.ok])
        data["rebuilt"] = [_check_json(check) for check in rebuilt]
        for check in rebuilt if not as_json else []:
            click.echo(
                terminal(
                    f"rebuilt {check.level} {check.account}: {check.row()[2]} -> {check.row()[5]}"
                )
            )
        checks = check_all(settings, topology.client, resellers=resellers or None)
    bad = [c for c in checks if not c.ok]
    missing = [
        m for m in missing_accounts(settings, topology) if not resellers or m[2] in resellers
    ]
    if as_json:
        data.update(
            checked=len(checks),
            differing=len(bad),
            accounts=[_check_json(check) for check in (checks if show_all else bad)],
            missing=[
                {"level": level, "account": account, "reseller": reseller}
                for level, account, reseller in missing
            ],
        )
        emit_json(data)
        if bad or missing:
            sys.exit(1)
        return
    header = ("level", "account", "redis", "credits", "debits", "expected", "difference")
    shown = checks if show_all else bad
    if shown:
        click.echo("  ".join(f"{h:>16}" for h in header))
        for check in shown:
            flag = "  ledger views differ" if check.ledger_mismatch else ""
            click.echo(terminal("  ".join(f"{v:>16}" for v in check.row()) + flag))
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


def _check_json(check: AccountCheck) -> dict[str, Any]:
    return {
        "level": check.level,
        "account": check.account,
        "reseller": check.reseller,
        "redis": money(check.redis_balance),
        "credits": money(check.credits),
        "debits": money(check.debits),
        "expected": money(check.expected),
        "difference": money(check.difference),
        "ledger_views_differ": check.ledger_mismatch,
    }
