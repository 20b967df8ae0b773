"""`rater reseller`: create a reseller, add or correct its credit, show what its credit covers."""

from __future__ import annotations

from dataclasses import dataclass, replace
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
from rater.cli.grammar import Group

if TYPE_CHECKING:
    from rater.accounts.api import Accounts
    from rater.accounts.model import Reseller
    from rater.accounts.reservations import Hold


@click.group(cls=Group)
def reseller() -> None:
    """Create resellers, add credit, show coverage.

    A reseller's credit must cover the balances of all its customers (a disposable card batch
    is a customer funded with the batch's face value). Top-ups and batches that would break
    that are refused with the shortfall named.
    """


@reseller.command("create")
@click.argument("reseller_id")
@click.option("--name", required=True, help="Display name (need not be unique).")
@click.option("--credit", required=True, metavar="AMOUNT", help="Opening credit, e.g. 1000.00.")
@click.option(
    "--buy-tariff",
    required=True,
    metavar="TABLE",
    help="The wholesale tariff table the reseller's cost is rated with.",
)
@click.option("--currency", default="EUR", show_default=True, help="ISO 4217 code.")
@click.option(
    "--ani-threshold",
    default="1.00",
    show_default=True,
    metavar="AMOUNT",
    help="Cards below this balance lose ANI (PIN-less) recognition.",
)
@click.option(
    "--timezone", default="UTC", show_default=True, metavar="ZONE", help="Time zone for reports."
)
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    *,
    reseller_id: str,
    name: str,
    credit: str,
    buy_tariff: str,
    currency: str,
    ani_threshold: str,
    timezone: str,
    as_json: bool,
) -> None:
    """Create reseller RESELLER_ID with an opening credit and a buy tariff."""
    credit_micro = amount_micro(credit, "--credit", positive=False)
    if credit_micro < 0:
        raise click.BadParameter("an opening credit cannot be negative", param_hint="--credit")
    threshold = amount_micro(ani_threshold, "--ani-threshold", positive=False)
    if threshold < 0:
        raise click.BadParameter("cannot be negative", param_hint="--ani-threshold")
    require_tariff(ctx, buy_tariff)
    accounts = accounts_of(ctx)
    created = accounts.create_reseller(
        reseller_id,
        name,
        credit=amount_text(credit_micro),
        buy_tariff=buy_tariff,
        currency=currency.upper(),
        ani_threshold=amount_text(threshold),
        timezone=timezone,
    )
    _print_reseller(created, as_json, "created")


@reseller.command("credit")
@click.argument("reseller_id")
@click.option("--add", "add", metavar="AMOUNT", help="Credit bought: added to the reseller.")
@click.option(
    "--deduct",
    metavar="AMOUNT",
    help="A correction downwards (refused if the customers' balances would no longer be covered).",
)
@reason_option
@json_option
@click.pass_context
def credit(
    ctx: click.Context,
    *,
    reseller_id: str,
    add: str | None,
    deduct: str | None,
    reason: str,
    as_json: bool,
) -> None:
    """Add credit to a reseller, or correct it downwards, with a reason.

    \b
    Examples:
      rater reseller credit xeloq --add 500 --reason "invoice 2008-0917 paid"
      rater reseller credit xeloq --deduct 20 --reason "double booking on 2008-09-28"
    """
    if (add is None) == (deduct is None):
        raise click.UsageError("give exactly one of --add AMOUNT or --deduct AMOUNT")
    if add is not None:
        micro = amount_micro(add, "--add")
    else:
        micro = -amount_micro(str(deduct), "--deduct")
    accounts = accounts_of(ctx)
    before = accounts.get_reseller(reseller_id)
    after = accounts.credit_reseller(reseller_id, amount_text(micro), reason)
    if as_json:
        emit_json(
            {
                "reseller": reseller_id,
                "change": money(micro),
                "credit_before": money(before.credit),
                "credit": money(after.credit),
                "currency": after.currency,
                "reason": reason,
            }
        )
        return
    verb = "added" if micro > 0 else "deducted"
    echo_line(
        f"reseller {reseller_id}: {money(abs(micro))} {after.currency} {verb} "
        f"({reason}); credit {money(before.credit)} -> {money(after.credit)} {after.currency}"
    )


@reseller.command("show")
@click.argument("reseller_id")
@json_option
@click.pass_context
def show(ctx: click.Context, reseller_id: str, as_json: bool) -> None:
    """Show a reseller's credit, its customers, the value on issued cards, and coverage.

    "Always make sure to have your Credit Amount covering all": the credit must cover the sum
    of the customers' balances (disposable batches are customers funded with their face value;
    value on normal cards is a limit inside its customer's balance, shown but not added).
    """
    accounts = accounts_of(ctx)
    summary = summarise(accounts, reseller_id)
    if as_json:
        emit_json(summary.as_json())
        return
    click.echo(summary.as_text())


# ---------------------------------------------------------------------------- coverage summary
@dataclass(frozen=True)
class CustomerLine:
    customer_id: str
    name: str
    kind: str
    status: str
    tariff: str
    balance: int
    cards: int
    cards_usable: int  # active, not blocked
    card_value: int  # sum of positive card balances


