"""The calling-card spreadsheets: written fast, read back by openpyxl exactly as written."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook

from rater.accounts.cardsheet import (
    DATE_FORMAT,
    EXPORT_COLUMNS,
    ISSUE_COLUMNS,
    MONEY_FORMAT,
    SHEET_TITLE,
    TEXT_FORMAT,
    BatchInfo,
    ExportRow,
    IssuedRow,
    read_sheet,
    write_export_sheet,
    write_issue_sheet,
    write_sheet_openpyxl,
)
from rater.errors import CardSheetError

TARIFF = "Calling cards rates 40% - 60/60 billing - 29 sept 2008"
BATCH = BatchInfo("b-0001", "EUR", 5_000_000, date(2027, 3, 31), TARIFF)


def _cards(n: int) -> list[IssuedRow]:
    # PINs and numbers with leading zeros: the point of text cells
    return [IssuedRow(f"0{i:011d}", f"{(i * 7919) % 10_000:04d}") for i in range(n)]


def test_issue_sheet_reads_back_every_card(tmp_path: Path) -> None:
    cards = _cards(250)
    path = write_issue_sheet(tmp_path / "batch.xlsx", BATCH, cards)
    back = read_sheet(path)
    assert [(c.number, c.pin) for c in back] == [(c.number, c.pin) for c in cards]
    assert back[0].pin == "0000"
    assert back[0].number == "000000000000"
    for card in back:
        assert card.value == 5_000_000
        assert card.currency == "EUR"
        assert card.expires == date(2027, 3, 31)
        assert card.batch_id == "b-0001"
        assert card.tariff == TARIFF
        assert card.balance is None
    assert [c.row for c in back] == list(range(2, 252))


def test_same_cells_and_formats_as_openpyxl_itself(tmp_path: Path) -> None:
    """The spliced writer and a plain openpyxl write give the same workbook, cell by cell."""
    cards = _cards(40)
    batch = BatchInfo("b{2}", "EUR", 10_500_000, None, 'A & B <"cards"> {x} r="A2" {0}')
    fast = write_issue_sheet(tmp_path / "fast.xlsx", batch, cards)
    constants = {
        "Value": batch.value,
        "Currency": batch.currency,
        "Expires": batch.expires,
        "Batch": batch.batch_id,
        "Tariff": batch.tariff,
    }
    slow = write_sheet_openpyxl(
        tmp_path / "slow.xlsx",
        ISSUE_COLUMNS,
        constants=constants,
        rows=[(c.number, c.pin) for c in cards],
        count=len(cards),
        title="oracle",
    )
    a = load_workbook(fast)[SHEET_TITLE]
    b = load_workbook(slow)[SHEET_TITLE]
    assert a.max_row == b.max_row == 41
    for row_a, row_b in zip(a.iter_rows(), b.iter_rows(), strict=True):
        for x, y in zip(row_a, row_b, strict=True):
            assert (x.coordinate, x.value, x.number_format, x.font.b) == (
                y.coordinate,
                y.value,
                y.number_format,
                y.font.b,
            )
    assert a["F2"].value == "b{2}"
    assert a["G41"].value == 'A & B <"cards"> {x} r="A2" {0}'


def test_formatted_for_printing(tmp_path: Path) -> None:
    path = write_issue_sheet(tmp_path / "batch.xlsx", BATCH, _cards(3))
    ws = load_workbook(path)[SHEET_TITLE]
    headers = [cell.value for cell in ws[1]]
    assert headers == [c.header for c in ISSUE_COLUMNS]
    assert all(cell.font.b for cell in ws[1])
    assert ws.freeze_panes == "A2"
    assert ws.print_title_rows == "$1:$1"
    assert ws.page_setup.orientation == "landscape"
    assert ws.column_dimensions["A"].width >= 14
    assert ws.column_dimensions["G"].width >= len(TARIFF)  # the tariff name fits
    assert ws["A2"].number_format == TEXT_FORMAT
    assert ws["B2"].number_format == TEXT_FORMAT
    assert ws["A2"].data_type == "s"
    assert ws["C2"].number_format == MONEY_FORMAT
    assert ws["E2"].number_format == DATE_FORMAT
    assert ws.auto_filter.ref == "A1:G4"


def test_export_sheet_has_no_pins_and_exact_balances(tmp_path: Path) -> None:
    rows = [
        ExportRow("800000000018", 4_983_300, "active"),
        ExportRow("800000000026", -120_000, "exhausted"),
        ExportRow("800000000034", 1, "blocked"),
    ]
    path = write_export_sheet(tmp_path / "export.xlsx", BATCH, rows)
    ws = load_workbook(path)[SHEET_TITLE]
    assert "PIN" not in [cell.value for cell in ws[1]]
    back = read_sheet(path)
    assert [(c.number, c.balance, c.status, c.pin) for c in back] == [
        ("800000000018", 4_983_300, "active", None),
        ("800000000026", -120_000, "exhausted", None),
        ("800000000034", 1, "blocked", None),
    ]
    assert EXPORT_COLUMNS[0].header == "Card number"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(balances=st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=30))
def test_any_micro_amount_survives_the_round_trip(tmp_path: Path, balances: list[int]) -> None:
    folder = tmp_path / f"r{abs(hash(tuple(balances)))}"
    folder.mkdir()
    rows = [ExportRow(f"8{i:011d}", b, "active") for i, b in enumerate(balances)]
    back = read_sheet(write_export_sheet(folder / "x.xlsx", BATCH, rows))
    assert [c.balance for c in back] == balances


def test_never_overwrites_and_needs_xlsx(tmp_path: Path) -> None:
    target = tmp_path / "batch.xlsx"
    target.write_bytes(b"precious PINs")
    with pytest.raises(CardSheetError, match="never overwritten"):
        write_issue_sheet(target, BATCH, _cards(2))
    assert target.read_bytes() == b"precious PINs"
    with pytest.raises(CardSheetError, match=r"\.xlsx"):
        write_issue_sheet(tmp_path / "batch.csv", BATCH, _cards(2))
    with pytest.raises(CardSheetError, match="does not exist"):
        write_issue_sheet(tmp_path / "nope" / "b.xlsx", BATCH, _cards(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.xlsx"]  # no temp file left


def test_progress_counts_every_card(tmp_path: Path) -> None:
    seen: list[int] = []
    write_issue_sheet(tmp_path / "b.xlsx", BATCH, _cards(12_345), progress=seen.append)
    assert sum(seen) == 12_345
    assert len(seen) == 3


def test_a_pin_turned_into_a_number_is_named(tmp_path: Path) -> None:
    """What happens when someone opens the sheet, types 0042 into a General cell and saves."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_TITLE
    ws.append([c.header for c in ISSUE_COLUMNS])
    ws.append(["800000000018", "0042", 5, "EUR", None, "b", "t"])
    ws.append(["800000000026", 42, 5, "EUR", None, "b", "t"])
    path = tmp_path / "edited.xlsx"
    wb.save(path)
    with pytest.raises(CardSheetError, match=r"row 3, column 'PIN' \(B3\): expected text"):
        read_sheet(path)


def test_bad_header_and_bad_amount_are_named(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_TITLE
    ws.append(["Number", "PIN"])
    path = tmp_path / "wrong.xlsx"
    wb.save(path)
    with pytest.raises(CardSheetError, match="not a card sheet header"):
        read_sheet(path)
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET_TITLE
    ws.append([c.header for c in ISSUE_COLUMNS])
    ws.append(["800000000018", "0042", "five", "EUR", None, "b", "t"])
    path = tmp_path / "amount.xlsx"
    wb.save(path)
    with pytest.raises(CardSheetError, match=r"row 2, column 'Value'"):
        read_sheet(path)
    (tmp_path / "junk.xlsx").write_bytes(b"not a zip")
    with pytest.raises(CardSheetError, match="not a readable XLSX"):
        read_sheet(tmp_path / "junk.xlsx")
