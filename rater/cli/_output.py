"""What the reseller, customer, card and ANI commands share: output, option parsing, and
opening the account API.

- Text for people (aligned key/value blocks and tables), or with ``--json`` one JSON object on
  stdout for scripts. Money is always a decimal string, never a float: exact to the micro-unit,
  with at least two decimals ("5.00", "4.9833", "-0.120000" -> "-0.12").
- Amount options are parsed here into micro-units, so a bad amount is a usage error naming the
  option, before anything touches Redis.
- Errors are rater's own (RaterError): `rater` prints them as one line and exits 1; a tariff
  name that does not exist is refused before an account points at it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from rater.cli.main import settings_of
from rater.errors import MoneyError, NotFound
from rater.escape import terminal
from rater.money import MICRO, display, from_micro, to_micro

if TYPE_CHECKING:
    from rater.accounts.api import Accounts
    from rater.accounts.reservations import Hold

#: seconds the admin commands wait for Redis (see accounts_of)
ADMIN_REDIS_TIMEOUT_S = 300.0

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------- money
def money(micro: int) -> str:
    """Micro-units as an exact decimal string with at least two decimals."""
    return display(micro)


def amount_micro(text: str, option: str, *, positive: bool = True) -> int:
    """A decimal amount in currency units ('5', '4.50') as micro-units; BadParameter if not."""
    try:
        micro = to_micro(text)
    except MoneyError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
    if positive and micro <= 0:
        raise click.BadParameter(f"must be more than 0, not {text!r}", param_hint=option)
    return micro


def amount_text(micro: int) -> str:
    """Micro-units as the decimal string the account API takes (it reads ints as micro-units,
    strings as currency units: always hand it strings)."""
    return from_micro(micro)


# ---------------------------------------------------------------------------- dates
def expiry_date(text: str | None, option: str = "--expires") -> date | None:
    """A last day of validity 'YYYY-MM-DD' (UTC), not in the past."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a date like 2027-03-31", param_hint=option
        ) from None
    if day < datetime.now(UTC).date():
        raise click.BadParameter(f"{text} is in the past", param_hint=option)
    return day


def expiry_instant(day: date | None) -> datetime | None:
    """Cards are valid through their last day: they expire at the next midnight UTC."""
    if day is None:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


def last_valid_day(expires: datetime | None) -> date | None:
    """The inverse of expiry_instant: the last day a card may be used (UTC)."""
    if expires is None:
        return None
    return (expires.astimezone(UTC) - timedelta(microseconds=1)).date()


# ---------------------------------------------------------------------------- output
def json_option(function: F) -> F:
    """The --json flag of a command that prints one thing: one JSON object."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON object (for scripts) instead of text.",
    )(function)


def json_lines_option(function: F) -> F:
    """The --json flag of a listing: one JSON object per line (JSON Lines), so a script reads
    a long listing line by line; an empty listing prints nothing."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print one JSON object per line (for scripts) instead of text.",
    )(function)


def reason_option(function: F) -> F:
    """--reason, required on every balance change (recorded in the ledger)."""
    return click.option(
        "--reason",
        required=True,
        metavar="TEXT",
        help="Why (required; recorded in the ledger with the change).",
    )(function)


def emit_json(data: Mapping[str, Any]) -> None:
    """One JSON object on stdout. json escapes C0 controls itself; DEL, the C1 controls and
    the bidirectional overrides are written as \\u escapes too, so the text stays valid JSON
    and sends nothing to a terminal."""
    text = json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)
    click.echo(_JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text))


def json_line(row: Mapping[str, Any]) -> str:
    """One compact JSON object on one line, escaped as emit_json: a line of a listing's --json
    and of a .jsonl file (the same bytes in both)."""
    text = json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def emit_json_lines(rows: Iterable[Mapping[str, Any]]) -> None:
    """One JSON object per line on stdout (a listing's --json)."""
    for row in rows:
        click.echo(json_line(row))


