"""`rater customer`: SIP accounts and card-batch customers under a reseller."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

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
    money,
    reason_option,
    require_tariff,
    table,
)
from rater.cli.grammar import DeprecatedArgument, Group, required

if TYPE_CHECKING:
    from rater.accounts.api import Accounts
    from rater.accounts.model import Card, Customer

#: CLI spelling -> rater.accounts.model.CustomerKind value
KINDS = {"normal": "normal", "card-batch": "card_batch"}


@click.group(cls=Group)
def customer() -> None:
    """Create SIP customers, top up, show balances.

    A customer is a SIP account with a balance and one sell tariff. A `card-batch` customer
    ("Calling card user batch 1") holds a batch of disposable calling cards on its own tariff
    and is funded when the batch is created.
    """


@customer.command("create")
@click.argument("customer_id")
@click.option("--name", required=True, help='Display name, e.g. "Calling card user batch 1".')
@click.option("--reseller", "reseller_id", required=True, metavar="RESELLER", help="Owner.")
@click.option("--tariff", required=True, metavar="TABLE", help="Sell tariff table of its calls.")
@click.option(
    "--kind",
    type=click.Choice(sorted(KINDS)),
    default="normal",
    show_default=True,
    help="normal: a SIP account; card-batch: holds disposable cards (funded per batch).",
)
@click.option(
    "--balance",
    default="0",
    show_default=True,
    metavar="AMOUNT",
    help="Opening SIP credit (issued credit: the reseller's credit must cover it).",
)
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    *,
    customer_id: str,
    name: str,
    reseller_id: str,
    tariff: str,
    kind: str,
    balance: str,
    as_json: bool,
) -> None:
    """Create customer CUSTOMER_ID (the `account` of its CDRs) under a reseller."""
    opening = amount_micro(balance, "--balance", positive=False)
    if opening < 0:
        raise click.BadParameter("an opening balance cannot be negative", param_hint="--balance")
    accounts = accounts_of(ctx)
    accounts.get_reseller(reseller_id)  # NotFound names the reseller before the tariff
    require_tariff(ctx, tariff)
    created = accounts.create_customer(
        customer_id,
        name,
        reseller_id=reseller_id,
        tariff=tariff,
        kind=KINDS[kind],
        balance=amount_text(opening),
    )
    print_customer(accounts, created, as_json, verb="created")


@customer.command("topup")
@click.argument("customer_id")
@click.argument(
    "old_amount", cls=DeprecatedArgument, new="--amount", dest="amount", metavar="AMOUNT"
)
@click.option("--amount", metavar="AMOUNT", help="How much to add, e.g. 50.  [required]")
@reason_option
@json_option
@click.pass_context
def topup(
    ctx: click.Context, *, customer_id: str, amount: str | None, reason: str, as_json: bool
) -> None:
    """Add --amount to a customer's SIP credit (refused, with the shortfall, if the reseller's
    credit would no longer cover its customers).

    \b
    Example:
      rater customer topup sip1 --amount 50 --reason "invoice 2026-0112 paid"
    """
    micro = amount_micro(required(amount, "--amount"), "--amount")
    accounts = accounts_of(ctx)
    before = accounts.get_customer(customer_id)
    after = accounts.topup_customer(customer_id, amount_text(micro), reason)
    currency = accounts.get_reseller(after.reseller_id).currency
    if as_json:
        emit_json(
            {
                "customer": customer_id,
                "change": money(micro),
                "balance_before": money(before.balance),
                "balance": money(after.balance),
                "currency": currency,
                "status": after.status,
                "reason": reason,
            }
        )
        return
    echo_line(
        f"customer {customer_id}: {money(micro)} {currency} added ({reason}); balance "
        f"{money(before.balance)} -> {money(after.balance)} {currency}, {after.status}"
    )


@customer.command("correct")
@click.argument("customer_id")
@click.option("--add", "add", metavar="AMOUNT", help="Credit owed to the customer.")
@click.option("--deduct", metavar="AMOUNT", help="Credit given by mistake (may go below zero).")
@reason_option
@json_option
@click.pass_context
def correct(
    ctx: click.Context,
    *,
    customer_id: str,
    add: str | None,
    deduct: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Correct a customer's SIP credit up or down, with a reason (e.g. a top-up booked twice).

    \b
    Example:
      rater customer correct sip1 --deduct 20 --reason "top-up of 2008-09-28 booked twice"
    """
    if (add is None) == (deduct is None):
        raise click.UsageError("give exactly one of --add AMOUNT or --deduct AMOUNT")
    micro = (
        amount_micro(add, "--add") if add is not None else -amount_micro(str(deduct), "--deduct")
    )
    accounts = accounts_of(ctx)
    before = accounts.get_customer(customer_id)
    accounts.adjust("customer", customer_id, amount_text(micro), reason)
    after = accounts.get_customer(customer_id)
    currency = accounts.get_reseller(after.reseller_id).currency
    if as_json:
        emit_json(
            {
                "customer": customer_id,
                "change": money(micro),
                "balance_before": money(before.balance),
                "balance": money(after.balance),
                "currency": currency,
                "status": after.status,
                "reason": reason,
            }
        )
        return
    verb = "added" if micro > 0 else "deducted"
    echo_line(
        f"customer {customer_id}: {money(abs(micro))} {currency} {verb} ({reason}); balance "
        f"{money(before.balance)} -> {money(after.balance)} {currency}, {after.status}"
    )


