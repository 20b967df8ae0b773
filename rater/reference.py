"""The reference rater: plain Python and Decimal, the definition of a right price.

Slow on purpose and never optimised: every step reads like docs/DESIGN.md section 2, so audits
(`rater rate --engine reference`), the load generator's manifest and the kernel's tests can
trust it. Amounts are computed in currency units as exact Decimals (integer quotients only,
never a rounded division), then converted to micro-units at the very end.

Rules implemented here:

- the version in force at a CDR's start time is the one with the latest effective_from <= start
  (ties: the higher version number); the first version is in force from the beginning of time;
- inside that version, for each prefix the started row with the latest date counts (a row
  without a date of its own is in force whenever its version is, and is ordered at the
  version's time); if that row is closed (effective_to <= start) or no row of the prefix has
  started, the prefix is not in force and the call falls to a shorter prefix; the longest
  prefix in force wins; a short number (fewer than 6 digits: an extension, a service or
  emergency code) is matched only by a prefix that is the whole number;
- billable = 0 for billsec 0; X if billsec <= X; else X + ceil((billsec - X) / Y) * Y;
- price = connect_fee + rate * billable / 60 (or first_rate * X / 60 + rate * (billable - X) / 60
  with a first-step rate), exact, then rounded to the table's decimals with its mode;
  billsec 0 costs nothing, not even the connect fee;
- dialled numbers become E.164 digits (`normalise`, written out below from the same section).

It is an independent oracle: it imports only the types it is given (rater.tariffs.model) and
the errors it raises (rater.errors), never the product's matching, pricing or normalisation,
so a fault there cannot hide by appearing on both sides of a comparison.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from urllib.parse import unquote

from rater.errors import NormalisationError, TariffError
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable

MICRO = 1_000_000  # micro-units per currency unit

#: Decimal digits of working precision: micro-unit rates times years of seconds fit easily,
#: so every product and integer quotient below is exact.
_PRECISION = 60


@dataclass(frozen=True)
class RefRated:
    """One CDR rated by the reference."""

    table: str  # 'name@version' of the version in force
    prefix: str  # the matched prefix
    destination: str
    billable_seconds: int
    price_micro: int  # rounded per the table, in micro-units


def _first_in_force_sort_key(table: TariffTable) -> tuple[bool, datetime | None, int]:
    # None (the beginning of time) sorts before every date.
    return (table.effective_from is not None, table.effective_from, table.version)


def version_at(versions: Sequence[TariffTable], at: datetime) -> TariffTable | None:
    """The version of a table in force at `at`; the first one is in force from the beginning."""
    if not versions:
        return None
    ordered = sorted(versions, key=_first_in_force_sort_key)
    chosen = ordered[0]
    for table in ordered[1:]:
        if table.effective_from is None or table.effective_from <= at:
            chosen = table
    return chosen


def row_start(table: TariffTable, row: TariffRow) -> datetime | None:
    """A row's date for ordering rows of one prefix: its own, else its version's time.

    None is the beginning of time. A row without a date of its own is in force whenever its
    version is (so the first version's rows apply from the beginning of time).
    """
    return row.effective_from if row.effective_from is not None else table.effective_from


def _later(start: datetime | None, other: datetime | None) -> bool:
    """Whether `start` is strictly after `other` (None: the beginning of time)."""
    if start is None:
        return False
    return other is None or start > other


def _rows_by_prefix(table: TariffTable) -> dict[str, list[TariffRow]]:
    """The version's rows grouped by prefix (kept per table object, so large decks are not
    scanned whole for every call; the table is held so its id cannot be reused)."""
    held = _BY_PREFIX.get(id(table))
    if held is not None and held[0] is table:
        return held[1]
    grouped: dict[str, list[TariffRow]] = {}
    for row in table.rows:
        grouped.setdefault(row.prefix, []).append(row)
    if len(_BY_PREFIX) >= 64:
        _BY_PREFIX.clear()
    _BY_PREFIX[id(table)] = (table, grouped)
    return grouped


_BY_PREFIX: dict[int, tuple[TariffTable, dict[str, list[TariffRow]]]] = {}


def _current_row(table: TariffTable, rows: list[TariffRow], at: datetime) -> TariffRow | None:
    """Of one prefix's rows, the started one with the latest date (None: none started)."""
    current: TariffRow | None = None
    for row in rows:
        if row.effective_from is not None and row.effective_from > at:
            continue  # a scheduled change that has not started yet
        if current is not None and row_start(table, row) == row_start(table, current):
            raise TariffError(f"{table.key}: prefix {row.prefix} twice with the same date")
        if current is None or _later(row_start(table, row), row_start(table, current)):
            current = row
    return current