#: characters json.dumps(ensure_ascii=False) leaves raw that a terminal would act on
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)  # exact, never a float (percentages, minutes)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def block(pairs: Sequence[tuple[str, object]], *, title: str | None = None) -> str:
    """Aligned 'key: value' lines."""
    width = max((len(key) for key, _ in pairs), default=0)
    lines = [terminal(title)] if title else []
    lines += [f"  {key + ':':<{width + 1}} {_cell(value)}" for key, value in pairs]
    return "\n".join(lines)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, numeric: set[int]) -> str:
    """A plain-text table; columns in `numeric` are right-aligned (amounts, counts)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(widths[i]) if i in numeric else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _cell(value: object) -> str:
    """A value as table or block text; text from records is shown, never sent to the terminal
    (rater.escape.terminal)."""
    return terminal(_plain_cell(value))


def _plain_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def held_text(holds: Sequence[Hold], currency: str) -> str:
    """Credit held by authorized calls, for a show command: 'none' or count, sum, last expiry."""
    if not holds:
        return "none"
    total = sum(h.amount for h in holds)
    last = max(h.expires_at for h in holds)
    calls = f"{len(holds)} call" + ("s" if len(holds) > 1 else "")
    return f"{calls}, {money(total)} {currency}, until {_cell(last)} at the latest"


def held_json(holds: Sequence[Hold]) -> dict[str, Any]:
    """The same for --json: the sum and each reservation."""
    return {
        "held": money(sum(h.amount for h in holds)),
        "reservations": [
            {"auth_id": h.auth_id, "amount": money(h.amount), "expires_at": h.expires_at}
            for h in holds
        ],
    }


def echo_line(text: str) -> None:
    """One line of text on stdout that carries ids, reasons or names from users and records:
    every control character is shown as an escape, never sent (rater.escape.terminal)."""
    click.echo(terminal(text))


def warn(message: str) -> None:
    click.secho(f"warning: {terminal(message, newlines=True)}", fg="yellow", err=True)


# ---------------------------------------------------------------------------- the account API
def require_tariff(ctx: click.Context, name: str) -> None:
    """Refuse a tariff name that does not exist (a typo would leave every call unrated)."""
    from rater.redis.connection import connect  # noqa: PLC0415 - keep `--help` light
    from rater.tariffs.store import TariffStore  # noqa: PLC0415

    settings = settings_of(ctx)
    store = TariffStore(connect(settings), settings, clickhouse=False)
    if name not in store.names():
        known = ", ".join(repr(n) for n in sorted(store.names())[:10]) or "none yet"
        raise NotFound(
            f"tariff {name!r} does not exist (known: {known}); import or derive it first "
            "with `rater tariff import` or `rater tariff derive`"
        )


def accounts_of(ctx: click.Context, *, actor: str = "cli") -> Accounts:
    """The account API (rater.accounts.api.Accounts) on the configured Redis and ClickHouse.

    Its Redis client waits up to ADMIN_REDIS_TIMEOUT_S for an answer: redis-py 8 gives up
    after 5 s by default, and the one script that creates a batch of 100,000 cards runs
    longer than that on a busy machine; giving up then would lose the PINs of cards the
    script goes on to create.
    """
    from rater.accounts.api import Accounts  # noqa: PLC0415
    from rater.redis import connection as redis_client  # noqa: PLC0415 - `rater --help` stays light

    settings = settings_of(ctx)
    client = redis_client.connect(settings, socket_timeout=ADMIN_REDIS_TIMEOUT_S)
    return Accounts(settings, client, actor=actor)


__all__ = [
    "MICRO",
    "accounts_of",
    "amount_micro",
    "amount_text",
    "block",
    "echo_line",
    "emit_json",
    "emit_json_lines",
    "expiry_date",
    "expiry_instant",
    "held_json",
    "held_text",
    "json_line",
    "json_lines_option",
    "json_option",
    "last_valid_day",
    "money",
    "reason_option",
    "require_tariff",
    "table",
    "warn",
]
