"""Customers: list and create (SIP and card-batch), one customer's balance, cards and history;
top-ups and corrections with a required reason."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from rater.accounts.model import CustomerKind, Level
from rater.errors import AccountError, MoneyError, NotFound, RaterError
from rater.money import to_micro
from rater.portal.web import Ctx

PAGE = 50
CARDS_PAGE = 100


def _amount(text: str, what: str) -> int:
    try:
        micro = to_micro(text.replace(",", ".").strip())
    except (MoneyError, ValueError, ArithmeticError):
        raise AccountError(f"{what} {text!r} is not an amount like 10 or 10.50") from None
    if micro <= 0:
        raise AccountError(f"{what} must be more than 0")
    return micro


def customers(ctx: Ctx) -> Response:
    api = ctx.accounts.customers
    query = ctx.field("q").lower()
    ids = api.ids(ctx.reseller_id)
    if query:
        names = api.names(ctx.reseller_id, ids)
        ids = [
            c for c, n in zip(ids, names, strict=True) if query in c.lower() or query in n.lower()
        ]
    page = max(int(ctx.field("page")) if ctx.field("page").isdigit() else 1, 1)
    pages = max((len(ids) + PAGE - 1) // PAGE, 1)
    page = min(page, pages)
    shown = api.get_many(ctx.reseller_id, ids[(page - 1) * PAGE : page * PAGE])
    return ctx.render(
        "customers.html", title="Customers", customers=shown, total=len(ids), page=page,
        pages=pages, q=ctx.field("q"), tariffs=ctx.scope.visible_tariffs(),
    )  # fmt: skip


def create(ctx: Ctx) -> Response:
    customer_id = ctx.field("customer_id")
    tariff = ctx.scope.tariff(ctx.field("tariff"))  # another reseller's table: 404
    kind = CustomerKind.CARD_BATCH if ctx.field("kind") == "card_batch" else CustomerKind.NORMAL
    try:
        opening = ctx.field("balance") or "0"
        made = ctx.accounts.create_customer(
            customer_id, ctx.field("name") or customer_id, reseller_id=ctx.reseller_id,
            tariff=tariff, kind=kind, balance=opening,
        )  # fmt: skip
    except RaterError as error:
        return ctx.back("/customers", error=str(error))
    return ctx.back(
        f"/customers/{quote(made.customer_id)}",
        ok=f"customer {made.customer_id} ({made.name}) created on {made.tariff!r}",
    )


def customer(ctx: Ctx) -> Response:
    found = ctx.scope.customer(ctx.request.path_params["customer_id"])
    reseller_id, numbers = ctx.accounts.cards.numbers(found.customer_id)
    page = max(int(ctx.field("page")) if ctx.field("page").isdigit() else 1, 1)
    pages = max((len(numbers) + CARDS_PAGE - 1) // CARDS_PAGE, 1)
    page = min(page, pages)
    cards = ctx.accounts.cards.get_many(
        reseller_id, numbers[(page - 1) * CARDS_PAGE : page * CARDS_PAGE]
    )
    batches = sorted({card.batch_id for card in cards if card.batch_id})
    try:
        history = ctx.portal.reports().history(ctx.reseller_id, found.customer_id)
    except Exception as error:  # ClickHouse away: the page still shows Redis' figures
        history = None
        history_error = str(error)
    else:
        history_error = ""
    standing = ctx.accounts.standing(ctx.reseller_id, named=0)
    return ctx.render(
        "customer.html", title=f"Customer {found.customer_id}", customer=found, cards=cards,
        card_count=len(numbers), page=page, pages=pages, batches=batches, history=history,
        history_error=history_error,
        free=standing.coverage.credit - standing.coverage.customers_total,
        threshold=standing.reseller.ani_threshold,
    )  # fmt: skip


def topup(ctx: Ctx) -> Response:
    found = ctx.scope.customer(ctx.request.path_params["customer_id"])
    here = f"/customers/{quote(found.customer_id)}"
    try:
        micro = _amount(ctx.field("amount"), "the top-up")
        after = ctx.accounts.topup_customer(found.customer_id, micro, ctx.field("reason"))
    except RaterError as error:
        return ctx.back(here, error=str(error))
    return ctx.back(here, ok=f"topped up; balance now {after.balance_str}")


def correct(ctx: Ctx) -> Response:
    found = ctx.scope.customer(ctx.request.path_params["customer_id"])
    here = f"/customers/{quote(found.customer_id)}"
    try:
        micro = _amount(ctx.field("amount"), "the correction")
        sign = -1 if ctx.field("direction") == "deduct" else 1
        balance = ctx.accounts.adjust(
            Level.CUSTOMER, found.customer_id, sign * micro, ctx.field("reason")
        )
    except (RaterError, NotFound) as error:
        return ctx.back(here, error=str(error))
    from rater.money import from_micro  # noqa: PLC0415

    return ctx.back(here, ok=f"corrected; balance now {from_micro(balance)}")
