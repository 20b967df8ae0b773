"""Calling-card batches as spreadsheets (XLSX) for printing, mail merge or e-mail.

Two sheets exist:

- the **issue sheet**, written once when a batch is created: card number, PIN, value, currency,
  expiry, batch and tariff. It is the only place the PINs ever exist in clear (the account API
  keeps an HMAC of each PIN and returns the clear PIN once, at creation).
- the **export sheet** (`rater card export`): everything but the PINs, plus each card's
  current balance and status.

Both are formatted for printing: a bold header row that stays frozen on screen and repeats on
every printed page, column widths that fit the content, landscape pages fitted to one page
wide, and card numbers and PINs as text cells (number format ``@``) so leading zeros survive a
round trip through Excel or LibreOffice. Every text cell goes through rater.escape.cell, so a
tariff or batch named like a formula ("=2+3") is shown as text, never run; read_sheet undoes
the escape.

Speed. openpyxl spends about 25 us per cell serialising through its cell objects, so 100,000
cards x 7 columns take 12-25 s even in write-only mode (benchmarks/bench_cards.py measures it).
The production writer keeps openpyxl in charge of everything that is not a card row (styles,
widths, frozen pane, print titles, the workbook parts): it writes the frame plus one template
row with openpyxl, then repeats that template row's XML once per card with only the row
number and the per-card values substituted, streaming into the zip. Every cell therefore has
exactly the style openpyxl chose for the template; only the values differ. The tests read the
result back with openpyxl and compare it cell by cell with a plain openpyxl write.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties

from rater.errors import CardSheetError, MoneyError
from rater.escape import cell as safe_cell
from rater.escape import uncell
from rater.money import MICRO, to_micro

SHEET_TITLE = "Cards"

#: number formats: '@' is Excel's "Text" so a PIN like 0042 stays 0042 when edited
TEXT_FORMAT = "@"
MONEY_FORMAT = "0.00"
DATE_FORMAT = "yyyy-mm-dd"

#: how many card rows between two progress callbacks
PROGRESS_EVERY = 5_000

#: openpyxl.worksheet.Worksheet.PAPERSIZE_A4 (the write-only sheet lacks the constant)
PAPER_A4 = "9"


class Kind(StrEnum):
    TEXT = "text"
    MONEY = "money"
    DATE = "date"


@dataclass(frozen=True)
class Column:
    """One spreadsheet column."""

    header: str
    kind: Kind
    #: True when the value changes from card to card; False when it is the batch's constant
    per_card: bool
    #: width in characters (Excel's unit); the widest value is taken when larger
    width: int


@dataclass(frozen=True)
class BatchInfo:
    """What every card of a batch shares."""

    batch_id: str
    currency: str
    value: int  # face value of each card, micro-units
    expires: date | None
    tariff: str
    customer_id: str = ""
    disposable: bool = True


@dataclass(frozen=True)
class IssuedRow:
    """A card as printed on the issue sheet."""

    number: str
    pin: str


@dataclass(frozen=True)
class ExportRow:
    """A card as listed on the export sheet (no PIN)."""

    number: str
    balance: int  # micro-units
    status: str


@dataclass(frozen=True)
class SheetCard:
    """One card read back from a sheet (either kind)."""

    row: int  # spreadsheet row number, for error messages
    number: str
    pin: str | None  # None on an export sheet
    value: int  # micro-units
    currency: str
    expires: date | None
    batch_id: str
    tariff: str
    balance: int | None = None  # export sheet only
    status: str | None = None  # export sheet only


ISSUE_COLUMNS: tuple[Column, ...] = (
    Column("Card number", Kind.TEXT, per_card=True, width=16),
    Column("PIN", Kind.TEXT, per_card=True, width=8),
    Column("Value", Kind.MONEY, per_card=False, width=10),
    Column("Currency", Kind.TEXT, per_card=False, width=9),
    Column("Expires", Kind.DATE, per_card=False, width=12),
    Column("Batch", Kind.TEXT, per_card=False, width=14),
    Column("Tariff", Kind.TEXT, per_card=False, width=20),
)

EXPORT_COLUMNS: tuple[Column, ...] = (
    Column("Card number", Kind.TEXT, per_card=True, width=16),
    Column("Value", Kind.MONEY, per_card=False, width=10),
    Column("Balance", Kind.MONEY, per_card=True, width=10),
    Column("Status", Kind.TEXT, per_card=True, width=10),
    Column("Currency", Kind.TEXT, per_card=False, width=9),
    Column("Expires", Kind.DATE, per_card=False, width=12),
    Column("Batch", Kind.TEXT, per_card=False, width=14),
    Column("Tariff", Kind.TEXT, per_card=False, width=20),
)

Progress = Callable[[int], None]
"""Called with the number of card rows written since the previous call."""


# ---------------------------------------------------------------------------- public writers
def write_issue_sheet(
    path: Path,
    batch: BatchInfo,
    cards: Sequence[IssuedRow],
    *,
    progress: Progress | None = None,
) -> Path:
    """Write the batch's issue sheet (with PINs) to `path`; refuses to overwrite a file."""
    constants = _constants(batch)
    rows = ((card.number, card.pin) for card in cards)
    return write_sheet(
        path,
        ISSUE_COLUMNS,
        constants=constants,
        rows=rows,
        count=len(cards),
        title=_title(batch, "issue"),
        progress=progress,
    )


