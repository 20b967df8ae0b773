"""Card batches (the XLSX with the PINs is the answer to the creation, never stored), the
export without PINs, and one card's block, unblock and top-up (docs/DESIGN.md section 1)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from urllib.parse import quote

from starlette.responses import Response

from rater.accounts.cardsheet import (
    BatchInfo,
    ExportRow,
    IssuedRow,
    export_sheet_bytes,
    issue_sheet_bytes,
)
from rater.accounts.pinkeys import PinKeys
from rater.cli._output import expiry_instant, last_valid_day
from rater.errors import AccountError, RaterError
from rater.logs import get_logger
from rater.portal.pages.customers import _amount
from rater.portal.web import Ctx

log = get_logger(__name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.@+\-]")


def _download(body: bytes, filename: str) -> Response:
    return Response(
        body,
        media_type=XLSX,
        headers={
            "Content-Disposition": f'attachment; filename="{_SAFE_NAME.sub("_", filename)}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def create_batch(ctx: Ctx) -> Response:
    owner = ctx.scope.customer(ctx.request.path_params["customer_id"])
    here = f"/customers/{quote(owner.customer_id)}"
    try:
        count_text = ctx.field("count")
        if not count_text.isdigit():
            raise AccountError(f"the number of cards {count_text!r} is not a whole number")
        micro = _amount(ctx.field("value"), "the card value")
        expires_text = ctx.field("expires")
        last_day = date.fromisoformat(expires_text) if expires_text else None
        if last_day is not None and last_day < datetime.now(UTC).date():
            raise AccountError(f"the last day {expires_text} is in the past")
        PinKeys.from_settings(ctx.portal.settings)
        made = ctx.accounts.create_cards(
            owner.customer_id, count=int(count_text), value=micro,
            disposable=ctx.field("disposable") == "yes", expires=expiry_instant(last_day),
        )  # fmt: skip
    except ValueError:
        return ctx.back(here, error=f"{ctx.field('expires')!r} is not a date like 2027-09-29")
    except RaterError as error:
        return ctx.back(here, error=str(error))
    ctx.portal.censuses.forget(ctx.reseller_id)
    info = BatchInfo(
        batch_id=made.batch_id, currency=ctx.scope.reseller.currency, value=made.value,
        expires=last_day, tariff=owner.tariff, customer_id=owner.customer_id,
        disposable=made.disposable,
    )  # fmt: skip
    rows = [IssuedRow(card.number, card.pin) for card in made.cards]
    try:
        body = issue_sheet_bytes(info, rows)
    except Exception as error:
        # the PINs would be lost: nobody may use these cards (as `rater card create` does)
        for card in made.cards:
            ctx.accounts.block_card(card.number)
        log.error("card sheet not made; batch blocked", batch=made.batch_id, error=str(error))
        return ctx.back(here, error=f"batch {made.batch_id}: the sheet failed; cards blocked")
    log.info("card batch made in the portal", batch=made.batch_id, cards=len(rows))
    return _download(body, f"cards-{made.batch_id}.xlsx")


def export_batch(ctx: Ctx) -> Response:
    batch_id = ctx.request.path_params["batch_id"]
    customer_id = ctx.scope.batch_owner(batch_id)
    cards = ctx.accounts.list_cards(batch_id=batch_id)
    if not cards:
        raise AccountError(f"batch {batch_id!r} has no cards")
    owner = ctx.scope.customer(customer_id)
    first = cards[0]
    info = BatchInfo(
        batch_id=batch_id, currency=ctx.scope.reseller.currency, value=first.value,
        expires=last_valid_day(first.expires), tariff=owner.tariff,
        customer_id=owner.customer_id, disposable=first.disposable,
    )  # fmt: skip
    rows = [ExportRow(card.number, card.balance, card.status) for card in cards]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return _download(export_sheet_bytes(info, rows), f"cards-{batch_id}-export-{stamp}.xlsx")


def card_action(ctx: Ctx) -> Response:
    card = ctx.scope.card(ctx.request.path_params["number"])
    action = ctx.request.path_params["action"]
    here = f"/customers/{quote(card.customer_id)}"
    try:
        if action == "block":
            ctx.accounts.block_card(card.number)
            done = f"card {card.number} blocked"
        elif action == "unblock":
            ctx.accounts.unblock_card(card.number)
            done = f"card {card.number} unblocked"
        elif action == "topup":
            micro = _amount(ctx.field("amount"), "the top-up")
            after = ctx.accounts.topup_card(card.number, micro, ctx.field("reason"))
            done = f"card {card.number} topped up; balance now {after.balance_str}"
        else:
            return ctx.back(here, error=f"unknown action {action!r}")
    except RaterError as error:
        return ctx.back(here, error=str(error))
    ctx.portal.censuses.forget(ctx.reseller_id)
    return ctx.back(here, ok=done)
