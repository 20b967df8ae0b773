"""Deck import: every real-world layout (own small fixtures), XLSX, and every error kind."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.errors import TariffImportError
from rater.money import Rounding
from rater.tariffs.cells import CellError, parse_codes, parse_date, parse_money
from rater.tariffs.export import to_csv_text
from rater.tariffs.importers import read_tariff, read_tariff_rows
from rater.tariffs.model import Steps, TariffRow, TariffTable

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tariffs"


def by_prefix(table: TariffTable) -> dict[str, TariffRow]:
    return {row.prefix: row for row in table.rows}


def day(y: int, m: int, d: int, h: int = 0) -> datetime:
    return datetime(y, m, d, h, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "deck.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[tuple[int, str, str]]:
    with pytest.raises(TariffImportError) as caught:
        read_tariff(path, name="t")
    return [(p.line, p.column, p.message) for p in caught.value.problems]


# ------------------------------------------------------------------------------ layouts
def test_canonical_columns_with_table_options() -> None:
    table = read_tariff(
        FIXTURES / "canonical.csv",
        name="retail",
        currency="USD",
        steps=Steps(60, 60),
        decimals=2,
        rounding=Rounding.HALF_UP,
    )
    assert (table.name, table.currency, table.decimals, table.rounding) == (
        "retail", "USD", 2, Rounding.HALF_UP,
    )  # fmt: skip
    assert table.steps == Steps(60, 60)
    rows = [r for r in table.rows if r.prefix == "316"]
    assert rows == [
        TariffRow("316", "Netherlands Mobile", 45_000, 10_000, Steps(60, 60), 60_000, None, None, 3)
    ]
    kpn = [r for r in table.rows if r.prefix == "3161"]
    assert [(r.rate, r.effective_from) for r in kpn] == [
        (41_234, day(2026, 1, 1)),
        (39_000, day(2026, 3, 1, 12)),
    ]
    assert by_prefix(table)["31"].steps is None  # the table's default applies
    assert by_prefix(table)["31"].first_rate is None


def test_astpp_regex_patterns_connect_cost_and_increment() -> None:
    table = read_tariff(FIXTURES / "astpp_style.csv", name="astpp")
    rows = by_prefix(table)
    assert sorted(rows) == ["27", "2782", "2783", "27835"]
    assert rows["27"] == TariffRow("27", "South Africa", 41_200, 0, Steps(6, 6), line=2)
    assert rows["2783"].connect_fee == 10_000
    assert rows["27835"].steps == Steps(1, 1)


def test_asterisell_quoted_decimal_commas() -> None:
    summary = read_tariff_rows(FIXTURES / "asterisell_style.csv", name="ast")
    assert summary.table is not None
    rows = by_prefix(summary.table)
    assert rows["2547"].rate == 112_500
    assert rows["51"].rate == 21_000
    assert rows["25471"].destination == "Kenya Mobile - Safaricom"
    assert (summary.rows_read, summary.prefixes, summary.destinations) == (4, 4, 4)


def test_rate_notice_letterhead_lists_ranges_groups_and_closed_codes() -> None:
    summary = read_tariff_rows(FIXTURES / "rate_notice.csv", name="notice")
    assert summary.table is not None, summary.problems
    assert summary.header_line == 6
    rows = by_prefix(summary.table)
    assert sorted(rows) == sorted(
        ["34609", "34619", "34629", "34630", "34631", "34", "39330", "39331", "569",
         "23324", "23354", "23355", "23327", "14165", "14166", "14167"]
    )  # fmt: skip
    vodafone = rows["34630"]
    assert vodafone.destination == "Spain - Mobile - Movistar"
    assert vodafone.steps == Steps(60, 1)
    assert vodafone.effective_from == day(2026, 3, 9)  # dd/mm/yyyy
    assert rows["569"].rate == 23_300  # '+569'
    assert rows["14166"].rate == 8_100  # '0014165-0014167'
    closed = rows["23327"]
    assert (closed.effective_from, closed.effective_to) == (None, day(2026, 3, 12))
    assert summary.closed == 1
    assert summary.skipped == 1  # the footer line
    assert any("'393 30' read as the one code 39330" in note for note in summary.notes)
    assert (summary.rows_read, summary.prefixes, summary.destinations) == (7, 16, 7)


def test_normalised_notice_price_1_price_n_intervals_asap_forbidden() -> None:
    summary = read_tariff_rows(FIXTURES / "notice_normalised.csv", name="n")
    assert summary.table is not None, summary.problems
    rows = by_prefix(summary.table)
    assert rows["39330"].first_rate == 50_000
    assert rows["39330"].rate == 41_200
    assert rows["39330"].steps == Steps(30, 6)
    assert rows["34"].effective_from is None  # ASAP
    assert rows["34609"].first_rate is None  # Price 1 == Price N
    assert rows["23327"].effective_to == day(2026, 3, 12)  # Discontinued = 1
    assert "53" not in rows  # Forbidden = 1: not imported
    assert summary.skipped == 1


def test_european_semicolons_decimal_commas_plus_and_00() -> None:
    rows = by_prefix(read_tariff(FIXTURES / "european.csv", name="eu"))
    assert rows["43"].rate == 12_300
    assert rows["43664"].connect_fee == 15_000
    assert rows["43676"].steps == Steps(1, 1)  # '43 676': digit groups


def test_utf16_and_latin1_files(tmp_path: Path) -> None:
    utf16 = tmp_path / "u16.csv"
    utf16.write_bytes("Code\tDestination\tRate\n49\tDeutschland Rufnummer\t0,01\n".encode("utf-16"))
    assert read_tariff(utf16, name="t").rows[0].rate == 10_000
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Code;Destination;Rate\n33;Réunion;0,02\n".encode("latin-1"))
    assert read_tariff(latin, name="t").rows[0].destination == "Réunion"


def test_a2billing_ratecard_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dialprefix,destination,rateinitial,initblock,billingblock,connectcharge\n"
        "44,UK,0.02,30,6,0.05\n",
    )
    [row] = read_tariff(path, name="t").rows
    assert (row.rate, row.steps, row.connect_fee) == (20_000, Steps(30, 6), 50_000)


def test_space_separated_list_of_equal_codes(tmp_path: Path) -> None:
    path = write(tmp_path, "code,rate\n49152 49162 49172,0.05\n")
    assert [r.prefix for r in read_tariff(path, name="t").rows] == ["49152", "49162", "49172"]


def test_xlsx_with_numbers_dates_and_letterhead(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Carrier price list"])
    sheet.append([])
    sheet.append(["Dial Code", "Destination", "Rate/Min", "Effective", "Billing"])
    sheet.append([44, "United Kingdom", 0.0112, datetime(2026, 5, 1), "60/60"])
    sheet.append(["4477", "UK Mobile", 0.000015, "ASAP", "1/1"])
    sheet.append([33.0, "France", 1, None, None])
    path = tmp_path / "deck.xlsx"
    book.save(path)
    rows = by_prefix(read_tariff(path, name="x"))
    assert rows["44"].rate == 11_200
    assert rows["44"].effective_from == day(2026, 5, 1)
    assert rows["4477"].rate == 15
    assert rows["33"].rate == 1_000_000
    assert rows["44"].line == 4


def test_version_options_and_effective_from(tmp_path: Path) -> None:
    path = write(tmp_path, "prefix,rate\n1,0.01\n")
    when = datetime(2026, 7, 1)
    table = read_tariff(path, name="t", effective_from=when)
    assert table.effective_from == datetime(2026, 7, 1, tzinfo=UTC)
    assert table.source == "deck.csv"


# ------------------------------------------------------------------------------ errors
def test_every_bad_cell_is_named_and_nothing_is_imported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prefix,destination,rate,connect_fee,steps,first_rate,effective_from\n"
        "31,NL,0.01,,,,\n"  # line 2: fine
        "31,NL again,0.02,,,,\n"  # line 3: duplicate of line 2 (both ASAP)
        "32,BE,0.1234567,,,,\n"  # line 4: 7 decimals
        "33,FR,0.01,,60-60,,\n"  # line 5: bad steps
        "34,ES,0.01,,,,31/02/2026\n"  # line 6: bad date
        ",Nowhere,0.01,,,,\n"  # line 7: empty prefix
        "35,PT,,,,,\n"  # line 8: empty rate
        "3a6,x,0.01,,,,\n"  # line 9: letters in the prefix
        "37,y,-0.01,,,,\n"  # line 10: negative rate
        "38,z,0.01,abc,,,\n"  # line 11: connect fee not a number
        "39,w,0.01,,0/0,,\n"  # line 12: steps need Y >= 1
        "040,v,0.01,,,,\n",  # line 13: national prefix
    )
    found = problems_of(path)
    columns = {line: column for line, column, _ in found}
    assert columns == {
        3: "prefix", 4: "rate", 5: "steps", 6: "effective_from", 7: "prefix", 8: "rate",
        9: "prefix", 10: "rate", 11: "connect_fee", 12: "steps", 13: "prefix",
    }  # fmt: skip
    messages = {line: message for line, _, message in found}
    assert "duplicate prefix 31" in messages[3]
    assert "line 2" in messages[3]
    assert "more than 6 decimals" in messages[4]
    assert "empty prefix" in messages[7]
    assert "negative" in messages[10]


def test_duplicates_need_the_same_effective_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "prefix,rate,effective_from\n44,0.01,\n44,0.02,2026-01-01\n44,0.03,01/01/2026\n",
    )
    assert problems_of(path) == [
        (
            4,
            "prefix",
            "duplicate prefix 44 with effective date 2026-01-01 00:00:00 (also on line 3)",
        )
    ]


def test_duplicates_from_lists_and_ranges(tmp_path: Path) -> None:
    path = write(tmp_path, 'Dial Codes,Rate\n"4420-4422, 4421",0.01\n')
    [(line, column, message)] = problems_of(path)
    assert (line, column) == (2, "Dial Codes")
    assert "duplicate prefix 4421" in message


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("^9[3-5].*", "not a plain prefix"),
        ("4917-49174", "same number of digits"),
        ("49174-49172", "ends before it starts"),
        ("10-99999", "same number of digits"),
        ("1000-9999999", "same number of digits"),
        ("100000-199999", "at most 10000"),
        ("1234567890123456", "longer than 15 digits"),
        ("+", "no digits"),
        ("0-1-2", "not of the form FIRST-LAST"),
    ],
)
def test_bad_code_cells(tmp_path: Path, cell: str, message: str) -> None:
    path = write(tmp_path, f'prefix,rate\n"{cell}",0.01\n')
    [(line, column, text)] = problems_of(path)
    assert (line, column) == (2, "prefix")
    assert message in text


def test_free_seconds_and_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pattern,cost,includedseconds,Forbidden,Discontinued\n"
        "^1.*,0.01,30,0,0\n"
        "^2.*,0.01,0,maybe,0\n"
        "^3.*,0.01,0,0,2\n",
    )
    found = problems_of(path)
    assert [(line, column) for line, column, _ in found] == [
        (2, "includedseconds"), (3, "Forbidden"), (4, "Discontinued"),
    ]  # fmt: skip


def test_closed_code_needs_a_single_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Code,Rate,Effective,End date,Change\n"
        "44,0.01,01/02/2026,01/03/2026,Closed\n"
        "45,0.01,01/03/2026,01/02/2026,\n",
    )
    found = problems_of(path)
    assert [(line, column) for line, column, _ in found] == [(2, "End date"), (3, "End date")]


def test_closed_asap_is_skipped_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path, "Code,Rate,Change\n44,0.01,Closed\n45,0.01,New\n")
    summary = read_tariff_rows(path, name="t")
    assert summary.table is not None
    assert [r.prefix for r in summary.table.rows] == ["45"]
    assert any("closed at once" in note for note in summary.notes)


def test_no_header_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, '"31","Netherlands","0.01"\n"32","Belgium","0.02"\n')
    [(line, column, message)] = problems_of(path)
    assert (line, column) == (1, "")
    assert "no header row" in message
    assert "prefix column" in message


def test_letterhead_currency(tmp_path: Path) -> None:
    path = write(tmp_path, "Currency:,USD per minute\nCode,Rate\n1,0.01\n")
    summary = read_tariff_rows(path, name="t", currency=None)
    assert summary.table is not None
    assert (summary.table.currency, summary.deck_currency) == ("USD", "USD")
    # another currency asked for: a note, or an error when strict (the CLI's --currency)
    summary = read_tariff_rows(path, name="t", currency="EUR")
    assert summary.table is not None
    assert summary.table.currency == "EUR"
    assert any("--currency USD" in note for note in summary.notes)
    summary = read_tariff_rows(path, name="t", currency="EUR", strict_currency=True)
    assert summary.table is None
    [problem] = summary.problems
    assert problem.line == 1
    assert "--currency USD" in problem.message
    no_letterhead = write(
        tmp_path, "Currency for all rates below\nCode,Rate\n1,0.01\n", "plain.csv"
    )
    assert read_tariff_rows(no_letterhead, name="t", currency=None).table.currency == "EUR"  # type: ignore[union-attr]


def test_empty_and_missing_files(tmp_path: Path) -> None:
    assert "empty" in problems_of(write(tmp_path, "\n\n"))[0][2]
    assert "no such file" in problems_of(tmp_path / "absent.csv")[0][2]
    assert "no rows" in problems_of(write(tmp_path, "prefix,rate\n"))[0][2]
    assert ".xlsx or .csv" in problems_of(write(tmp_path, "x", "old.xls"))[0][2]


def test_bad_table_options() -> None:
    with pytest.raises(TariffImportError, match="currency"):
        read_tariff(FIXTURES / "canonical.csv", name="t", currency="euro")
    with pytest.raises(TariffImportError, match="decimals"):
        read_tariff(FIXTURES / "canonical.csv", name="t", decimals=7)


def test_error_message_lists_problems_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "prefix,rate\n31,x\n")
    with pytest.raises(TariffImportError) as caught:
        read_tariff(path, name="t")
    assert "line 2, column 'rate': 'x' is not a decimal number" in str(caught.value)
    assert "nothing imported" in str(caught.value)


# ------------------------------------------------------------------------------ cells
@given(st.decimals(min_value=0, max_value=10_000, places=6, allow_nan=False))
def test_parse_money_matches_decimal(value: Decimal) -> None:
    text = format(value, "f")
    assert parse_money(text) == int(value * 1_000_000)
    assert parse_money(text.replace(".", ",")) == int(value * 1_000_000)


def test_parse_money_edges() -> None:
    assert parse_money("0.1000000") == 100_000  # zeros past the 6th decimal are harmless
    assert parse_money(".5") == 500_000
    assert parse_money("7") == 7_000_000
    for bad in ("", ".", "1,000.50", "1e-3", "abc", "0.0000001", "€0.10"):
        with pytest.raises(CellError):
            parse_money(bad)


def test_parse_codes_examples() -> None:
    assert parse_codes("^93.*") == ["93"]
    assert parse_codes("0049") == ["49"]
    assert parse_codes("+1 876 38") == ["187638"]
    assert parse_codes("447400-447402") == ["447400", "447401", "447402"]
    assert parse_codes("234803; 234806,") == ["234803", "234806"]


def test_parse_date_forms() -> None:
    assert parse_date("ASAP") is None
    assert parse_date("") is None
    assert parse_date("23/09/2026") == day(2026, 9, 23)
    assert parse_date("2026-09-23") == day(2026, 9, 23)
    assert parse_date("2026-09-23T02:00:00+02:00") == day(2026, 9, 23)
    assert parse_date("23.09.2026 14:00") == day(2026, 9, 23, 14)


# ------------------------------------------------------------------------------ round trip
def _row(
    *, prefix: str, rate: int, fee: int, first: int | None, steps: Steps | None, dated: bool
) -> TariffRow:
    when = day(2026, 5, 1) if dated else None
    return TariffRow(prefix, f"dest {prefix[:2]}", rate, fee, steps, first, when, None)


rows_strategy = st.lists(
    st.builds(
        _row,
        prefix=st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True),
        rate=st.integers(0, 10**9),
        fee=st.integers(0, 10**7),
        first=st.one_of(st.none(), st.integers(0, 10**9)),
        steps=st.one_of(st.none(), st.builds(Steps, st.integers(0, 120), st.integers(1, 60))),
        dated=st.booleans(),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda r: (r.prefix, r.effective_from),
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy)
def test_export_then_import_gives_the_same_prices(
    rows: list[TariffRow], tmp_path_factory: pytest.TempPathFactory
) -> None:
    table = TariffTable(name="t", steps=Steps(60, 60), rows=tuple(rows))
    path = tmp_path_factory.mktemp("rt") / "t.csv"
    path.write_text(to_csv_text(table))
    again = read_tariff(path, name="t", steps=Steps(60, 60))

    def resolved(t: TariffTable) -> set[tuple[object, ...]]:
        return {
            (r.prefix, r.destination, r.rate, r.connect_fee, r.steps or t.steps,
             r.rate if r.first_rate is None else r.first_rate, r.effective_from)
            for r in t.rows
        }  # fmt: skip

    assert resolved(again) == resolved(table)