def write_export_sheet(
    path: Path,
    batch: BatchInfo,
    cards: Sequence[ExportRow],
    *,
    progress: Progress | None = None,
) -> Path:
    """Write a batch's cards without PINs, with current balances; refuses to overwrite a file."""
    constants = _constants(batch)
    rows = ((card.number, card.balance, card.status) for card in cards)
    return write_sheet(
        path,
        EXPORT_COLUMNS,
        constants=constants,
        rows=rows,
        count=len(cards),
        title=_title(batch, "export"),
        progress=progress,
    )


def issue_sheet_bytes(batch: BatchInfo, cards: Sequence[IssuedRow]) -> bytes:
    """The issue sheet (with PINs) in memory, for a download that is never stored (the
    portal's answer to creating a batch)."""
    return sheet_bytes(
        ISSUE_COLUMNS, _constants(batch), ((card.number, card.pin) for card in cards),
        len(cards), _title(batch, "issue"),
    )  # fmt: skip


def export_sheet_bytes(batch: BatchInfo, cards: Sequence[ExportRow]) -> bytes:
    """The export sheet (no PINs) in memory."""
    rows = ((card.number, card.balance, card.status) for card in cards)
    return sheet_bytes(EXPORT_COLUMNS, _constants(batch), rows, len(cards), _title(batch, "export"))


def sheet_bytes(
    columns: Sequence[Column],
    constants: dict[str, Any],
    rows: Iterable[tuple[Any, ...]],
    count: int,
    title: str,
) -> bytes:
    """write_sheet's workbook as bytes, written nowhere."""
    frame = _frame(columns, constants, _widths(columns, constants), count, title)
    buffer = io.BytesIO()
    _splice(frame, rows, count, buffer, None)
    return buffer.getvalue()


def _constants(batch: BatchInfo) -> dict[str, Any]:
    return {
        "Value": batch.value,
        "Currency": batch.currency,
        "Expires": batch.expires,
        "Batch": batch.batch_id,
        "Tariff": batch.tariff,
    }


def _title(batch: BatchInfo, kind: str) -> str:
    return f"Calling cards, batch {batch.batch_id} ({kind})"


# ---------------------------------------------------------------------------- the sheet writer
def write_sheet(
    path: Path,
    columns: Sequence[Column],
    *,
    constants: dict[str, Any],
    rows: Iterable[tuple[Any, ...]],
    count: int,
    title: str,
    progress: Progress | None = None,
) -> Path:
    """Write `count` rows (the per-card values, in column order) with the batch constants.

    The file appears complete or not at all: it is written to a temporary file beside `path`
    and linked into place, which fails (CardSheetError) if `path` exists by then.
    """
    path = Path(path)
    _check_target(path)
    widths = _widths(columns, constants)
    frame = _frame(columns, constants, widths, count, title)
    with _atomic_new_file(path) as out:
        _splice(frame, rows, count, out, progress)
    return path


