"""Finding the header row of a rate deck and what each of its columns means.

Real decks name the same thing many ways (docs/DESIGN.md section 5): `prefix`, `code`, `Dial Codes`,
`pattern`; `rate`, `price`, `cost`, `Rate/Min`, `Price N`; separate `Interval 1` / `Interval N`
columns instead of `60/1`; and vendors put a letterhead above the table. A layout maps each
role the importer understands to a column index.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """What a column holds."""

    PREFIX = "prefix"
    DESTINATION = "destination"
    COUNTRY = "country"
    NETWORK = "network"
    RATE = "rate"
    FIRST_RATE = "first_rate"
    CONNECT_FEE = "connect_fee"
    STEPS = "steps"
    MINIMUM = "minimum"  # first interval (X of X/Y)
    INCREMENT = "increment"  # next intervals (Y of X/Y)
    EFFECTIVE_FROM = "effective_from"
    EFFECTIVE_TO = "effective_to"
    CHANGE = "change"  # New / Increase / Decrease / Unchanged / Closed
    DISCONTINUED = "discontinued"  # 0/1
    FORBIDDEN = "forbidden"  # 0/1: a code the carrier does not route
    FREE_SECONDS = "free_seconds"  # ASTPP includedseconds: only 0 is supported


#: header text (lower-case, spaces and '_' squeezed to one space) -> role
ALIASES: dict[str, Role] = {
    **dict.fromkeys(
        ["prefix", "code", "codes", "dial code", "dial codes", "dialcode", "dialcodes",
         "pattern", "prefixes", "area code", "destination code", "dialed prefix", "dialprefix"],
        Role.PREFIX,
    ),
    **dict.fromkeys(
        ["destination", "description", "comment", "name", "zone", "destination name"],
        Role.DESTINATION,
    ),
    "country": Role.COUNTRY,
    **dict.fromkeys(["network", "operator", "carrier network"], Role.NETWORK),
    **dict.fromkeys(
        ["rate", "price", "cost", "rate/min", "rate per minute", "price per minute", "rate min",
         "price n", "price/min", "cost per minute", "next rate", "rate n", "per minute",
         "rateinitial"],
        Role.RATE,
    ),
    **dict.fromkeys(["first rate", "price 1", "rate 1", "initial rate"], Role.FIRST_RATE),
    **dict.fromkeys(
        ["connect fee", "connectcost", "connect cost", "connection fee", "connection cost",
         "setup fee", "connect charge", "connectfee", "connection charge", "connectcharge"],
        Role.CONNECT_FEE,
    ),
    **dict.fromkeys(["steps", "billing", "billing steps", "billing increment"], Role.STEPS),
    **dict.fromkeys(
        ["interval 1", "min", "minimum", "first interval", "initial increment", "init inc",
         "initial interval", "initblock"],
        Role.MINIMUM,
    ),
    **dict.fromkeys(
        ["interval n", "inc", "increment", "next interval", "next increment", "billingblock"],
        Role.INCREMENT,
    ),
    **dict.fromkeys(
        ["effective from", "effective", "effective date", "valid from", "start date",
         "effectivedate", "effective_from"],
        Role.EFFECTIVE_FROM,
    ),
    **dict.fromkeys(
        ["effective to", "end date", "valid to", "expires", "expiry", "valid until"],
        Role.EFFECTIVE_TO,
    ),
    **dict.fromkeys(["change", "change type", "status change"], Role.CHANGE),
    **dict.fromkeys(["discontinued", "closed"], Role.DISCONTINUED),
    **dict.fromkeys(["forbidden", "blocked"], Role.FORBIDDEN),
    **dict.fromkeys(["includedseconds", "included seconds", "free seconds"], Role.FREE_SECONDS),
}  # fmt: skip

#: the importer looks this far down for the header row
HEADER_SEARCH_LINES = 30


def squeeze(header: str) -> str:
    """'Dial  Codes' / 'connect_fee' / ' Rate/Min ' -> 'dial codes' / 'connect fee' / 'rate/min'."""
    return re.sub(r"[\s_]+", " ", header.strip().lower()).strip()


@dataclass(frozen=True)
class Layout:
    """Where each understood role sits; `header_line` is the 1-based line of the header."""

    header_line: int
    header: tuple[str, ...]
    columns: dict[Role, int]
    ignored: tuple[str, ...]

    def name(self, role: Role) -> str:
        """The deck's own header text for a role (used in error messages)."""
        return self.header[self.columns[role]].strip()

    def describe(self) -> str:
        parts = [f"{role.value}={self.name(role)!r}" for role in self.columns]
        return ", ".join(parts)


def layout_of(header: Sequence[str], header_line: int) -> Layout | None:
    """The layout a header row describes, or None when it names no prefix or no rate column.

    The first column of a role wins (a deck with both 'Price 1' and 'Price N' maps them to
    first_rate and rate); unknown columns are listed as ignored.
    """
    columns: dict[Role, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(header):
        role = ALIASES.get(squeeze(cell))
        if role is None or role in columns:
            if cell.strip():
                ignored.append(cell.strip())
            continue
        columns[role] = index
    if Role.RATE not in columns and Role.FIRST_RATE in columns:
        # a deck with only 'Price 1' prices every step the same way
        columns[Role.RATE] = columns.pop(Role.FIRST_RATE)
    if Role.PREFIX not in columns or Role.RATE not in columns:
        return None
    return Layout(header_line, tuple(header), columns, tuple(ignored))


def find_layout(lines: Iterable[tuple[int, Sequence[str]]]) -> Layout | None:
    """The first of the first HEADER_SEARCH_LINES (line number, cells) that is a header."""
    for seen, (line, cells) in enumerate(lines):
        if seen >= HEADER_SEARCH_LINES:
            return None
        layout = layout_of(cells, line)
        if layout is not None:
            return layout
    return None
