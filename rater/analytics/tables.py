"""A report as typed columns and rows, and its three renderings: a terminal table, CSV, XLSX.

Values stay exact until rendered: money is integer micro-units, ratios are Decimals. Money is
written as a decimal string with every significant digit (at least two decimals), so a CSV
sums to the cent and to the micro-unit; XLSX cells are numbers (analysts sum them) written
from Decimals, with a number format. Every CSV and XLSX cell goes through rater.escape.cell:
a destination or customer named like a formula is written as text, never run. The terminal
table shows control characters as visible escapes (rater.escape.terminal).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from rater.escape import cell as safe_cell
from rater.escape import terminal
from rater.money import MICRO


class Kind(StrEnum):
    TEXT = "text"
    COUNT = "count"  # integer
    MONEY = "money"  # integer micro-units
    PERCENT = "percent"  # Decimal, already x100, or None when undefined (0 calls)
    SECONDS = "seconds"  # Decimal seconds (ACD), or None
    MINUTES = "minutes"  # Decimal minutes


@dataclass(frozen=True)
class Col:
    key: str  # CSV/XLSX header, snake_case
    title: str  # terminal header
    kind: Kind


@dataclass(frozen=True)
class Report:
    title: str
    columns: tuple[Col, ...]
    rows: list[tuple[Any, ...]]
    totals: tuple[Any, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip((c.key for c in self.columns), row, strict=True)) for row in self.rows]


# ---------------------------------------------------------------------------- value helpers
def money_text(micro: int, decimals: int = 2) -> str:
    """Micro-units as an exact decimal string with at least `decimals` decimals (never fewer
    than needed): 12.50, 0.0123, -1.00."""
    amount = Decimal(int(micro)) / MICRO
    text = f"{amount:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(decimals, '0')}"


def _decimals_needed(micro: int) -> int:
    return len(money_text(micro).split(".")[1])


def ratio(numerator: int, denominator: int, scale: int = 1, places: int = 1) -> Decimal | None:
    """numerator * scale / denominator rounded half-up to `places` decimals; None for x/0."""
    if denominator == 0:
        return None
    value = Decimal(numerator) * scale / Decimal(denominator)
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def minutes(seconds: int) -> Decimal:
    return (Decimal(seconds) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def duration_text(seconds: Decimal | None) -> str:
    """ACD as m:ss (h:mm:ss past an hour)."""
    if seconds is None:
        return "-"
    total = int(seconds.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    return f"{hours}:{mins:02d}:{secs:02d}" if hours else f"{mins}:{secs:02d}"


def cell_text(value: Any, kind: Kind, *, terminal: bool) -> str:
    """A value as text: for the terminal (readable) or a CSV file (exact, machine-readable)."""
    if value is None:
        return "-" if terminal else ""
    if kind is Kind.MONEY:
        return money_text(value)
    if kind is Kind.PERCENT:
        return f"{value}%" if terminal else str(value)
    if kind is Kind.SECONDS:
        return duration_text(value) if terminal else str(value)
    if kind is Kind.COUNT and terminal:
        return f"{int(value):,}"
    return str(value)


# ---------------------------------------------------------------------------- renderings
def to_text(report: Report) -> str:
    """An aligned plain-text table: text left, numbers right, totals under a rule."""
    header = [c.title for c in report.columns]
    all_rows = [*report.rows, *([report.totals] if report.totals else [])]
    # money columns show as many decimals as their most precise value, so points line up
    places = {
        i: max([2] + [_decimals_needed(r[i]) for r in all_rows if r[i] is not None])
        for i, c in enumerate(report.columns)
        if c.kind is Kind.MONEY
    }

    def show(values: Sequence[Any]) -> list[str]:
        cells = []
        for i, (value, col) in enumerate(zip(values, report.columns, strict=True)):
            if value is not None and i in places:
                cells.append(money_text(value, places[i]))
            else:
                # a destination or card from the data may hold escape sequences: shown, not sent
                cells.append(terminal(cell_text(value, col.kind, terminal=True)))
        return cells

    body = [show(row) for row in report.rows]
    total = (
        [
            text if value is not None else ""
            for text, value in zip(show(report.totals), report.totals, strict=True)
        ]
        if report.totals
        else None
    )
    lines_all = [header, *body, *([total] if total else [])]
    widths = [max(len(line[i]) for line in lines_all) for i in range(len(header))]

    def fmt(cells: Sequence[str]) -> str:
        parts = []
        for text, col, width in zip(cells, report.columns, widths, strict=True):
            parts.append(text.ljust(width) if col.kind is Kind.TEXT else text.rjust(width))
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [terminal(report.title), "", fmt(header), rule]
    out.extend(fmt(line) for line in body)
    if not body:
        out.append("(no data)")
    if total:
        out.append(rule)
        out.append(fmt(total))
    out.extend(terminal(note, newlines=True) for note in report.notes)
    return "\n".join(out) + "\n"


def write_csv(report: Report, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([c.key for c in report.columns])
        for row in report.rows:
            writer.writerow(
                [
                    safe_cell(cell_text(v, c.kind, terminal=False))
                    for v, c in zip(row, report.columns, strict=True)
                ]
            )


_XLSX_FORMATS = {
    Kind.MONEY: "#,##0.00####",
    Kind.PERCENT: "0.0",
    Kind.SECONDS: "0.0",
    Kind.MINUTES: "#,##0.00",
    Kind.COUNT: "#,##0",
}


def write_xlsx(report: Report, path: Path) -> None:
    """One sheet: bold header, frozen first row, numbers as numbers (money from Decimals)."""
    from openpyxl import Workbook  # noqa: PLC0415 - only file exports need it
    from openpyxl.styles import Font  # noqa: PLC0415

    book = Workbook()
    sheet = book.active
    sheet.title = report.title[:31].replace("/", "-").replace(":", "")
    sheet.append([c.key for c in report.columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in report.rows:
        values: list[Any] = []
        for value, col in zip(row, report.columns, strict=True):
            if value is None:
                values.append(None)
            elif col.kind is Kind.MONEY:
                values.append(Decimal(int(value)) / MICRO)
            else:
                values.append(safe_cell(value))
        sheet.append(values)
    for index, col in enumerate(report.columns, start=1):
        fmt = _XLSX_FORMATS.get(col.kind)
        letter = sheet.cell(row=1, column=index).column_letter
        width = max([len(col.key)] + [len(str(r[index - 1])) for r in report.rows[:200]]) + 2
        sheet.column_dimensions[letter].width = min(width, 40)
        if fmt:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = fmt
    sheet.freeze_panes = "A2"
    book.save(path)