def write_sheet_openpyxl(
    path: Path,
    columns: Sequence[Column],
    *,
    constants: dict[str, Any],
    rows: Iterable[tuple[Any, ...]],
    count: int,
    title: str,
    write_only: bool = True,
) -> Path:
    """The same sheet written cell by cell with openpyxl: the baseline, and the tests' oracle."""
    path = Path(path)
    _check_target(path)
    widths = _widths(columns, constants)
    wb, ws = _workbook(columns, widths, count, title, write_only=write_only)
    styles = _cell_styles(columns)
    per_card = [i for i, c in enumerate(columns) if c.per_card]
    for values in rows:
        full = _row_values(columns, constants, per_card, values)
        if write_only:
            cells = []
            for col, value in zip(columns, full, strict=True):
                cell = WriteOnlyCell(ws, value)
                cell.number_format = styles[col.kind]
                cells.append(cell)
            ws.append(cells)
        else:
            ws.append(full)
    if not write_only:
        for row in ws.iter_rows(min_row=2):
            for col, cell in zip(columns, row, strict=True):
                cell.number_format = styles[col.kind]
    with _atomic_new_file(path) as out:
        wb.save(out)
    return path


def _row_values(
    columns: Sequence[Column],
    constants: dict[str, Any],
    per_card: list[int],
    values: tuple[Any, ...],
) -> list[Any]:
    full: list[Any] = []
    given = iter(values)
    for i, col in enumerate(columns):
        raw = next(given) if i in per_card else constants[col.header]
        if col.kind is Kind.MONEY:
            full.append(_money_decimal(raw))
        else:
            full.append(safe_cell(raw) if col.kind is Kind.TEXT else raw)
    return full


def _check_target(path: Path) -> None:
    if path.suffix.lower() != ".xlsx":
        raise CardSheetError(f"{path}: the card sheet must be an .xlsx file")
    if path.exists():
        raise CardSheetError(f"{path}: exists already; card sheets are never overwritten")
    if not path.parent.is_dir():
        raise CardSheetError(f"{path}: folder {path.parent} does not exist")


def _widths(columns: Sequence[Column], constants: dict[str, Any]) -> list[int]:
    widths = []
    for col in columns:
        width = max(col.width, len(col.header) + 2)
        value = safe_cell(constants.get(col.header))
        if isinstance(value, str):
            width = max(width, min(len(value) + 2, 80))
        widths.append(width)
    return widths


def _cell_styles(_columns: Sequence[Column]) -> dict[Kind, str]:
    """The number format of each kind of cell (the same for every column of a kind)."""
    return {Kind.TEXT: TEXT_FORMAT, Kind.MONEY: MONEY_FORMAT, Kind.DATE: DATE_FORMAT}


def _workbook(
    columns: Sequence[Column], widths: list[int], count: int, title: str, *, write_only: bool
) -> tuple[Workbook, Any]:
    """A workbook whose one sheet has the print layout and the header row."""
    wb = Workbook(write_only=write_only)
    if write_only:
        ws = wb.create_sheet(SHEET_TITLE)
    else:
        ws = wb.active
        ws.title = SHEET_TITLE
    wb.properties.title = title
    wb.properties.creator = "rater"
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    ws.print_title_rows = "1:1"  # the header repeats on every printed page
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = PAPER_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as needed
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
    ws.print_options.gridLines = True  # cut lines when printed on paper
    last = get_column_letter(len(columns))
    ws.auto_filter.ref = f"A1:{last}{count + 1}"
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="DDDDDD")
    border = Border(bottom=Side(style="thin"))
    center = Alignment(horizontal="center")
    header = []
    for col in columns:
        cell = WriteOnlyCell(ws, col.header) if write_only else None
        if cell is None:
            header.append(col.header)
            continue
        cell.font, cell.fill, cell.border, cell.alignment = bold, fill, border, center
        header.append(cell)
    ws.append(header)
    if not write_only:
        for cell in ws[1]:
            cell.font, cell.fill, cell.border, cell.alignment = bold, fill, border, center
    return wb, ws


# ---------------------------------------------------------------------------- template splicing
#: placeholders for the per-card values in the template row. The template is searched before
#: any card value is put in, and each placeholder must occur exactly once in it (checked), so a
#: batch constant that happened to contain one would be caught, never silently substituted.
_SENTINEL_TEXT = "RATERCARDSENTINEL{}X"
_SENTINEL_NUMBER = 987654321012340  # + column index; an integer openpyxl writes verbatim

_TEMPLATE_ROW = re.compile(rb'<row r="2"[^>]*>.*?</row>', re.DOTALL)
#: a cell's reference in the template row; '<' cannot occur in cell text (it is escaped)
_CELL_REF = re.compile(r'<c r="([A-Z]+)2"')