@dataclass(frozen=True)
class Summary:
    reseller: Reseller
    customers: tuple[CustomerLine, ...]
    customers_total: int  # sum of positive customer balances: what the credit must cover
    normal_card_value: int  # limits inside normal customers' balances (shown, not added)
    disposable_card_value: int  # value left on disposable cards (inside their batch customers)
    covered: bool
    shortfall: int
    holds: tuple[Hold, ...] = ()  # the reseller's credit held by authorized calls (buy cost)

    @property
    def headroom(self) -> int:
        return self.reseller.credit - self.customers_total

    def as_json(self) -> dict[str, Any]:
        r = self.reseller
        return {
            "reseller": r.reseller_id,
            "name": r.name,
            "currency": r.currency,
            "status": r.status,
            "buy_tariff": r.buy_tariff,
            "ani_threshold": money(r.ani_threshold),
            "credit": money(r.credit),
            "customers_balance": money(self.customers_total),
            "card_value_normal": money(self.normal_card_value),
            "card_value_disposable": money(self.disposable_card_value),
            "covered": self.covered,
            "shortfall": money(self.shortfall),
            "headroom": money(max(self.headroom, 0)),
            **held_json(self.holds),
            "customers": [
                {
                    "customer": c.customer_id,
                    "name": c.name,
                    "kind": c.kind,
                    "status": c.status,
                    "tariff": c.tariff,
                    "balance": money(c.balance),
                    "cards": c.cards,
                    "cards_usable": c.cards_usable,
                    "card_value": money(c.card_value),
                }
                for c in self.customers
            ],
        }

    def as_text(self) -> str:
        r, cur = self.reseller, self.reseller.currency
        verdict = (
            f"yes, {money(self.headroom)} {cur} to spare"
            if self.covered
            else f"NO: short by {money(self.shortfall)} {cur}; add credit before issuing more"
        )
        head = block(
            [
                ("name", r.name),
                ("status", r.status),
                ("currency", cur),
                ("buy tariff", r.buy_tariff),
                ("ANI threshold", f"{money(r.ani_threshold)} {cur}"),
                ("credit", f"{money(r.credit)} {cur}"),
                ("customers' balances", f"{money(self.customers_total)} {cur}"),
                ("value on disposable cards", f"{money(self.disposable_card_value)} {cur}"),
                ("value on SIP-account cards", f"{money(self.normal_card_value)} {cur} (limits)"),
                ("credit covers all", verdict),
                ("held for calls", held_text(self.holds, cur)),
            ],
            title=f"reseller {r.reseller_id}",
        )
        if not self.customers:
            return head + "\n\nno customers yet"
        rows = [
            (
                c.customer_id,
                c.name,
                c.kind,
                c.status,
                c.tariff,
                money(c.balance),
                f"{c.cards_usable}/{c.cards}",
                money(c.card_value),
            )
            for c in self.customers
        ]
        headers = ("customer", "name", "kind", "status", "tariff", "balance", "cards", "on cards")
        return head + "\n\n" + table(headers, rows, numeric={5, 6, 7})


def summarise(accounts: Accounts, reseller_id: str) -> Summary:
    """The coverage picture of one reseller, from the account API."""
    from rater.accounts.model import CustomerKind  # noqa: PLC0415 - keep `--help` light

    found = accounts.get_reseller(reseller_id)
    coverage = accounts.coverage(reseller_id)
    lines = []
    disposable_value = 0
    for customer in accounts.list_customers(reseller_id):
        cards = accounts.list_cards(customer.customer_id)
        value = sum(max(card.balance, 0) for card in cards)
        usable = sum(1 for card in cards if card.status == "active")
        if customer.kind is CustomerKind.CARD_BATCH:
            disposable_value += value
        lines.append(
            CustomerLine(
                customer_id=customer.customer_id,
                name=customer.name,
                kind=customer.kind.value,
                status=customer.status,
                tariff=customer.tariff,
                balance=customer.balance,
                cards=len(cards),
                cards_usable=usable,
                card_value=value,
            )
        )
    return Summary(
        # coverage read the credit after the customers: its figures belong together
        reseller=replace(found, credit=coverage.credit),
        customers=tuple(lines),
        customers_total=coverage.customers_total,
        normal_card_value=coverage.card_value_issued,
        disposable_card_value=disposable_value,
        covered=coverage.covered,
        shortfall=coverage.shortfall,
        holds=tuple(accounts.holds("reseller", reseller_id)),
    )


def _print_reseller(found: Reseller, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(
            {
                "reseller": found.reseller_id,
                "name": found.name,
                "credit": money(found.credit),
                "currency": found.currency,
                "buy_tariff": found.buy_tariff,
                "ani_threshold": money(found.ani_threshold),
                "timezone": found.timezone,
                "status": found.status,
            }
        )
        return
    echo_line(
        f"reseller {found.reseller_id} ({found.name}) {verb}: credit {money(found.credit)} "
        f"{found.currency}, buys at {found.buy_tariff!r}, ANI threshold "
        f"{money(found.ani_threshold)} {found.currency}"
    )


@reseller.command("password")
@click.argument("reseller_id")
@click.pass_context
def password(ctx: click.Context, reseller_id: str) -> None:
    """Set the password RESELLER_ID logs in to the portal with (`rater serve`, /portal).

    Asked for twice on a terminal; otherwise the first line of standard input. Stored as an
    argon2 hash; the reseller's open portal sessions end.
    """
    import sys  # noqa: PLC0415

    from rater.portal.passwords import set_password  # noqa: PLC0415 - keep `--help` light

    if sys.stdin.isatty():
        secret = click.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        secret = sys.stdin.readline().rstrip("\r\n")
    accounts = accounts_of(ctx)
    set_password(accounts.redis, reseller_id, secret)
    echo_line(f"reseller {reseller_id}: portal password set; earlier sessions ended")
