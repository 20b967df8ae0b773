"""Authorization arithmetic on the kernel (price of a duration, most seconds affordable) against
the Decimal reference rater, on random rows, steps, decimals and rounding modes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rater import reference
from rater.accounts.rates import Rate, RateBook, max_seconds
from rater.money import Rounding
from rater.tariffs.model import Steps, TariffRow, TariffTable

STEPS = [Steps(60, 60), Steps(30, 6), Steps(60, 1), Steps(1, 1), Steps(0, 30), Steps(45, 15)]
NOW = datetime(2026, 11, 20, tzinfo=UTC)


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


def _rate(table: TariffTable) -> Rate:
    found = RateBook.from_tables({table.name: [table]}).find(table.name, "31612345678", NOW)
    assert found is not None
    return found


@settings(max_examples=200, deadline=None)
@given(tables(), st.lists(st.integers(0, 20_000), min_size=1, max_size=20))
def test_kernel_prices_match_reference(
    rate: tuple[TariffTable, TariffRow], billsecs: list[int]
) -> None:
    table, row = rate
    prices = _rate(table).prices(np.array(billsecs, dtype=np.int32))
    assert prices.tolist() == [reference.price_micro(table, row, s) for s in billsecs]


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
    assert max_seconds(_rate(table), available, limit) == _brute_force(table, row, available, limit)


def _one(row: TariffRow) -> Rate:
    return _rate(TariffTable("t", decimals=4, steps=Steps(60, 60), rows=(row,)))


def test_worked_examples() -> None:
    # 60/60 at 0.10/min: EUR 0.25 pays two minutes, not three; EUR 0.09 not even one
    ten_cents = _one(TariffRow("31", "NL", rate=100_000, steps=Steps(60, 60)))
    assert max_seconds(ten_cents, 250_000, 7200) == 120
    assert max_seconds(ten_cents, 90_000, 7200) == 0
    assert max_seconds(ten_cents, 250_000, 100) == 100  # the limit, inside the grid
    # 30/6 at 0.06/min with a 0.05 connect fee: 0.05 + 0.03 (30 s) + 0.006 per 6 s
    fee = _one(TariffRow("31", "NL", rate=60_000, connect_fee=50_000, steps=Steps(30, 6)))
    assert max_seconds(fee, 80_000, 7200) == 30
    assert max_seconds(fee, 86_000, 7200) == 36
    # a free destination is limited only by the cap
    free = _one(TariffRow("31", "free", rate=0))
    assert max_seconds(free, 0, 3600) == 3600


def test_longest_prefix_and_versions_like_the_reference() -> None:
    v1 = TariffTable(
        "t", version=1, rows=(TariffRow("31", "NL", 1), TariffRow("316", "NL mobile", 2))
    )
    v2 = TariffTable("t", version=2, effective_from=NOW, rows=(TariffRow("31", "NL", 3),))
    book = RateBook.from_tables({"t": [v1, v2]})
    before = book.find("t", "31612345678", datetime(2026, 1, 1, tzinfo=UTC))
    assert before is not None
    assert (before.prefix, before.version) == ("316", "t@1")
    now = book.find("t", "31612345678", NOW)
    assert now is not None
    assert (now.prefix, now.version) == ("31", "t@2")
    assert book.find("t", "44123456", NOW) is None
    assert book.find("nope", "31612345678", NOW) is None
