"""`rater authorize`: ask whether a call may start, and for how many seconds; renew or release
the reservation afterwards."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from rater.accounts.answers import Authorization
from rater.accounts.authorize import Authorizer
from rater.accounts.ids import auth_id_problem
from rater.cli._output import echo_line
from rater.cli.grammar import Group
from rater.cli.main import settings_of


def _auth_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """AUTH_ID checked by the one rule of rater/accounts/ids.py: a usage error otherwise."""
    problem = auth_id_problem(value)
    if problem is not None:
        raise click.BadParameter(f"{value!r} {problem}")
    return value


@click.group(cls=Group, invoke_without_command=True)
@click.option("--account", metavar="ID", help="The SIP account (customer id) calling.")
@click.option("--card", metavar="NUMBER", help="A calling card number (needs --pin).")
@click.option("--pin", metavar="PIN", help="The card's PIN.")
@click.option("--ani", metavar="NUMBER", help="The caller number, for PIN-less card calls.")
@click.option(
    "--caller", metavar="NUMBER", help="The caller number of a --card call (PIN limits per caller)."
)
@click.option("--callee", metavar="NUMBER", help="The dialled number.")
@click.option("--switch", default="default", show_default=True, help="Switch settings to use.")
@click.option(
    "--max-seconds",
    type=int,
    help="Most seconds to grant (at most RATER_RESERVATION_TTL_S - RATER_RESERVATION_RING_S).",
)
@click.option(
    "--at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    help="Rate with the tariff version in force then (default now; UTC when no offset). The "
    "reservation's lifetime starts now whatever this says.",
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
    caller: str | None,
    callee: str | None,
    switch: str,
    max_seconds: int | None,
    at: datetime | None,
    as_json: bool,
) -> None:
    """Authorize a call by --account, --card with --pin, or --ani, to --callee.

    Prints allowed or refused with the reason, the auth_id to put on the CDR, and the seconds
    card, customer and reseller can each pay. The granted credit is reserved until the CDR
    carrying the auth_id is debited, the reservation is released, or it expires
    (RATER_RESERVATION_TTL_S from now; `renew` extends it for longer calls). Exit status 2 when
    refused.

    \b
    Examples:
      rater authorize --card 862895316779 --pin 9723 --caller +31205550101 --callee +31612345678
      rater authorize renew a3f09c1d2b7e64a58
      rater authorize release a3f09c1d2b7e64a58
    """
    if ctx.invoked_subcommand is not None:
        return
    if not callee:
        raise click.UsageError("--callee is required (or a command: renew, release)")
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    authorizer = Authorizer(settings_of(ctx), pins=bool(card))
    answer = authorizer.authorize(
        callee=callee, account=account, card=card, pin=pin, ani=ani, caller=caller,
        switch=switch, at=at, max_seconds=max_seconds,
    )  # fmt: skip
    _print(answer, as_json)


@authorize.command("renew")
@click.argument("auth_id", callback=_auth_id)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.pass_context
def renew(ctx: click.Context, *, auth_id: str, as_json: bool) -> None:
    """Extend reservation AUTH_ID for a longer call, while the credit covers it.

    The answer's max seconds is the call's total; the reservation then lives another
    RATER_RESERVATION_TTL_S. Exit status 2 when refused (credit no longer covers it, or the
    reservation is unknown, expired, released or already debited).
    """
    _print(Authorizer(settings_of(ctx), pins=False).renew(auth_id), as_json)


@authorize.command("release")
@click.argument("auth_id", callback=_auth_id)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as one JSON object.")
@click.pass_context
def release(ctx: click.Context, *, auth_id: str, as_json: bool) -> None:
    """Release reservation AUTH_ID (the call did not happen). A second release answers the same."""
    answer = Authorizer(settings_of(ctx), pins=False).release(auth_id)
    if as_json:
        click.echo(json.dumps({"auth_id": answer.auth_id, "released": True}))
    else:
        echo_line(answer.message)


def _print(answer: Authorization, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(answer.as_dict()))
    else:
        verdict = "ALLOWED" if answer.allowed else "REFUSED"
        echo_line(f"{verdict} ({answer.reason.value}): {answer.message}")
        if answer.allowed:
            echo_line(f"auth_id      {answer.auth_id}")
            click.echo(f"max seconds  {answer.max_seconds}")
            if answer.expires_at is not None:
                click.echo(f"held until   {answer.expires_at:%Y-%m-%d %H:%M:%S} UTC")
        held = answer.as_dict()["reserved"]
        for level in ("card", "customer", "reseller"):
            seconds = getattr(answer, f"{level}_seconds")
            if seconds is not None:
                extra = (
                    f"  (reserved {held[level]})"
                    if isinstance(held, dict) and level in held
                    else ""
                )
                click.echo(f"{level:<12} {seconds} s{extra}")
    if not answer.allowed:
        sys.exit(2)
