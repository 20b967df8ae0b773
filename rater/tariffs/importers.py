"""Importing a rate deck (CSV or XLSX, canonical or a real-world layout) into a TariffTable.

`read_tariff_rows` reads everything and returns an ImportSummary listing every problem (line
and column named); `read_tariff` returns the table or raises TariffImportError: a deck with
any bad row is not imported at all.

Per row: the prefix cell may stand for several codes (lists, ranges); each becomes a row. A
code marked closed (Change = Closed, or Discontinued = 1) gets `effective_to` = its effective
date, after which calls fall to a shorter prefix. The same prefix twice with the same
effective date is a duplicate.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from rater.errors import TariffError, TariffImportError, TariffProblem
from rater.escape import uncell
from rater.money import Rounding
from rater.tariffs.bulk import paused_gc
from rater.tariffs.cells import (
    CellError,
    parse_codes,
    parse_date,
    parse_flag,
    parse_money,
    parse_seconds,
    parse_steps,
)
from rater.tariffs.layout import Layout, Role
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.sources import Line, open_deck

#: Change column values that withdraw a code from its effective date
CLOSED_WORDS = frozenset({"closed", "close", "removed", "deleted", "discontinued", "withdrawn"})
#: 'Currency:,USD per minute' in a letterhead; codes are upper case ('Currency for ...' is not one)
_CURRENCY = re.compile(r"\b(?i:currency)\b\W*([A-Z]{3})\b")
#: files with more data lines than this get a progress bar (when asked for)
PROGRESS_MIN_LINES = 20_000


@dataclass
class ImportSummary:
    """What an import read, and what was wrong with it."""

    source: str
    layout: str = ""  # 'prefix='Dial Codes', rate='Rate/Min', ...'
    header_line: int = 0
    deck_currency: str = ""  # what the deck's letterhead states, if anything
    rows_read: int = 0  # data lines with a prefix or a rate
    prefixes: int = 0  # distinct prefixes
    destinations: int = 0  # distinct destination names
    closed: int = 0  # rows with an end date (closed codes)
    skipped: int = 0  # lines without prefix and rate (notes, footers) or forbidden codes
    problems: list[TariffProblem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    table: TariffTable | None = None  # None when there are problems

    @property
    def ok(self) -> bool:
        return not self.problems and self.table is not None


def read_tariff(
    path: Path,
    *,
    name: str,
    currency: str = "EUR",
    steps: Steps | None = None,
    decimals: int = 4,
    rounding: Rounding = Rounding.UP,
    effective_from: datetime | None = None,
) -> TariffTable:
    """The deck as a TariffTable (version 1, unsaved); TariffImportError listing every problem."""
    summary = read_tariff_rows(
        path,
        name=name,
        currency=currency,
        steps=steps,
        decimals=decimals,
        rounding=rounding,
        effective_from=effective_from,
    )
    if summary.table is None:
        raise TariffImportError(summary.source, summary.problems)
    return summary.table


def read_tariff_rows(
    path: Path,
    *,
    name: str,
    currency: str | None = "EUR",
    steps: Steps | None = None,
    decimals: int = 4,
    rounding: Rounding = Rounding.UP,
    effective_from: datetime | None = None,
    progress: bool = False,
    strict_currency: bool = False,
) -> ImportSummary:
    """Read a deck and report on it; `table` is set only when there were no problems.

    currency None takes the currency the deck's letterhead states ('Currency: USD'), else EUR.
    A stated currency other than `currency` is a note, or a problem with strict_currency (the
    CLI's choice when --currency was given).

    TariffImportError is raised only when the file cannot be read as a table at all (missing,
    empty, no header row) or a table option is invalid.
    """
    path = Path(path)
    if not name.strip():
        raise TariffImportError(path.name, [TariffProblem(0, "", "the table needs a name")])
    deck = open_deck(path)
    summary = ImportSummary(
        source=deck.name, layout=deck.layout.describe(), header_line=deck.layout.header_line
    )
    stated = _stated_currency(deck.preamble)
    if stated is not None:
        summary.deck_currency = stated[1]
        if currency is None:
            currency = stated[1]
        elif stated[1] != currency.upper():
            message = (
                f"the deck says its currency is {stated[1]}, but the table is in {currency} "
                f"(import with --currency {stated[1]})"
            )
            if strict_currency:
                summary.problems.append(TariffProblem(stated[0], "", message))
            else:
                summary.notes.append(f"line {stated[0]}: {message}")
    try:
        table = TariffTable(
            name=name,
            currency=(currency or "EUR").upper(),
            decimals=decimals,
            rounding=Rounding(rounding),
            steps=steps or Steps(1, 1),
            effective_from=_utc(effective_from),
            source=path.name,
        )
    except (TariffError, ValueError) as error:
        raise TariffImportError(path.name, [TariffProblem(0, "", str(error))]) from None
    lines = deck.lines
    bar = None
    if progress and deck.total_lines >= PROGRESS_MIN_LINES:
        bar = tqdm(total=deck.total_lines, unit=" lines", desc=deck.name, file=sys.stderr)
    reader = _RowReader(deck.layout, table.steps, summary)
    rows: list[TariffRow] = []
    read = reader.read
    done = 0
    with paused_gc():
        for line, cells in lines:
            read(line, cells, rows)
            if bar is not None:
                done += 1
                if done == 5000:
                    bar.update(done)
                    done = 0
    if bar is not None:
        bar.update(done)
        bar.close()
    # duplicates were refused, so prefixes repeat only across effective dates
    dated = any(key[1] is not None for key in reader.seen)
    summary.prefixes = len({key[0] for key in reader.seen}) if dated else len(rows)
    summary.destinations = len({row.destination for row in rows})
    summary.closed = reader.closed
    if not rows and not summary.problems:
        summary.problems.append(TariffProblem(deck.layout.header_line, "", "the deck has no rows"))
    if not summary.problems:
        summary.table = _with_rows(table, tuple(rows))
    return summary


def _stated_currency(preamble: list[Line]) -> tuple[int, str] | None:
    """(line, code) of a letterhead line such as 'Currency:,USD per minute', if any."""
    for line, cells in preamble:
        match = _CURRENCY.search(" ".join(cells))
        if match:
            return line, match[1].upper()
    return None


def _with_rows(table: TariffTable, rows: tuple[TariffRow, ...]) -> TariffTable:
    return replace(table, rows=rows, created_at=datetime.now(UTC))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _RowReader:
    """Turns one data line into TariffRows, appending problems and notes to the summary.

    Kept as a class so the column indexes are looked up once, not per line: this loop runs
    100,000 times for a large deck.
    """

    def __init__(self, layout: Layout, default_steps: Steps, summary: ImportSummary) -> None:
        self.layout = layout
        self.summary = summary
        self.default_steps = default_steps
        # every role gets an index; absent roles point at a blank cell padded onto each line
        self.blank = max(layout.columns.values()) + 1
        col = {role: layout.columns.get(role, self.blank) for role in Role}
        self.i_prefix = col[Role.PREFIX]
        self.i_rate = col[Role.RATE]
        self.i_dest = col[Role.DESTINATION]
        self.i_country = col[Role.COUNTRY]
        self.i_network = col[Role.NETWORK]
        self.i_first = col[Role.FIRST_RATE]
        self.i_fee = col[Role.CONNECT_FEE]
        self.i_steps = col[Role.STEPS]
        self.i_min = col[Role.MINIMUM]
        self.i_inc = col[Role.INCREMENT]
        self.i_from = col[Role.EFFECTIVE_FROM]
        self.i_to = col[Role.EFFECTIVE_TO]
        self.i_change = col[Role.CHANGE]
        self.i_disc = col[Role.DISCONTINUED]
        self.i_forbidden = col[Role.FORBIDDEN]
        self.i_free = col[Role.FREE_SECONDS]
        present = layout.columns
        self.combined_destination = Role.COUNTRY in present or Role.NETWORK in present
        self.has_intervals = Role.MINIMUM in present or Role.INCREMENT in present
        extras = (
            Role.EFFECTIVE_TO,
            Role.FREE_SECONDS,
            Role.CHANGE,
            Role.DISCONTINUED,
            Role.FORBIDDEN,
        )
        self.has_extras = any(role in present for role in extras)
        self.seen: dict[tuple[str, datetime | None], int] = {}
        self.steps_cache: dict[str, Steps] = {}
        self.intervals_cache: dict[tuple[str, str], Steps] = {}
        self.closed = 0  # rows with an end date
        self.money_cache: dict[str, int] = {}  # decks repeat rates and fees: parse each once
        self.destinations: dict[str, str] = {}  # interned: 100k rows share a few hundred names

    def _problem(self, line: int, role: Role | None, message: str) -> None:
        column = self.layout.name(role) if role is not None else ""
        self.summary.problems.append(TariffProblem(line, column, message))

    def read(self, line: int, cells: list[str], out: list[TariffRow]) -> None:
        """Append the rows of one line to `out` (several for a list or range of codes; none
        for a bad line). Written for speed: this runs once per line of a 100,000-line deck."""
        blank = self.blank
        if len(cells) > blank:
            cells[blank] = ""  # no role reads this column: it becomes the blank cell
        else:
            cells.extend([""] * (blank + 1 - len(cells)))
        prefix_text = cells[self.i_prefix].strip()
        rate_text = cells[self.i_rate].strip()
        if not prefix_text and not rate_text:
            if any(c.strip() for c in cells):
                self.summary.skipped += 1
                self.summary.notes.append(f"line {line}: skipped, no prefix and no rate")
            return
        summary = self.summary
        summary.rows_read += 1
        problems = summary.problems
        problems_before = len(problems)

        if prefix_text.isdigit() and prefix_text[0] != "0" and len(prefix_text) <= 15:
            codes = [prefix_text]  # the common case, without a call
        else:
            codes = self._codes(line, prefix_text)

        money = self.money_cache
        rate = money.get(rate_text)
        if rate is None:
            rate = self._money(line, Role.RATE, rate_text)
        first_rate = None
        text = cells[self.i_first].strip()
        if text:
            first_rate = money.get(text)
            if first_rate is None:
                first_rate = self._money(line, Role.FIRST_RATE, text)
        fee: int | None = 0
        text = cells[self.i_fee].strip()
        if text:
            fee = money.get(text)
            if fee is None:
                fee = self._money(line, Role.CONNECT_FEE, text)
        text = cells[self.i_steps].strip()
        if text:
            steps = self.steps_cache.get(text) or self._steps_text(line, text)
        elif self.has_intervals:
            first, nxt = cells[self.i_min].strip(), cells[self.i_inc].strip()
            steps = self._intervals(line, first, nxt) if first or nxt else None
        else:
            steps = None
        text = cells[self.i_from].strip()
        effective = self._date(line, Role.EFFECTIVE_FROM, text) if text else None
        until = None
        closed = forbidden = False
        if self.has_extras:
            closed, forbidden, until = self._extras(line, cells)
        if len(problems) > problems_before or rate is None or fee is None:
            return
        if self.has_extras:
            if forbidden:
                summary.skipped += 1
                summary.notes.append(f"line {line}: forbidden code(s) {prefix_text} not imported")
                return
            if closed:
                if effective is None:
                    summary.skipped += 1
                    summary.notes.append(f"line {line}: {prefix_text} closed at once, not imported")
                    return
                if until is not None and until != effective:
                    self._problem(line, Role.EFFECTIVE_TO, "a closed code has one date, not two")
                    return
                until, effective = effective, None
                self.closed += 1
            if until is not None and effective is not None and until <= effective:
                self._problem(
                    line, Role.EFFECTIVE_TO, "the end date is not after the effective date"
                )
                return

        if self.combined_destination:
            parts = (cells[self.i_country], cells[self.i_network], cells[self.i_dest])
            destination = " - ".join(p.strip() for p in parts if p.strip())
        else:
            destination = cells[self.i_dest].strip()
        destination = uncell(destination)  # an export's formula escape (rater/escape.py)
        destination = self.destinations.setdefault(destination, destination)
        if first_rate == rate:
            first_rate = None
        seen = self.seen
        for code in codes:
            key = (code, effective)
            earlier = seen.get(key)
            if earlier is not None:
                when = "ASAP" if effective is None else effective.strftime("%Y-%m-%d %H:%M:%S")
                self._problem(
                    line,
                    Role.PREFIX,
                    f"duplicate prefix {code} with effective date {when} (also on line {earlier})",
                )
                continue
            seen[key] = line
            out.append(
                TariffRow(code, destination, rate, fee, steps, first_rate, effective, until, line)
            )

    def _codes(self, line: int, text: str) -> list[str]:
        notes: list[str] = []
        try:
            codes = parse_codes(text, notes)
        except CellError as error:
            self._problem(line, Role.PREFIX, str(error))
            return []
        self.summary.notes.extend(f"line {line}: {note}" for note in notes)
        return codes

    def _extras(self, line: int, cells: list[str]) -> tuple[bool, bool, datetime | None]:
        """The rarer columns: end date, Change, Discontinued, Forbidden, free seconds."""
        text = cells[self.i_to].strip()
        until = self._date(line, Role.EFFECTIVE_TO, text) if text else None
        text = cells[self.i_free].strip()
        if text and text not in ("0", "0.0"):
            self._problem(line, Role.FREE_SECONDS, f"free seconds {text!r}: only 0 is supported")
        closed = cells[self.i_change].strip().lower() in CLOSED_WORDS
        text = cells[self.i_disc].strip()
        if text:
            closed = self._flag(line, Role.DISCONTINUED, text) or closed
        text = cells[self.i_forbidden].strip()
        forbidden = self._flag(line, Role.FORBIDDEN, text) if text else False
        return closed, forbidden, until

    def _money(self, line: int, role: Role, text: str) -> int | None:
        value = self.money_cache.get(text)
        if value is not None:
            return value
        if not text:
            self._problem(line, role, "empty rate")
            return None
        try:
            value = parse_money(text)
        except CellError as error:
            self._problem(line, role, str(error))
            return None
        self.money_cache[text] = value
        return value

    def _date(self, line: int, role: Role, text: str) -> datetime | None:
        try:
            return parse_date(text)
        except CellError as error:
            self._problem(line, role, str(error))
            return None

    def _flag(self, line: int, role: Role, text: str) -> bool:
        try:
            return parse_flag(text, what=role.value)
        except CellError as error:
            self._problem(line, role, str(error))
            return False

    def _steps_text(self, line: int, text: str) -> Steps | None:
        try:
            steps = parse_steps(text)
        except CellError as error:
            self._problem(line, Role.STEPS, str(error))
            return None
        self.steps_cache[text] = steps
        return steps

    def _intervals(self, line: int, first: str, nxt: str) -> Steps | None:
        """Steps from separate first / next interval columns (or ASTPP's `inc` alone)."""
        steps = self.intervals_cache.get((first, nxt))
        if steps is not None:
            return steps
        try:
            increment = (
                parse_seconds(nxt, what="increment") if nxt else self.default_steps.increment
            )
        except CellError as error:
            self._problem(line, Role.INCREMENT, str(error))
            return None
        try:
            # ASTPP's `inc` alone bills inc/inc (a 6 s increment from the first second)
            minimum = parse_seconds(first, what="first interval") if first else increment
        except CellError as error:
            self._problem(line, Role.MINIMUM, str(error))
            return None
        try:
            steps = Steps(minimum, increment)
        except TariffError as error:
            self._problem(line, Role.INCREMENT if nxt else Role.MINIMUM, str(error))
            return None
        self.intervals_cache[(first, nxt)] = steps
        return steps