@dataclass(frozen=True)
class _Frame:
    zip_bytes: bytes
    sheet_name: str
    head: bytes  # sheet XML up to the template row
    tail: bytes  # sheet XML after it
    row_format: str  # str.format template of one card row: {0} the row number, {1}... values
    kinds: tuple[Kind, ...]  # kind of each per-card value


def _frame(
    columns: Sequence[Column],
    constants: dict[str, Any],
    widths: list[int],
    count: int,
    title: str,
) -> _Frame:
    """The workbook written by openpyxl with one template card row, cut around that row."""
    wb, ws = _workbook(columns, widths, count, title, write_only=True)
    styles = _cell_styles(columns)
    cells = []
    sentinels: list[tuple[str, Kind]] = []
    for i, col in enumerate(columns):
        if col.per_card:
            if col.kind is Kind.TEXT:
                value: Any = _SENTINEL_TEXT.format(i)
                sentinels.append((value, col.kind))
            elif col.kind is Kind.MONEY:
                value = _SENTINEL_NUMBER + i
                sentinels.append((str(value), col.kind))
            else:
                raise CardSheetError(f"column {col.header!r}: per-card dates are not supported")
        else:
            value = constants[col.header]
            if col.kind is Kind.MONEY:
                value = _money_decimal(value)
            elif col.kind is Kind.TEXT:
                value = safe_cell(value)
        cell = WriteOnlyCell(ws, value)
        cell.number_format = styles[col.kind]
        cells.append(cell)
    ws.append(cells)
    buffer = io.BytesIO()
    wb.save(buffer)
    zip_bytes = buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as frame:
        sheet_name = "xl/worksheets/sheet1.xml"
        xml = frame.read(sheet_name)
    found = _TEMPLATE_ROW.search(xml)
    if found is None:
        raise CardSheetError("openpyxl wrote no template row: cannot build the card sheet")
    template = found.group(0).decode("utf-8")
    # braces are literal in the XML; double them before the placeholders are put in
    template = template.replace("{", "{{").replace("}", "}}")
    template = template.replace('<row r="2"', '<row r="{0}"', 1)
    template = _CELL_REF.sub(r'<c r="\1{0}"', template)
    for index, (sentinel, _kind) in enumerate(sentinels):
        if template.count(sentinel) != 1:
            raise CardSheetError(f"template row lost its placeholder {sentinel!r}")
        template = template.replace(sentinel, f"{{{index + 1}}}")
    return _Frame(
        zip_bytes=zip_bytes,
        sheet_name=sheet_name,
        head=xml[: found.start()],
        tail=xml[found.end() :],
        row_format=template,
        kinds=tuple(kind for _s, kind in sentinels),
    )


