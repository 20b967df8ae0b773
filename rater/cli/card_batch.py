"""`rater card create` and `rater card export`: a batch of calling cards (with its XLSX sheet)
and the export of a batch (rater/cli/card.py adds them to `rater card`).

The sheet written by `card create` is the only copy of the PINs: the account API keeps an
HMAC of each PIN and hands the clear PINs out once, at creation. So the sheet's target is
checked before any card exists, and if writing it fails after the cards were made, the batch's
cards are blocked at once (nobody could use them, and a disposable batch's money stays put).
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rater.accounts.cardsheet import (
    BatchInfo,
    ExportRow,
    IssuedRow,
    write_export_sheet,
    write_issue_sheet,
)
from rater.accounts.pinkeys import PinKeys
from rater.cli._output import (
    accounts_of,
    amount_micro,
    amount_text,
    block,
    echo_line,
    emit_json,
    expiry_date,
    expiry_instant,
    json_option,
    last_valid_day,
    money,
)
from rater.cli.grammar import Command, Deprecated, quiet
from rater.cli.main import settings_of
from rater.errors import AccountError, CardSheetError, RaterError

if TYPE_CHECKING:
    from rater.accounts.api import Accounts


def _old_xlsx() -> Deprecated:
    """The old spelling of -o/--output on both commands (README.md, "Command grammar")."""
    return Deprecated(
        ["--xlsx"],
        new="-o/--output",
        dest="output",
        type=click.Path(dir_okay=False, path_type=Path),
    )


def _sheet_option(default: str) -> click.Option:
    return click.Option(
        ["-o", "--output", "output"],
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE.xlsx",
        help=f"Where the sheet goes [default: {default}]. Never overwritten.",
    )


@click.command("create", cls=Command)
@click.option("--customer", "customer_id", required=True, metavar="CUSTOMER", help="Owner.")
@click.option(
    "--count", required=True, type=click.IntRange(1, 100_000), help="How many cards (1-100000)."
)
@click.option("--value", required=True, metavar="AMOUNT", help="Value of each card, e.g. 5.")
@click.option("--disposable", is_flag=True, help="Never topped up; exhausted for good when empty.")
@click.option(
    "--expires",
    metavar="DATE",
    help="Last day the cards can be used (YYYY-MM-DD, UTC); none by default.",
)
@click.option(
    "--batch",
    "batch_id",
    metavar="ID",
    help="The new batch's id [default: <customer>-<time>-<random>].",
)
@click.option("--batch-id", "old_batch_id", cls=Deprecated, new="--batch", dest="batch_id")
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    *,
    customer_id: str,
    count: int,
    value: str,
    disposable: bool,
    expires: str | None,
    output: Path | None,
    batch_id: str | None,
    as_json: bool,
) -> None:
    """Create a batch of calling cards and write its XLSX sheet (card numbers and PINs).

    The sheet is the only copy of the PINs. --json prints one object with the card numbers
    made (never the PINs).

    \b
    Disposable cards (tip 3 of the reseller notice) live on a card-batch customer with its own
    tariff; creating the batch funds that customer with count x value, which the reseller's
    credit must cover. They are never topped up. Cards on a normal SIP customer are spending
    limits inside its balance (nothing is funded).

    \b
    Example (the notice's tip 3):
      rater card create --customer ccbatch1 --count 100 --value 5 --disposable
    """
    micro = amount_micro(value, "--value")
    last_day = expiry_date(expires)
    PinKeys.from_settings(settings_of(ctx))  # no PIN secret: refused before anything is made
    batch = batch_id or _new_batch_id(customer_id)
    target = output if output is not None else Path.cwd() / f"cards-{batch}.xlsx"
    _check_sheet_target(target)
    accounts = accounts_of(ctx)
    owner = accounts.get_customer(customer_id)
    reseller = accounts.get_reseller(owner.reseller_id)

    started = time.perf_counter()
    with _progress(count, "creating cards", quiet=as_json or quiet()) as progress:
        try:
            made = accounts.create_cards(
                customer_id,
                count=count,
                value=amount_text(micro),
                disposable=disposable,
                expires=expiry_instant(last_day),
                batch_id=batch,
                progress=progress,
            )
        except RaterError:
            raise  # refused before anything was created (coverage, kind, ...)
        except Exception as error:
            # e.g. a Redis timeout while the script went on: the cards may exist, their PINs
            # are gone with this process. Block whatever was created so nobody is charged.
            blocked = _block_batch(accounts, batch)
            detail = f"{type(error).__name__}: {error}"
            if blocked:
                raise CardSheetError(
                    f"batch {batch}: creating the cards failed midway ({detail}); {blocked} "
                    "cards were created without a sheet and are now blocked. Create a new batch."
                ) from error
            raise AccountError(
                f"batch {batch}: creating the cards failed ({detail}); no card was created"
            ) from error
    created_s = time.perf_counter() - started
    info = BatchInfo(
        batch_id=made.batch_id,
        currency=reseller.currency,
        value=made.value,
        expires=last_day,
        tariff=owner.tariff,
        customer_id=customer_id,
        disposable=made.disposable,
    )
    rows = [IssuedRow(card.number, card.pin) for card in made.cards]
    started = time.perf_counter()
    try:
        with _progress(len(rows), "writing sheet", quiet=as_json or quiet()) as progress:
            write_issue_sheet(target, info, rows, progress=progress)
    except (OSError, RaterError) as error:
        blocked = _block_all(accounts, [card.number for card in made.cards])
        raise CardSheetError(
            f"batch {made.batch_id}: {count} cards were created but their sheet could not be "
            f"written to {target} ({error}); the PINs are lost, so all {blocked} cards of the "
            f"batch are now blocked. Create a new batch."
        ) from None
    written_s = time.perf_counter() - started
    after = accounts.get_customer(customer_id)
    total = made.value * count
    if as_json:
        emit_json(
            {
                "batch": made.batch_id,
                "customer": customer_id,
                "reseller": made.reseller_id,
                "count": count,
                "value": money(made.value),
                "total_value": money(total),
                "currency": reseller.currency,
                "disposable": made.disposable,
                "funded": money(made.funded),
                "valid_through": last_day,
                "tariff": owner.tariff,
                "customer_balance": money(after.balance),
                "output": str(target),
                "xlsx": str(target),  # the old name of "output", kept for one release
                "seconds_create": round(created_s, 3),
                "seconds_sheet": round(written_s, 3),
                "cards": [card.number for card in made.cards],
            }
        )
        return
    cur = reseller.currency
    funded = (
        f"customer funded with {money(made.funded)} {cur}"
        if made.funded
        else "nothing funded: the cards are limits inside the customer's SIP credit"
    )
    click.echo(
        block(
            [
                ("cards", f"{count} x {money(made.value)} {cur} = {money(total)} {cur}"),
                ("kind", "disposable (never topped up)" if made.disposable else "rechargeable"),
                ("customer", f"{customer_id} ({owner.name}), tariff {owner.tariff!r}"),
                ("funding", funded),
                ("customer balance", f"{money(after.balance)} {cur}"),
                ("valid through", last_day or "no expiry"),
                ("sheet", f"{target}  <- the only copy of the PINs: keep it safe"),
                ("took", f"{created_s:.2f} s to create, {written_s:.2f} s to write the sheet"),
            ],
            title=f"batch {made.batch_id} created",
        )
    )


# -o/--output goes before --json in --help, as on every other command
create.params[-1:-1] = [_sheet_option("./cards-<batch>.xlsx"), _old_xlsx()]


@click.command("export", cls=Command)
@click.option("--batch", "batch_id", required=True, metavar="BATCH", help="The batch id.")
@json_option
@click.pass_context
def export(ctx: click.Context, *, batch_id: str, output: Path | None, as_json: bool) -> None:
    """Write a batch's cards to XLSX with their current balances and status (never PINs)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    target = output if output is not None else Path.cwd() / f"cards-{batch_id}-export-{stamp}.xlsx"
    _check_sheet_target(target)
    accounts = accounts_of(ctx)
    found = accounts.list_cards(batch_id=batch_id)
    if not found:
        raise AccountError(f"batch {batch_id!r} has no cards")
    first = found[0]
    owner = accounts.get_customer(first.customer_id)
    reseller = accounts.get_reseller(first.reseller_id)
    info = BatchInfo(
        batch_id=batch_id,
        currency=reseller.currency,
        value=first.value,
        expires=last_valid_day(first.expires),
        tariff=owner.tariff,
        customer_id=owner.customer_id,
        disposable=first.disposable,
    )
    rows = [ExportRow(card.number, card.balance, card.status) for card in found]
    with _progress(len(rows), "writing sheet", quiet=as_json or quiet()) as progress:
        write_export_sheet(target, info, rows, progress=progress)
    by_status: dict[str, int] = {}
    for card in found:
        by_status[card.status] = by_status.get(card.status, 0) + 1
    left = sum(max(card.balance, 0) for card in found)
    if as_json:
        emit_json(
            {
                "batch": batch_id,
                "customer": owner.customer_id,
                "count": len(found),
                "cards_by_status": by_status,
                "value_left": money(left),
                "currency": reseller.currency,
                "output": str(target),
                "xlsx": str(target),  # the old name of "output", kept for one release
            }
        )
        return
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    echo_line(
        f"batch {batch_id}: {len(found)} cards ({statuses}), {money(left)} {reseller.currency} "
        f"left on them, written to {target} (no PINs)"
    )


export.params[-1:-1] = [_sheet_option("./cards-<batch>-export-<time>.xlsx"), _old_xlsx()]


# ---------------------------------------------------------------------------- helpers
def _new_batch_id(customer_id: str) -> str:
    return f"{customer_id}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"


def _check_sheet_target(target: Path) -> None:
    """Before any card exists: the sheet must be creatable where asked."""
    if target.suffix.lower() != ".xlsx":
        raise click.BadParameter(f"{target} must end in .xlsx", param_hint="-o/--output")
    if target.exists():
        raise click.BadParameter(
            f"{target} exists; card sheets are never overwritten", param_hint="-o/--output"
        )
    folder = target.parent if str(target.parent) else Path.cwd()
    if not folder.is_dir():
        raise click.BadParameter(f"folder {folder} does not exist", param_hint="-o/--output")
    probe = folder / f".{target.name}.{secrets.token_hex(4)}.probe"
    try:
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as error:
        raise click.BadParameter(
            f"cannot write in {folder}: {error}", param_hint="-o/--output"
        ) from None


def _block_batch(accounts: Accounts, batch_id: str, *, attempts: int = 30) -> int:
    """Block every card of a batch; waits (up to `attempts` s) for a script still running."""
    for attempt in range(attempts):
        try:
            numbers = [card.number for card in accounts.list_cards(batch_id=batch_id)]
            break
        except RaterError:
            return 0  # the batch does not exist: nothing was created
        except Exception:  # Redis still busy with the script that timed out
            if attempt == attempts - 1:
                raise
            time.sleep(1.0)
    return _block_all(accounts, numbers)


def _block_all(accounts: Accounts, numbers: list[str]) -> int:
    blocked = 0
    for number in numbers:
        try:
            accounts.block_card(number)
            blocked += 1
        except RaterError:
            continue
    return blocked


@contextmanager
def _progress(total: int, label: str, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A tqdm progress bar on stderr (only on a terminal; never in --json mode)."""
    from tqdm import tqdm  # noqa: PLC0415 - keep `rater --help` light

    bar = tqdm(
        total=total,
        desc=label,
        unit=" cards",
        unit_scale=True,
        file=sys.stderr,
        disable=True if quiet else None,  # None: only on a terminal
        leave=False,
    )
    try:
        yield bar.update
    finally:
        bar.close()
