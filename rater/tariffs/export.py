"""Writing a tariff version in the canonical columns (docs/DESIGN.md section 5), CSV or XLSX.

Every row is written with its own values resolved (steps and first_rate filled in), so the
file reads back into the same prices whatever default steps the reader uses. Dates are ISO
8601 UTC; an open effective date is empty ("ASAP"). Every cell goes through rater.escape.cell,
so a destination named like a formula is written as text; the importers undo the escape.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from rater.errors import TariffError
from rater.escape import cell
from rater.money import from_micro
from rater.tariffs.model import TariffTable

CANONICAL = (
    "prefix", "destination", "rate", "connect_fee", "steps", "first_rate", "effective_from",
    "effective_to",
)  # fmt: skip


def _date(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def canonical_rows(table: TariffTable) -> Iterator[list[str]]:
    """Header, then one list of strings per row, sorted by prefix then effective date."""
    yield list(CANONICAL)
    rows = sorted(table.rows, key=lambda r: (r.prefix, _date(r.effective_from)))
    for row in rows:
        yield [
            cell(row.prefix),
            cell(row.destination),
            from_micro(row.rate),
            from_micro(row.connect_fee),
            str(row.steps or table.steps),
            from_micro(row.rate if row.first_rate is None else row.first_rate),
            _date(row.effective_from),
            _date(row.effective_to),
        ]


class _LineFeedRows:
    """A file for csv.writer that ends rows with LF.

    The writer quotes a field holding a character of its line terminator only: with "\n" as
    the terminator, a destination holding a carriage return would be written bare and read back
    as two rows. So rows are written with "\r\n" (every CR and LF in a field is quoted) and
    the terminator, always the last two characters of a row, is turned into "\n" here.
    """

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, row: str) -> int:
        self.parts.append(row[:-2] + "\n")
        return len(row)


def to_csv_text(table: TariffTable) -> str:
    out = _LineFeedRows()
    csv.writer(out, lineterminator="\r\n").writerows(canonical_rows(table))
    return "".join(out.parts)


def write_tariff(table: TariffTable, path: Path) -> int:
    """Write .csv or .xlsx (by suffix); returns the number of rows written."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        path.write_text(to_csv_text(table), encoding="utf-8")
    elif suffix == ".xlsx":
        import openpyxl  # noqa: PLC0415 - ~0.2 s to import, only XLSX exports need it

        book = openpyxl.Workbook(write_only=True)
        # sheet titles: at most 31 characters, none of []:*?/\ (the notice's table name has a '/')
        title = re.sub(r"[\[\]:*?/\\]", "-", table.name)[:31].strip() or "tariff"
        sheet = book.create_sheet(title=title)
        for cells in canonical_rows(table):
            # text cells: prefixes and rates must not turn into floats in a spreadsheet
            sheet.append(cells)
        book.save(path)
    else:
        raise TariffError(f"{path.name}: export writes .csv or .xlsx files")
    return len(table.rows)