def _splice(
    frame: _Frame,
    rows: Iterable[tuple[Any, ...]],
    count: int,
    out: BinaryIO,
    progress: Progress | None,
) -> None:
    """Copy the frame's parts into `out`, with the template row repeated once per card."""
    render = _renderers(frame.kinds)
    fmt = frame.row_format.format
    written = 0
    with (
        zipfile.ZipFile(io.BytesIO(frame.zip_bytes)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as target,
    ):
        for info in source.infolist():
            if info.filename != frame.sheet_name:
                target.writestr(info, source.read(info.filename))
                continue
            with target.open(info.filename, "w", force_zip64=True) as sheet:
                sheet.write(frame.head)
                chunk: list[str] = []
                for n, values in enumerate(rows, start=2):
                    chunk.append(fmt(n, *[r(v) for r, v in zip(render, values, strict=True)]))
                    if len(chunk) == PROGRESS_EVERY:
                        sheet.write("".join(chunk).encode("utf-8"))
                        written += len(chunk)
                        if progress is not None:
                            progress(len(chunk))
                        chunk = []
                if chunk:
                    sheet.write("".join(chunk).encode("utf-8"))
                    written += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                sheet.write(frame.tail)
    if written != count:
        raise CardSheetError(f"expected {count} card rows, got {written}")


def _renderers(kinds: tuple[Kind, ...]) -> list[Callable[[Any], str]]:
    def text(value: Any) -> str:
        if not isinstance(value, str):
            raise CardSheetError(f"card value {value!r} is not text")
        return escape(safe_cell(value))

    def money(value: Any) -> str:
        return _money_text(value)

    return [text if kind is Kind.TEXT else money for kind in kinds]


def _money_text(micro: int) -> str:
    """Micro-units as the shortest exact decimal string ('5', '4.9833', '-0.5')."""
    if isinstance(micro, bool) or not isinstance(micro, int):
        raise CardSheetError(f"amount {micro!r} is not integer micro-units")
    sign = "-" if micro < 0 else ""
    units, fraction = divmod(abs(micro), MICRO)
    if fraction == 0:
        return f"{sign}{units}"
    return f"{sign}{units}.{fraction:06d}".rstrip("0")


def _money_decimal(micro: int) -> Decimal:
    return Decimal(_money_text(micro))


class _atomic_new_file:  # noqa: N801 - used like open()
    """A temporary file beside `path`, linked to `path` on success (never overwriting)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tmp: str | None = None
        self._file: io.BufferedWriter | None = None

    def __enter__(self) -> io.BufferedWriter:
        fd, self._tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        self._file = os.fdopen(fd, "wb")
        return self._file

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._file is not None
        assert self._tmp is not None
        try:
            self._file.close()
            if exc_type is None:
                os.chmod(self._tmp, 0o600)  # the PINs are in there: owner only
                try:
                    os.link(self._tmp, self.path)
                except FileExistsError:
                    raise CardSheetError(
                        f"{self.path}: appeared while writing; card sheets are never overwritten"
                    ) from None
        finally:
            os.unlink(self._tmp)


# ---------------------------------------------------------------------------- reading
def read_sheet(path: Path) -> list[SheetCard]:
    """Read an issue or export sheet back, checking every cell; CardSheetError names the cell."""
    path = Path(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        raise CardSheetError(f"{path}: not a readable XLSX file ({error})") from None
    try:
        if SHEET_TITLE not in wb.sheetnames:
            raise CardSheetError(f"{path}: no sheet named {SHEET_TITLE!r}")
        rows = wb[SHEET_TITLE].iter_rows(values_only=True)
        return list(_parse(path, rows))
    finally:
        wb.close()


def _parse(path: Path, rows: Iterator[tuple[Any, ...]]) -> Iterator[SheetCard]:
    header = next(rows, None)
    if header is None:
        raise CardSheetError(f"{path}: the sheet is empty")
    names = tuple(str(h) if h is not None else "" for h in header)
    for layout in (ISSUE_COLUMNS, EXPORT_COLUMNS):
        if names[: len(layout)] == tuple(c.header for c in layout):
            break
    else:
        raise CardSheetError(f"{path}: row 1 is not a card sheet header: {list(names)}")
    index = {c.header: i for i, c in enumerate(layout)}
    for n, raw in enumerate(rows, start=2):
        if all(v is None for v in raw):
            continue

        def cell(name: str, row: tuple[Any, ...] = raw) -> Any:
            return row[index[name]] if index[name] < len(row) else None

        def where(name: str, n: int = n) -> str:
            letter = get_column_letter(index[name] + 1)
            return f"{path}: row {n}, column {name!r} ({letter}{n})"

        number = _text_cell(cell("Card number"), where("Card number"), digits=True)
        pin = _text_cell(cell("PIN"), where("PIN"), digits=True) if "PIN" in index else None
        yield SheetCard(
            row=n,
            number=number,
            pin=pin,
            value=_money_cell(cell("Value"), where("Value")),
            currency=_text_cell(cell("Currency"), where("Currency")),
            expires=_date_cell(cell("Expires"), where("Expires")),
            batch_id=_text_cell(cell("Batch"), where("Batch")),
            tariff=_text_cell(cell("Tariff"), where("Tariff")),
            balance=_money_cell(cell("Balance"), where("Balance")) if "Balance" in index else None,
            status=_text_cell(cell("Status"), where("Status")) if "Status" in index else None,
        )


def _text_cell(value: Any, where: str, *, digits: bool = False) -> str:
    if not isinstance(value, str) or not value:
        # a number here means a spreadsheet turned "0042" into 42: the leading zeros are lost
        raise CardSheetError(f"{where}: expected text, found {value!r}")
    if digits and not value.isdigit():
        raise CardSheetError(f"{where}: expected digits only, found {value!r}")
    return uncell(value)


def _money_cell(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CardSheetError(f"{where}: expected an amount, found {value!r}")
    # a float read from XLSX is the shortest repr of the written decimal: str() gives it back
    try:
        return to_micro(str(value))
    except MoneyError as error:
        raise CardSheetError(f"{where}: {error}") from None


def _date_cell(value: Any, where: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise CardSheetError(f"{where}: expected a date, found {value!r}")