@customer.command("show")
@click.argument("customer_id")
@click.option("--cards", "list_cards", is_flag=True, help="List every card (may be long).")
@json_option
@click.pass_context
def show(ctx: click.Context, *, customer_id: str, list_cards: bool, as_json: bool) -> None:
    """Show a customer's balance, tariff, status and cards."""
    accounts = accounts_of(ctx)
    found = accounts.get_customer(customer_id)
    print_customer(accounts, found, as_json, verb=None, list_cards=list_cards)


# ---------------------------------------------------------------------------- helpers
def print_customer(
    accounts: Accounts,
    found: Customer,
    as_json: bool,
    *,
    verb: str | None,
    list_cards: bool = False,
) -> None:
    currency = accounts.get_reseller(found.reseller_id).currency
    cards = accounts.list_cards(found.customer_id)
    by_status: dict[str, int] = {}
    for card in cards:
        by_status[card.status] = by_status.get(card.status, 0) + 1
    on_cards = sum(max(card.balance, 0) for card in cards)
    holds = accounts.holds("customer", found.customer_id)
    if as_json:
        data: dict[str, Any] = {
            "customer": found.customer_id,
            "name": found.name,
            "reseller": found.reseller_id,
            "kind": found.kind.value,
            "tariff": found.tariff,
            "balance": money(found.balance),
            "currency": currency,
            "status": found.status,
            "cards": len(cards),
            "cards_by_status": by_status,
            "card_value": money(on_cards),
            **held_json(holds),
        }
        if list_cards:
            data["card_list"] = [card_json(card) for card in cards]
        emit_json(data)
        return
    title = f"customer {found.customer_id}" + (f" {verb}" if verb else "")
    pairs: list[tuple[str, object]] = [
        ("name", found.name),
        ("reseller", found.reseller_id),
        ("kind", found.kind.value),
        ("tariff", found.tariff),
        ("balance", f"{money(found.balance)} {currency}"),
        ("status", found.status),
        (
            "cards",
            f"{len(cards)}"
            + (
                f" ({', '.join(f'{n} {s}' for s, n in sorted(by_status.items()))})" if cards else ""
            ),
        ),
        ("value on cards", f"{money(on_cards)} {currency}"),
        ("held for calls", held_text(holds, currency)),
    ]
    click.echo(block(pairs, title=title))
    if list_cards and cards:
        rows = [
            (c.number, money(c.balance), c.status, c.disposable, c.ani_on, c.batch_id)
            for c in cards
        ]
        headers = ("card", "balance", "status", "disposable", "ANI on", "batch")
        click.echo("\n" + table(headers, rows, numeric={1}))


def card_json(card: Card) -> dict[str, Any]:
    """A card as scripts see it (no PIN: it is not kept)."""
    from rater.cli._output import last_valid_day  # noqa: PLC0415

    return {
        "card": card.number,
        "customer": card.customer_id,
        "reseller": card.reseller_id,
        "balance": money(card.balance),
        "value": money(card.value),
        "status": card.status,
        "disposable": card.disposable,
        "ani_recognition": card.ani_on,
        "anis": list(card.anis),
        "valid_through": last_valid_day(card.expires),
        "batch": card.batch_id,
        "locked_until": card.locked_until,
        "pin_failures": card.pin_failures,
        "pin_blocked": card.pin_blocked,
    }