def match(table: TariffTable, number: str, at: datetime) -> TariffRow | None:
    """The row of the longest prefix of `number` in force at `at` in this version, or None."""
    by_prefix = _rows_by_prefix(table)
    # a short number is no E.164 number: extension 1002 is not a call to prefix 1
    shortest = len(number) if len(number) < 6 else 1
    for length in range(len(number), shortest - 1, -1):  # longest first
        rows = by_prefix.get(number[:length])
        if rows is None:
            continue
        row = _current_row(table, rows, at)
        if row is None:
            continue  # no row of this prefix has started: a shorter prefix
        if row.effective_to is not None and row.effective_to <= at:
            continue  # a closed code: the call falls to a shorter prefix
        return row
    return None


def billable_seconds(steps: Steps, billsec: int) -> int:
    """Billing steps X/Y: 0 for 0 s; X up to X s; then whole increments of Y."""
    if billsec <= 0:
        return 0
    if billsec <= steps.minimum:
        return steps.minimum
    increments = (billsec - steps.minimum + steps.increment - 1) // steps.increment
    return steps.minimum + increments * steps.increment


def _units(micro: int) -> Decimal:
    return Decimal(micro) / MICRO  # exact: a power of ten


def _round(amount_times_60: Decimal, decimals: int, mode: str) -> Decimal:
    """Round amount_times_60 / 60 to `decimals` places, exactly (no rounded division);
    mode 'up', 'half-up' or 'down' (the table's rounding)."""
    quantum = Decimal(1).scaleb(-decimals)
    step = 60 * quantum
    whole, rest = divmod(amount_times_60, step)  # integer quotient and exact remainder
    rounds_up = mode == "up" or (mode == "half-up" and 2 * rest >= step)
    if rest != 0 and rounds_up:
        whole += 1
    return whole * quantum


def price(table: TariffTable, row: TariffRow, billsec: int) -> tuple[int, Decimal]:
    """(billable seconds, price in currency units rounded to the table's decimals)."""
    steps = row.steps or table.steps
    billable = billable_seconds(steps, billsec)
    if billable == 0:
        return 0, Decimal(0).quantize(Decimal(1).scaleb(-table.decimals))
    with localcontext() as context:
        context.prec = _PRECISION
        rate = _units(row.rate)
        if row.first_rate is None:
            times_60 = _units(row.connect_fee) * 60 + rate * billable
        else:
            first = _units(row.first_rate)
            times_60 = (
                _units(row.connect_fee) * 60
                + first * steps.minimum
                + rate * (billable - steps.minimum)
            )
        return billable, _round(times_60, table.decimals, str(table.rounding))


def price_micro(table: TariffTable, row: TariffRow, billsec: int) -> int:
    """The rounded price of `billsec` seconds on `row`, in micro-units."""
    with localcontext() as context:
        context.prec = _PRECISION
        micro = price(table, row, billsec)[1] * MICRO
    if micro != micro.to_integral_value():
        raise AssertionError(f"price {micro} is not a whole number of micro-units")
    return int(micro)


def rate(
    versions: Sequence[TariffTable], number: str, billsec: int, at: datetime
) -> RefRated | None:
    """Rate one call: E.164 digits dialled, answered seconds, start time; None if no match."""
    table = version_at(versions, at)
    if table is None:
        return None
    row = match(table, number, at)
    if row is None:
        return None
    billable, _ = price(table, row, billsec)
    return RefRated(
        table=table.key,
        prefix=row.prefix,
        destination=row.destination,
        billable_seconds=billable,
        price_micro=price_micro(table, row, billsec),
    )


