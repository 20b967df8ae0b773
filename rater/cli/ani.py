"""`rater ani`: caller numbers (ANI) that may use a card without its PIN."""

from __future__ import annotations

import click

from rater.accounts.model import Card
from rater.cli._output import accounts_of, echo_line, emit_json, json_option, money
from rater.cli.grammar import Group


@click.group(cls=Group)
def ani() -> None:
    """Add or remove caller numbers for PIN-less card dialling.

    A call from a registered caller number uses the card without asking for the PIN, as long
    as the card holds at least the reseller's ANI threshold (EUR 1.00 by default). Below it,
    recognition is switched off for security; a top-up that lifts the card back on restores it.
    """


@ani.command("add")
@click.argument("card_number")
@click.argument("caller")
@json_option
@click.pass_context
def add(ctx: click.Context, *, card_number: str, caller: str, as_json: bool) -> None:
    """Let calls from CALLER (e.g. +31201234567) use CARD_NUMBER without a PIN."""
    accounts = accounts_of(ctx)
    found = accounts.add_ani(card_number, caller)
    _report(found, caller, verb="added", as_json=as_json)


@ani.command("remove")
@click.argument("card_number")
@click.argument("caller")
@json_option
@click.pass_context
def remove(ctx: click.Context, *, card_number: str, caller: str, as_json: bool) -> None:
    """Stop recognising CALLER for CARD_NUMBER."""
    accounts = accounts_of(ctx)
    found = accounts.remove_ani(card_number, caller)
    _report(found, caller, verb="removed", as_json=as_json)


def _report(card: Card, caller: str, *, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "card": card.number,
                "caller": caller,
                "action": verb,
                "anis": list(card.anis),
                "ani_recognition": card.ani_on,
                "balance": money(card.balance),
            }
        )
        return
    state = (
        "answers now" if card.ani_on else "is off until a top-up lifts the card to the threshold"
    )
    echo_line(
        f"card {card.number}: caller {caller} {verb}; numbers: {', '.join(card.anis) or 'none'}; "
        f"ANI recognition {state}"
    )
