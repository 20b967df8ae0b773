"""`rater card`: batches of calling cards (create, export: rater/cli/card_batch.py) and one card:
show it, top it up, block or unblock it."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from rater.accounts.model import Card
from rater.cli._output import (
    accounts_of,
    amount_micro,
    amount_text,
    block,
    echo_line,
    emit_json,
    held_json,
    held_text,
    json_option,
    last_valid_day,
    money,
    reason_option,
)
from rater.cli.card_batch import create, export
from rater.cli.customer import card_json
from rater.cli.grammar import DeprecatedArgument, Group, required


@click.group(cls=Group)
def card() -> None:
    """Create and export batches of calling cards; show, top up or block one card.

    A card's balance is a spending limit on its customer's money: a call debits the card and
    the customer, and stops when either runs out. Disposable cards are never topped up.
    """


@card.command("show")
@click.argument("number")
@json_option
@click.pass_context
def show(ctx: click.Context, *, number: str, as_json: bool) -> None:
    """Show a card's balance, status, ANI numbers and owner (never its PIN)."""
    accounts = accounts_of(ctx)
    found = accounts.get_card(number)
    owner = accounts.get_customer(found.customer_id)
    reseller = accounts.get_reseller(found.reseller_id)
    holds = accounts.holds("card", found.number)
    if as_json:
        data = card_json(found)
        data["currency"] = reseller.currency
        data["customer_balance"] = money(owner.balance)
        data["customer_status"] = owner.status
        data["tariff"] = owner.tariff
        data.update(held_json(holds))
        emit_json(data)
        return
    cur = reseller.currency
    threshold = money(reseller.ani_threshold)
    ani = (
        f"on ({', '.join(found.anis)})"
        if found.ani_on and found.anis
        else ("on (no caller numbers yet)" if found.ani_on else f"off (below {threshold} {cur})")
    )
    click.echo(
        block(
            [
                ("balance", f"{money(found.balance)} {cur} of {money(found.value)} {cur}"),
                ("status", found.status),
                ("kind", "disposable" if found.disposable else "rechargeable"),
                (
                    "customer",
                    f"{owner.customer_id} ({owner.name}): {money(owner.balance)} {cur}, "
                    f"{owner.status}",
                ),
                ("tariff", owner.tariff),
                ("ANI recognition", ani),
                ("valid through", last_valid_day(found.expires) or "no expiry"),
                ("batch", found.batch_id or "-"),
                ("held for calls", held_text(holds, cur)),
                ("PIN", _pin_text(found)),
            ],
            title=f"card {found.number}",
        )
    )


@card.command("topup")
@click.argument("number")
@click.argument(
    "old_amount", cls=DeprecatedArgument, new="--amount", dest="amount", metavar="AMOUNT"
)
@click.option("--amount", metavar="AMOUNT", help="How much to add, e.g. 5.  [required]")
@reason_option
@json_option
@click.pass_context
def topup(
    ctx: click.Context, *, number: str, amount: str | None, reason: str, as_json: bool
) -> None:
    """Raise a rechargeable card's balance by --amount (disposable cards are refused).

    The money stays the customer's: the card's balance is a limit inside it. A top-up that
    lifts the card to the reseller's ANI threshold turns ANI recognition back on.

    \b
    Example:
      rater card topup 862895316779 --amount 5 --reason "paid in the shop"
    """
    micro = amount_micro(required(amount, "--amount"), "--amount")
    accounts = accounts_of(ctx)
    before = accounts.get_card(number)
    after = accounts.topup_card(number, amount_text(micro), reason)
    cur = accounts.get_reseller(after.reseller_id).currency
    if as_json:
        data = card_json(after)
        data.update(change=money(micro), balance_before=money(before.balance), reason=reason)
        emit_json(data)
        return
    ani = ""
    if after.ani_on != before.ani_on:
        ani = "; ANI recognition back on" if after.ani_on else "; ANI recognition off"
    echo_line(
        f"card {number}: {money(micro)} {cur} added ({reason}); balance "
        f"{money(before.balance)} -> {money(after.balance)} {cur}, {after.status}{ani}"
    )


@card.command("block")
@click.argument("number")
@json_option
@click.pass_context
def block_(ctx: click.Context, *, number: str, as_json: bool) -> None:
    """Block a card: no new calls are authorized with it (its balance is kept)."""
    found = accounts_of(ctx).block_card(number)
    _print_state(found.number, found.status, found.balance, as_json)


@card.command("unblock")
@click.argument("number")
@json_option
@click.pass_context
def unblock(ctx: click.Context, *, number: str, as_json: bool) -> None:
    """Lift an operator's block from a card, and a lock or block after wrong PINs (the count
    of wrong PINs starts again at 0)."""
    found = accounts_of(ctx).unblock_card(number)
    _print_state(found.number, found.status, found.balance, as_json)


def _print_state(number: str, status: str, balance: int, as_json: bool) -> None:
    if as_json:
        emit_json({"card": number, "status": status, "balance": money(balance)})
    else:
        echo_line(f"card {number}: {status}, balance {money(balance)}")


def _pin_text(found: Card) -> str:
    """The PIN's state: its HMAC only is kept; wrong PINs, a lock, a block after wrong PINs."""
    if found.pin_blocked:
        return (
            f"blocked after {found.pin_failures} wrong PINs: `rater card unblock {found.number}` "
            "lifts it"
        )
    if found.locked(datetime.now(UTC)) and found.locked_until is not None:
        return (
            f"locked until {found.locked_until:%Y-%m-%d %H:%M:%S} UTC after "
            f"{found.pin_failures} wrong PINs"
        )
    wrong = f"; {found.pin_failures} wrong since the last right one" if found.pin_failures else ""
    return "kept only as a hash" + wrong


card.add_command(create)
card.add_command(export)