def rate_cdr(
    versions: Sequence[TariffTable],
    callee: str,
    billsec: int,
    start_epoch: int,
    switch: SwitchSettings,
) -> tuple[str, RefRated | None]:
    """A whole CDR as a switch sent it: (E.164 number, rating or None when nothing matches).

    The dialled number is normalised with the switch's settings (NormalisationError when it
    cannot be); the start time is epoch seconds, UTC.
    """
    number = normalise(callee, switch)
    at = datetime.fromtimestamp(start_epoch, tz=UTC)
    return number, rate(versions, number, billsec, at)


# ------------------------------------------------------------ numbers (docs/DESIGN.md section 2)
def normalise(raw: str, switch: SwitchSettings) -> str:
    """A dialled number as E.164 digits without '+', as docs/DESIGN.md section 2 says, one
    rule after the other; NormalisationError naming the number and the reason.

    1. Only the user part of a SIP or tel URI ('sip:+31201234567@host;user=phone') is dialled.
    2. A carrier tech prefix (the switch's pattern, e.g. '78816#') is not part of the number.
    3. Spaces, dashes, dots and brackets are only for people.
    4. '+' says international; so do the access codes '00', and '011' where the switch's
       country is North America (1) or not set.
    5. Otherwise, with a country set, the trunk prefix ('0') stands for that country; in
       North America a bare 10-digit number is missing its country 1.
    6. E.164 numbers have 6 to 15 digits and never start with 0.

    A short number (under 6 digits, without '+', not starting with 0: 1002, 112) is dialled as
    it is after step 3; it is no E.164 number, so steps 4 and 5 do not apply.
    """
    text = raw.strip()
    if text == "":
        raise NormalisationError("empty number")
    text = _user_part(text)
    text = _without_tech_prefix(text, switch.tech_prefix)
    for separator in (" ", "-", ".", "(", ")", "\t"):
        text = text.replace(separator, "")
    international = text.startswith("+")
    digits = text[1:] if international else text
    if digits == "":
        raise NormalisationError(f"number {raw!r} has no digits")
    for char in digits:
        if char not in "0123456789":
            what = "letters" if char.isalpha() else f"the character {char!r}"
            raise NormalisationError(f"number {raw!r} has {what}, not only digits")
    if not international and len(digits) < 6 and not digits.startswith("0"):
        return digits
    if not international:
        codes = ["011", "00"] if switch.country_code in ("", "1") else ["00"]
        for code in codes:
            if digits.startswith(code):
                digits, international = digits[len(code) :], True
                break
    if not international and switch.country_code != "":
        trunk = switch.trunk_prefix
        if trunk != "" and digits.startswith(trunk):
            digits = switch.country_code + digits[len(trunk) :]
        elif switch.country_code == "1" and len(digits) == 10 and digits[0] not in "01":
            digits = "1" + digits
    if digits.startswith("0"):
        if international or switch.country_code != "":
            raise NormalisationError(f"number {raw!r} starts with 0 after its prefixes")
        raise NormalisationError(
            f"number {raw!r} is national but switch {switch.name!r} has no country code "
            "(set one with `rater switch set --country`)"
        )
    if len(digits) < 6:
        raise NormalisationError(f"number {raw!r} is too short ({len(digits)} digits, at least 6)")
    if len(digits) > 15:
        raise NormalisationError(f"number {raw!r} is too long ({len(digits)} digits, at most 15)")
    return digits


def _user_part(text: str) -> str:
    """'sip:user@host;params', 'tel:user;params' or 'user@host' -> user (percent-decoded)."""
    scheme = text[:5].lower()
    if scheme.startswith(("sip:", "sips:", "tel:")):
        after = text.split(":", 1)[1]
        return unquote(after.split("@", 1)[0].split(";", 1)[0])
    if "@" in text:
        return unquote(text.split("@", 1)[0])
    return text


def _without_tech_prefix(text: str, pattern: str) -> str:
    if pattern == "":
        return text
    found = re.match(pattern, text)
    if found is None or found.end() == 0:
        return text
    return text[found.end() :]
