"""Derived tables (markup / margin), the storage codec and canonical export."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.errors import TariffError
from rater.money import Rounding
from rater.tariffs import codec
from rater.tariffs.derive import derive
from rater.tariffs.export import write_tariff
from rater.tariffs.importers import read_tariff
from rater.tariffs.model import Steps, TariffRow, TariffTable

SEED_NAME = "Calling cards rates 40% - 60/60 billing - 29 sept 2008"


def buy_table(*rows: TariffRow) -> TariffTable:
    return TariffTable(
        name="wholesale", currency="EUR", decimals=5, steps=Steps(1, 1), rows=rows, version=3
    )


def decimal_up(micro: int, factor: Decimal) -> int:
    """Reference: currency units as Decimal, scaled, rounded up to 6 decimals."""
    units = Decimal(micro) / Decimal(1_000_000) * factor
    return int((units.quantize(Decimal("0.000001"), rounding=ROUND_CEILING)) * 1_000_000)


def test_the_seeds_calling_card_table() -> None:
    base = buy_table(
        TariffRow("31", "Netherlands", 10_000, 0),
        TariffRow("316", "Netherlands Mobile", 45_123, 5_001, Steps(30, 6), 60_000),
    )
    sell = derive(base, name=SEED_NAME, markup=Decimal(40), steps=Steps(60, 60))
    assert sell.name == SEED_NAME
    assert sell.steps == Steps(60, 60)
    rows = {row.prefix: row for row in sell.rows}
    assert rows["31"].rate == 14_000
    # 0.045123 x 1.4 = 0.0631722 -> up to 0.063173; connect 0.005001 x 1.4 = 0.0070014 -> 0.007002
    assert (rows["316"].rate, rows["316"].connect_fee, rows["316"].first_rate) == (
        63_173, 7_002, 84_000,
    )  # fmt: skip
    assert rows["316"].steps is None  # every row bills 60/60 now
    assert sell.source == "derived from wholesale@3 (+40% markup)"
    assert sell.currency == "EUR"
    assert sell.decimals == 5


def test_margin_is_a_share_of_the_sell_price() -> None:
    base = buy_table(TariffRow("1", "US", 60_000, 0), TariffRow("44", "UK", 10_000, 1))
    sell = derive(base, name="m", margin=Decimal(40), decimals=2, rounding=Rounding.DOWN)
    rows = {row.prefix: row for row in sell.rows}
    assert rows["1"].rate == 100_000  # 0.06 / 0.6 = 0.10 exactly
    assert rows["44"].rate == 16_667  # 0.01 / 0.6 = 0.016666... -> up
    assert rows["44"].connect_fee == 2  # 0.000001 / 0.6 -> 0.000002
    assert (sell.decimals, sell.rounding) == (2, Rounding.DOWN)
    assert "40% margin" in sell.source


def test_row_steps_and_dates_kept_without_new_steps() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    base = buy_table(TariffRow("1", "US", 1, 0, Steps(6, 6), None, when, None, 7))
    [row] = derive(base, name="d", markup=Decimal("12.5")).rows
    assert (row.steps, row.effective_from, row.line, row.rate) == (Steps(6, 6), when, 7, 2)


@given(
    micro=st.integers(min_value=0, max_value=50_000_000),
    percent=st.decimals(min_value=0, max_value=300, places=3),
)
def test_markup_matches_decimal_reference(micro: int, percent: Decimal) -> None:
    base = buy_table(TariffRow("1", "x", micro, micro))
    [row] = derive(base, name="d", markup=percent).rows
    expected = decimal_up(micro, 1 + percent / 100)
    assert row.rate == expected == row.connect_fee
    assert row.rate >= micro


@given(
    micro=st.integers(min_value=0, max_value=50_000_000),
    percent=st.decimals(min_value=0, max_value=Decimal("99.9"), places=1),
)
def test_margin_matches_exact_fraction(micro: int, percent: Decimal) -> None:
    base = buy_table(TariffRow("1", "x", micro, 0))
    [row] = derive(base, name="d", margin=percent).rows
    # exact: the smallest whole micro-unit with (sell - buy) / sell >= percent / 100
    expected = -(-micro * 1000 // int(1000 - percent * 10))
    assert row.rate == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one"),
        ({"markup": Decimal(1), "margin": Decimal(1)}, "exactly one"),
        ({"margin": Decimal(100)}, "below 100"),
        ({"markup": Decimal(-5)}, ">= 0"),
        ({"markup": Decimal("NaN")}, ">= 0"),
    ],
)
def test_derive_refuses(kwargs: dict[str, Decimal], message: str) -> None:
    with pytest.raises(TariffError, match=message):
        derive(buy_table(), name="d", **kwargs)  # type: ignore[arg-type]


def test_codec_round_trip() -> None:
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    table = TariffTable(
        name=SEED_NAME,
        currency="USD",
        decimals=3,
        rounding=Rounding.HALF_UP,
        steps=Steps(60, 60),
        rows=(
            TariffRow("31", "NL", 1, 2, None, None, None, None, 2),
            TariffRow("316", "NL mobile", 3, 0, Steps(30, 6), 9, when, None, 3),
            TariffRow("317", "NL", 3, 0, None, None, None, when, 4),
        ),
        version=4,
        effective_from=when,
        created_at=when,
        source="deck.csv",
    )
    assert codec.decode(codec.encode(table)) == table


def test_export_reads_back_the_same_prices(tmp_path: Path) -> None:
    when = datetime(2026, 3, 1, 12, tzinfo=UTC)
    table = TariffTable(
        name="t",
        steps=Steps(60, 60),
        rows=(
            TariffRow("31", "Netherlands, Amsterdam", 1, 2),
            TariffRow("316", "NL mobile", 123_456, 0, Steps(30, 6), 200_000, when),
            TariffRow("317", "NL", 3, 0, None, None, None, when),
        ),
    )
    for suffix in ("csv", "xlsx"):
        path = tmp_path / f"out.{suffix}"
        assert write_tariff(table, path) == 3
        again = read_tariff(path, name="t", steps=Steps(1, 1))
        resolved = {
            (r.prefix, r.destination, r.rate, r.connect_fee, r.steps or again.steps,
             r.first_rate or r.rate, r.effective_from, r.effective_to)
            for r in again.rows
        }  # fmt: skip
        assert resolved == {
            ("31", "Netherlands, Amsterdam", 1, 2, Steps(60, 60), 1, None, None),
            ("316", "NL mobile", 123_456, 0, Steps(30, 6), 200_000, when, None),
            ("317", "NL", 3, 0, Steps(60, 60), 3, None, when),
        }
