"""Authorization arithmetic (price of a duration, most seconds affordable) against the Decimal
reference rater, on random rows, steps, decimals and rounding modes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rater import reference
from rater.accounts.authorize import billable_of, max_seconds, price_of
from rater.money import Rounding
from rater.tariffs.model import Steps, TariffRow, TariffTable

STEPS = [Steps(60, 60), Steps(30, 6), Steps(60, 1), Steps(1, 1), Steps(0, 30), Steps(45, 15)]


@st.composite
def tables(draw: st.DrawFn) -> tuple[TariffTable, TariffRow]:
    steps = draw(st.sampled_from(STEPS))
    row = TariffRow(
        prefix="31",
        destination="Netherlands",
        rate=draw(st.integers(0, 3_000_000)),
        connect_fee=draw(st.sampled_from([0, 0, 50_000, 123_456])),
        steps=draw(st.sampled_from([None, steps])),
        first_rate=draw(st.sampled_from([None, None, 2_500_000, 17])),
    )
    table = TariffTable(
        name="t",
        decimals=draw(st.integers(0, 6)),
        rounding=draw(st.sampled_from(list(Rounding))),
        steps=draw(st.sampled_from(STEPS)),
        rows=(row,),
    )
    return table, row


@settings(max_examples=300, deadline=None)
@given(tables(), st.integers(0, 20_000))
def test_price_matches_reference(rate: tuple[TariffTable, TariffRow], billsec: int) -> None:
    table, row = rate
    assert price_of(table, row, billable_of(table, row, billsec)) == reference.price_micro(
        table, row, billsec
    )


def _brute_force(table: TariffTable, row: TariffRow, available: int, limit: int) -> int:
    """The longest call (<= limit seconds) whose reference price fits in `available`."""
    best = 0
    for billsec in range(1, limit + 1):
        if reference.price_micro(table, row, billsec) <= available:
            best = billsec
    return best


@settings(max_examples=60, deadline=None)
@given(tables(), st.integers(-1_000_000, 6_000_000), st.integers(1, 900))
def test_max_seconds_matches_brute_force(
    rate: tuple[TariffTable, TariffRow], available: int, limit: int
) -> None:
    table, row = rate
    assert max_seconds(table, row, available, limit) == _brute_force(table, row, available, limit)


def test_worked_examples() -> None:
    # 60/60 at 0.10/min: EUR 0.25 pays two minutes, not three; EUR 0.09 not even one
    row = TariffRow("31", "NL", rate=100_000, steps=Steps(60, 60))
    table = TariffTable("t", decimals=4, steps=Steps(60, 60), rows=(row,))
    assert max_seconds(table, row, 250_000, 7200) == 120
    assert max_seconds(table, row, 90_000, 7200) == 0
    # 30/6 at 0.06/min with a 0.05 connect fee: 0.05 + 0.03 (30 s) + 0.006 per 6 s
    row = TariffRow("31", "NL", rate=60_000, connect_fee=50_000, steps=Steps(30, 6))
    assert max_seconds(table, row, 80_000, 7200) == 30
    assert max_seconds(table, row, 86_000, 7200) == 36
    # a free destination is limited only by the cap
    free = TariffRow("800", "free", rate=0)
    assert max_seconds(table, free, 0, 3600) == 3600
