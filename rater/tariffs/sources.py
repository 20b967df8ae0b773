"""Reading a deck file (CSV or XLSX) as (line number, cells as strings) and finding its layout.

CSV: UTF-8 (with or without BOM), falling back to Latin-1; the delimiter is the first of
',', ';', tab, '|' under which a header row is found. XLSX: the first worksheet with a header
row; numbers and dates are turned back into the text a person typed (0.0495, 2026-09-23).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from rater.errors import TariffImportError, TariffProblem
from rater.tariffs.layout import HEADER_SEARCH_LINES, Layout, find_layout

DELIMITERS = (",", ";", "\t", "|")
XLSX_SUFFIXES = (".xlsx", ".xlsm")

Line = tuple[int, list[str]]


@dataclass
class DeckSource:
    """An opened deck: its layout, an estimate of its data lines, and the lines after the header."""

    name: str
    layout: Layout
    total_lines: int
    lines: Iterator[Line]
    #: the lines above the header (a vendor's letterhead: issue date, currency)
    preamble: list[Line] = field(default_factory=list)
    #: lines the file's own syntax breaks (a line break inside an unquoted CSV cell), found
    #: while `lines` is read: reported with the rows' problems, never a crash
    problems: list[TariffProblem] = field(default_factory=list)


def open_deck(path: Path) -> DeckSource:
    """Open a CSV or XLSX deck and position it after its header row.

    TariffImportError (one problem, line 1) when the file is missing, empty, unreadable or has
    no header row naming a prefix and a rate column.
    """
    if not path.is_file():
        raise TariffImportError(path.name, [TariffProblem(0, "", f"no such file: {path}")])
    if path.suffix.lower() in XLSX_SUFFIXES:
        return _open_xlsx(path)
    if path.suffix.lower() == ".xls":
        raise TariffImportError(
            path.name,
            [TariffProblem(0, "", "old .xls workbooks are not read: save as .xlsx or .csv")],
        )
    return _open_csv(path)


def _no_header(name: str) -> TariffImportError:
    return TariffImportError(
        name,
        [
            TariffProblem(
                1,
                "",
                f"no header row found in the first {HEADER_SEARCH_LINES} lines: the table needs "
                "a header naming a prefix column (prefix, code, dial codes, pattern) and a rate "
                "column (rate, price, cost, rate/min); files without a header are not accepted",
            )
        ],
    )


def _open_csv(path: Path) -> DeckSource:
    data = path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        text = data.decode("utf-16")  # Excel's "Unicode text" export
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")  # older Windows exports
    if not text.strip():
        raise TariffImportError(path.name, [TariffProblem(1, "", "the file is empty")])
    head = "\n".join(text.splitlines()[:HEADER_SEARCH_LINES])
    for delimiter in DELIMITERS:
        if delimiter not in head:
            continue
        layout = find_layout(_csv_lines(head, delimiter, []))
        if layout is not None:
            lines_in_file = text.count("\n") + (0 if text.endswith("\n") else 1)
            total = lines_in_file - layout.header_line
            problems: list[TariffProblem] = []
            lines = _csv_lines(text, delimiter, problems)
            preamble = []
            for line, cells in lines:  # up to and including the header
                if line >= layout.header_line:
                    break
                preamble.append((line, cells))
            return DeckSource(path.name, layout, total, lines, preamble, problems)
    raise _no_header(path.name)


def _csv_lines(
    text: str, delimiter: str, problems: list[TariffProblem] | None = None
) -> Iterator[Line]:
    """(line, cells) of each CSV record; a record the csv module cannot read (a carriage return
    or line feed inside an unquoted cell) is added to `problems` with its line, and reading
    goes on with the next line, so every such line is reported at once."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if problems is None:
                raise
            problems.append(TariffProblem(reader.line_num, "", _csv_error(error)))
            continue
        yield reader.line_num, cells


def _csv_error(error: csv.Error) -> str:
    if "new-line character" in str(error):  # the csv module's words suit a programmer
        return (
            "a line break or carriage return inside an unquoted cell: quote the cell or remove it"
        )
    return f"not a CSV row: {error}"


def _open_xlsx(path: Path) -> DeckSource:
    import openpyxl  # noqa: PLC0415 - ~0.2 s to import, CSV imports do not need it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:
        raise TariffImportError(
            path.name, [TariffProblem(0, "", f"not a readable XLSX workbook: {error}")]
        ) from None
    for sheet in book.worksheets:
        rows = sheet.iter_rows(values_only=True)
        lines = ((n, [cell_text(v) for v in row]) for n, row in enumerate(rows, start=1))
        head = [next(lines, None) for _ in range(HEADER_SEARCH_LINES)]
        layout = find_layout(line for line in head if line is not None)
        if layout is None:
            continue
        seen = [line for line in head if line is not None]
        after = [line for line in seen if line[0] > layout.header_line]
        preamble = [line for line in seen if line[0] < layout.header_line]
        total = (sheet.max_row or 0) - layout.header_line
        return DeckSource(path.name, layout, total, _chain(after, lines), preamble)
    raise _no_header(path.name)


def _chain(first: Sequence[Line], rest: Iterator[Line]) -> Iterator[Line]:
    yield from first
    yield from rest


def cell_text(value: object) -> str:
    """An XLSX cell as the text a person typed: 0.0495 not 0.049499999, 49 not 49.0."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        # repr is the shortest string that reads back as the same float: what was typed
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)
