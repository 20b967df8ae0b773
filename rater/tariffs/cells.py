"""Parsing single cells of a rate deck: codes, money, dates, billing steps, flags.

Each parser returns a value or raises CellError with a message meant for the person who wrote
the deck ("'0,12.5' is not a decimal number"); the importer adds the line and column.
Money is parsed on strings to integer micro-units without Decimal on the common path: a
100,000-row deck has 200,000+ money cells and Decimal construction is the slowest part of a
naive importer (see benchmarks/bench_tariff_import.py).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from rater.errors import TariffError
from rater.money import DECIMALS_MAX, MICRO
from rater.tariffs.model import Steps

#: E.164 numbers have at most 15 digits, so no prefix can be longer
PREFIX_MAX_DIGITS = 15
#: a range cell like 447400-447409 expands to this many codes at most (a typo guard)
RANGE_MAX_CODES = 10_000

_MONEY = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
#: ASTPP and FreeSWITCH-style patterns: ^93.*  ^93  93.*  ^93$ (only plain digit prefixes)
_REGEX_PREFIX = re.compile(r"\^?\+?([0-9]+)(?:\.\*|\.\+|\*)?\$?")
_DMY = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_IMMEDIATE = frozenset({"", "asap", "now", "immediate", "immediately"})
_TRUE = frozenset({"1", "y", "yes", "true", "x"})
_FALSE = frozenset({"", "0", "n", "no", "false"})


class CellError(TariffError):
    """One cell has a value that cannot be read; the importer adds line and column."""


# ---------------------------------------------------------------------------------- money
def parse_money(text: str) -> int:
    """'0.0123' or '0,0123' -> 12300 micro-units; CellError when negative, not a number or
    more than 6 decimals (trailing zeros beyond the 6th are fine: '0.1000000')."""
    raw = text.strip()
    match = _MONEY.fullmatch(raw)
    if match is None:
        raw = _normalise_decimal_comma(raw)
        match = _MONEY.fullmatch(raw)
        if match is None:
            if raw.startswith("-"):
                raise CellError(f"{text!r} is negative")
            raise CellError(f"{text!r} is not a decimal number")
    whole, frac = match[1], match[2] or ""
    if not whole and not frac:
        raise CellError(f"{text!r} is not a decimal number")
    if len(frac) > DECIMALS_MAX:
        if frac[DECIMALS_MAX:].strip("0"):
            raise CellError(f"{text!r} has more than {DECIMALS_MAX} decimals")
        frac = frac[:DECIMALS_MAX]
    return int(whole or "0") * MICRO + (int(frac.ljust(DECIMALS_MAX, "0")) if frac else 0)


def _normalise_decimal_comma(raw: str) -> str:
    """'0,1175' -> '0.1175'. A cell with both ',' and '.' is ambiguous and left to fail."""
    if "," in raw and "." not in raw and raw.count(",") == 1:
        return raw.replace(",", ".")
    if raw[:1] in "€$£" and len(raw) > 1:
        raise CellError(f"{raw!r}: write amounts without a currency sign")
    return raw


# ---------------------------------------------------------------------------------- steps
@lru_cache(maxsize=256)
def parse_steps(text: str) -> Steps:
    """'60/60' -> Steps(60, 60); CellError otherwise (decks repeat a few values: cached)."""
    try:
        return Steps.parse(text)
    except TariffError as error:
        raise CellError(str(error)) from None


def parse_seconds(text: str, *, what: str) -> int:
    """A whole number of seconds in an interval column ('60', '6', '60.0')."""
    raw = text.strip()
    if raw.endswith(".0"):
        raw = raw[:-2]
    if not raw.isdigit():
        raise CellError(f"{what} {text!r} is not a whole number of seconds")
    return int(raw)


# ---------------------------------------------------------------------------------- dates
@lru_cache(maxsize=4096)
def parse_date(text: str) -> datetime | None:
    """An effective date: None for empty / 'ASAP' (the version's own time); ISO 8601 date or
    datetime (naive means UTC); dd/mm/yyyy, dd.mm.yyyy or dd-mm-yyyy with an optional time
    (rate notices are European: 01/10/2026 is the 1st of October)."""
    raw = text.strip()
    if raw.lower() in _IMMEDIATE:
        return None
    match = _DMY.fullmatch(raw)
    try:
        if match:
            day, month, year, hour, minute, second = match.groups()
            return datetime(
                int(year), int(month), int(day),
                int(hour or 0), int(minute or 0), int(second or 0), tzinfo=UTC,
            )  # fmt: skip
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CellError(
            f"{text!r} is not a date (use 2026-09-23, 2026-09-23 00:00:00, 23/09/2026 or ASAP)"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_flag(text: str, *, what: str) -> bool:
    """'1', 'yes', 'true', 'x' -> True; '', '0', 'no', 'false' -> False."""
    raw = text.strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise CellError(f"{what} {text!r} is not a yes/no value (1/0, yes/no, true/false)")


# ---------------------------------------------------------------------------------- codes
def parse_codes(text: str, notes: list[str] | None = None) -> list[str]:
    """The prefixes one cell stands for, as E.164 digits without '+'.

    Understood: '49', '+49', '0049', ASTPP regex '^49.*', lists '49152, 49162' or
    '234803; 234806', ranges '49172-49174' (ends of equal length), and digits grouped with
    spaces: '336 07' is the one code 33607 (as the same vendor's normalised deck has it).
    A cell of several space-separated codes of equal length (4 digits or more), such as
    '49152 49162', is read as a list. Each guess is written to `notes` so the import summary
    shows it.
    """
    raw = text.strip()
    if not raw:
        raise CellError("empty prefix")
    if raw.isdigit() and raw[0] != "0":
        if len(raw) > PREFIX_MAX_DIGITS:
            raise CellError(f"prefix {raw!r} is longer than {PREFIX_MAX_DIGITS} digits")
        return [raw]
    if raw.startswith("^") or raw.endswith(("*", "$")):
        match = _REGEX_PREFIX.fullmatch(raw)
        if match is None:
            raise CellError(f"pattern {raw!r} is not a plain prefix (only ^DIGITS.* is understood)")
        return [_one_code(match[1], raw)]
    items = [item.strip() for item in re.split(r"[,;]", raw)]
    codes: list[str] = []
    for item in items:
        if not item:
            if len(items) > 1:
                continue  # '49152, 49162,' : a trailing separator
            raise CellError("empty prefix")
        if "-" in item:
            codes.extend(_expand_range(item))
            continue
        codes.extend(_spaced_codes(item, notes))
    return codes


def _spaced_codes(item: str, notes: list[str] | None) -> list[str]:
    """One item of a cell: a code, a list of equal-length codes of 4 digits or more separated
    by spaces, or one code written in digit groups ('336 07' is 33607); the guess noted."""
    groups = item.split()
    if len(groups) == 1:
        return [_one_code(item, item)]
    if len(groups[0]) >= 4 and all(len(g) == len(groups[0]) and g.isdigit() for g in groups):
        if notes is not None:
            notes.append(f"{item!r} read as a list of {len(groups)} codes")
        return [_one_code(g, item) for g in groups]
    joined = "".join(groups)
    if notes is not None:
        notes.append(f"{item!r} read as the one code {joined.lstrip('+')} (digit groups)")
    return [_one_code(joined, item)]


def _one_code(code: str, shown: str) -> str:
    if code.startswith("+"):
        code = code[1:]
    elif code.startswith("00"):
        code = code[2:]
    if not code:
        raise CellError(f"prefix {shown!r} has no digits")
    if not code.isdigit():
        raise CellError(f"prefix {shown!r} has characters other than digits")
    if code[0] == "0":
        raise CellError(
            f"prefix {shown!r} starts with 0: write codes in international form (E.164)"
        )
    if len(code) > PREFIX_MAX_DIGITS:
        raise CellError(f"prefix {shown!r} is longer than {PREFIX_MAX_DIGITS} digits")
    return code


def _expand_range(item: str) -> list[str]:
    parts = item.split("-")
    if len(parts) != 2:
        raise CellError(f"range {item!r} is not of the form FIRST-LAST")
    first = _one_code("".join(parts[0].split()), item)
    last = _one_code("".join(parts[1].split()), item)
    if len(first) != len(last):
        raise CellError(f"range {item!r}: both ends need the same number of digits")
    if int(last) < int(first):
        raise CellError(f"range {item!r} ends before it starts")
    count = int(last) - int(first) + 1
    if count > RANGE_MAX_CODES:
        raise CellError(f"range {item!r} has {count} codes (at most {RANGE_MAX_CODES})")
    width = len(first)
    return [str(n).zfill(width) for n in range(int(first), int(last) + 1)]
