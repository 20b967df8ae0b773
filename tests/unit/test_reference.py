"""The Decimal reference rater: worked examples and its own rules, checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rater import reference
from rater.errors import NormalisationError, TariffError
from rater.money import MICRO, Rounding, round_div
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _table(*rows: TariffRow, **fields: object) -> TariffTable:
    return TariffTable(name="t", rows=rows, **fields)  # type: ignore[arg-type]


def test_60_60_at_ten_cents_a_minute() -> None:
    table = _table(TariffRow("44", "UK", rate=100_000), steps=Steps(60, 60), decimals=2)
    row = table.rows[0]
    assert reference.price(table, row, 61) == (120, Decimal("0.20"))
    assert reference.price(table, row, 60) == (60, Decimal("0.10"))
    assert reference.price(table, row, 1) == (60, Decimal("0.10"))
    assert reference.price_micro(table, row, 61) == 200_000


def test_30_6_billable_seconds() -> None:
    steps = Steps(30, 6)
    assert reference.billable_seconds(steps, 0) == 0
    assert reference.billable_seconds(steps, 10) == 30
    assert reference.billable_seconds(steps, 30) == 30
    assert reference.billable_seconds(steps, 31) == 36
    assert reference.billable_seconds(steps, 36) == 36
    assert reference.billable_seconds(steps, 37) == 42


@given(st.integers(0, 6), st.integers(1, 60), st.integers(0, 100_000))
def test_billable_seconds_agrees_with_the_model(minimum: int, increment: int, billsec: int) -> None:
    steps = Steps(minimum, increment)
    assert reference.billable_seconds(steps, billsec) == steps.billable(billsec)


@settings(max_examples=300)
@given(
    rate=st.integers(0, 10**9),
    fee=st.integers(0, 10**6),
    first=st.none() | st.integers(0, 10**9),
    minimum=st.sampled_from([0, 1, 30, 60]),
    increment=st.sampled_from([1, 6, 60]),
    billsec=st.integers(0, 10**6),
    decimals=st.integers(0, 6),
    rounding=st.sampled_from(list(Rounding)),
)
def test_price_agrees_with_integer_rounding(  # noqa: PLR0917 (hypothesis fills them)
    rate: int, fee: int, first: int | None, minimum: int, increment: int, billsec: int,
    decimals: int, rounding: Rounding,
) -> None:  # fmt: skip
    """Decimal arithmetic in currency units against money.round_div on micro-units."""
    steps = Steps(minimum, increment)
    row = TariffRow("1", "x", rate=rate, connect_fee=fee, first_rate=first)
    table = _table(row, steps=steps, decimals=decimals, rounding=rounding)
    billable = steps.billable(billsec)
    first_rate = rate if first is None else first
    numerator = fee * 60 + first_rate * minimum + rate * (billable - minimum)
    unit = 10 ** (6 - decimals)
    expected = 0 if billable == 0 else round_div(numerator, 60, unit, rounding)
    assert reference.price_micro(table, row, billsec) == expected
    _, amount = reference.price(table, row, billsec)
    assert amount == Decimal(expected) / MICRO
    assert amount.as_tuple().exponent == -decimals  # written with the table's decimals


def test_no_connect_fee_for_unanswered_calls() -> None:
    table = _table(TariffRow("1", "x", rate=60_000, connect_fee=50_000))
    assert reference.price_micro(table, table.rows[0], 0) == 0
    assert reference.price_micro(table, table.rows[0], 1) == 51_000


def test_first_step_rate() -> None:
    # 30/6, 0.60/min for the first 30 s then 0.12/min: 31 s -> 0.30 + 6 s * 0.002 = 0.312
    row = TariffRow("1", "x", rate=120_000, first_rate=600_000)
    table = _table(row, steps=Steps(30, 6), decimals=3)
    assert reference.price(table, row, 31) == (36, Decimal("0.312"))
    assert reference.price(table, row, 5) == (30, Decimal("0.300"))


def test_rounding_modes() -> None:
    row = TariffRow("1", "x", rate=1_500)  # 0.0015 a minute
    for mode, text in (
        (Rounding.UP, "0.002"),
        (Rounding.HALF_UP, "0.002"),
        (Rounding.DOWN, "0.001"),
    ):
        table = _table(row, steps=Steps(60, 60), decimals=3, rounding=mode)
        assert reference.price(table, row, 60)[1] == Decimal(text)
    below_half = TariffRow("1", "x", rate=1_499)
    table = _table(below_half, steps=Steps(60, 60), decimals=3, rounding=Rounding.HALF_UP)
    assert reference.price(table, below_half, 60)[1] == Decimal("0.001")


def test_longest_prefix_wins_and_numbers_shorter_than_a_prefix_fall_back() -> None:
    table = _table(TariffRow("4", "a", 1), TariffRow("44", "b", 2), TariffRow("4477123", "c", 3))
    assert reference.match(table, "44771234", T0).destination == "c"  # type: ignore[union-attr]
    assert reference.match(table, "447600", T0).destination == "b"  # type: ignore[union-attr]
    assert reference.match(table, "447712", T0).destination == "b"  # type: ignore[union-attr]
    assert reference.match(table, "310000", T0) is None


def test_row_dates_scheduled_changes_and_closed_codes() -> None:
    table = _table(
        TariffRow("44", "uk", 1),
        TariffRow("447", "old", 2),
        TariffRow("447", "new", 3, effective_from=T0 + HOUR),
        TariffRow("4478", "closing", 4, effective_to=T0 + HOUR),
        TariffRow("4479", "later", 5, effective_from=T0 + 2 * HOUR),
    )
    at = reference.match
    assert at(table, "447000", T0).destination == "old"  # type: ignore[union-attr]
    assert at(table, "447000", T0 + HOUR).destination == "new"  # type: ignore[union-attr]
    assert at(table, "447800", T0 + HOUR - timedelta(seconds=1)).destination == "closing"  # type: ignore[union-attr]
    assert at(table, "447800", T0 + HOUR).destination == "new"  # type: ignore[union-attr]  # closed
    assert at(table, "447900", T0).destination == "old"  # type: ignore[union-attr]  # not started
    assert at(table, "447900", T0 + 2 * HOUR).destination == "later"  # type: ignore[union-attr]


def test_duplicate_prefix_and_date_is_an_error() -> None:
    table = _table(TariffRow("44", "a", 1), TariffRow("44", "b", 2))
    with pytest.raises(TariffError, match="prefix 44 twice"):
        reference.match(table, "44", T0)


def test_version_in_force() -> None:
    v1 = TariffTable(name="t", version=1, rows=(TariffRow("1", "v1", 1),))
    v2 = TariffTable(name="t", version=2, effective_from=T0, rows=(TariffRow("1", "v2", 2),))
    v3 = TariffTable(name="t", version=3, effective_from=T0 + HOUR)
    versions = [v3, v1, v2]  # any order
    assert reference.version_at(versions, T0 - timedelta(days=3650)) is v1  # from the beginning
    assert reference.version_at(versions, T0) is v2
    assert reference.version_at(versions, T0 + HOUR) is v3
    assert reference.version_at([], T0) is None
    rated = reference.rate(versions, "155500", 60, T0)
    assert rated == reference.RefRated("t@2", "1", "v2", 60, 100)  # 2 micro, up to 0.0001
    assert reference.rate(versions, "155500", 60, T0 + HOUR) is None  # v3 has no rows


def test_rate_cdr_normalises_the_dialled_number() -> None:
    table = _table(TariffRow("31", "NL", rate=60_000), steps=Steps(60, 60))
    switch = SwitchSettings(country_code="31", trunk_prefix="0")
    number, rated = reference.rate_cdr([table], "020 123 4567", 61, int(T0.timestamp()), switch)
    assert number == "31201234567"
    assert rated is not None
    assert rated.price_micro == 120_000
    with pytest.raises(NormalisationError):
        reference.rate_cdr([table], "+31abc", 61, int(T0.timestamp()), switch)
