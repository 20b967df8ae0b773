"""`rater authorize`: ask whether a call may start, and for how many seconds."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from rater.accounts.authorize import Authorizer
from rater.accounts.pinkeys import PinKeys
from rater.cli.main import settings_of


@click.command()
@click.option("--account", metavar="ID", help="The SIP account (customer id) calling.")
@click.option("--card", metavar="NUMBER", help="A calling card number (needs --pin).")
@click.option("--pin", metavar="PIN", help="The card's PIN.")
@click.option("--ani", metavar="NUMBER", help="The caller number, for PIN-less card calls.")
@click.option("--callee", required=True, metavar="NUMBER", help="The dialled number.")
@click.option("--switch", default="default", show_default=True, help="Switch settings to use.")
@click.option("--max-seconds", type=int, help="Most seconds to grant [RATER_RESERVATION_TTL_S].")
@click.option(
    "--at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    help="Rate as of this time (default now; UTC when no offset).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.pass_context
def authorize(
    ctx: click.Context,
    *,
    account: str | None,
    card: str | None,
    pin: str | None,
    ani: str | None,
    callee: str,
    switch: str,
    max_seconds: int | None,
    at: datetime | None,
    as_json: bool,
) -> None:
    """Authorize a call by --account, --card with --pin, or --ani, to --callee.

    Prints allowed or refused with the reason, the auth_id to put on the CDR, and the seconds
    card, customer and reseller can each pay. The granted credit is reserved until the CDR
    carrying the auth_id is debited or the reservation expires. Exit status 2 when refused.
    """
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if card:
        PinKeys.from_settings(settings_of(ctx))  # checking a PIN needs the PIN secret
    answer = Authorizer(settings_of(ctx)).authorize(
        callee=callee,
        account=account,
        card=card,
        pin=pin,
        ani=ani,
        switch=switch,
        at=at,
        max_seconds=max_seconds,
    )
    if as_json:
        click.echo(json.dumps(answer.as_dict()))
    else:
        verdict = "ALLOWED" if answer.allowed else "REFUSED"
        click.echo(f"{verdict} ({answer.reason.value}): {answer.message}")
        if answer.allowed:
            click.echo(f"auth_id      {answer.auth_id}")
            click.echo(f"max seconds  {answer.max_seconds}")
        for level in ("card", "customer", "reseller"):
            seconds = getattr(answer, f"{level}_seconds")
            if seconds is not None:
                held = answer.as_dict()["reserved"]
                extra = (
                    f"  (reserved {held[level]})"
                    if isinstance(held, dict) and level in held
                    else ""
                )
                click.echo(f"{level:<12} {seconds} s{extra}")
    if not answer.allowed:
        sys.exit(2)
