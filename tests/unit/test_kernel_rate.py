"""The numba kernel against the Decimal reference on random tables and CDRs (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernels.layout import MAX_BILLSEC, MONEY_MAX
from rater import reference
from rater.errors import TariffError
from rater.money import Rounding
from rater.pipeline.rate import rate_batch
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import Steps, TariffRow, TariffTable

T0 = datetime(2026, 11, 1, tzinfo=UTC)
#: a few instants shared by versions, row dates and CDR start times, so boundaries get hit
MOMENTS = [T0 + timedelta(hours=h) for h in range(5)]
DIGITS = "123"  # a small alphabet: prefixes nest and numbers hit them often

steps_st = st.builds(Steps, st.sampled_from([0, 1, 6, 30, 60, 90]), st.sampled_from([1, 6, 30, 60]))
money_st = st.one_of(
    st.integers(0, 2_000_000),
    st.sampled_from([0, 1, 99_999, 100_000, 123_457, 999_999_999, MONEY_MAX]),
)
moment_st = st.sampled_from(MOMENTS)


@st.composite
def version_rows(
    draw: st.DrawFn, version_index: int, version_from: datetime | None
) -> tuple[TariffRow, ...]:
    rows: dict[tuple[str, datetime | None], TariffRow] = {}
    for line in range(draw(st.integers(0, 12))):
        prefix = draw(st.text(DIGITS, min_size=1, max_size=4))
        effective_from = draw(st.none() | moment_st)
        effective_to = draw(st.none() | moment_st)
        # A row without a date is ordered at its version's time: one key per prefix and date.
        rows[(prefix, effective_from or version_from)] = TariffRow(
            prefix=prefix,
            destination=f"v{version_index} line {line}",
            rate=draw(money_st),
            connect_fee=draw(st.sampled_from([0, 0, 10_000, 12_345])),
            steps=draw(st.none() | steps_st),
            first_rate=draw(st.none() | money_st),
            effective_from=effective_from,
            effective_to=effective_to,
            line=line + 2,
        )
    return tuple(rows.values())


@st.composite
def table_versions(draw: st.DrawFn, name: str) -> list[TariffTable]:
    decimals = draw(st.integers(0, 6))
    rounding = draw(st.sampled_from(list(Rounding)))
    count = draw(st.integers(1, 3))
    versions = []
    for index in range(count):
        version_from = None if index == 0 else draw(moment_st)
        versions.append(
            TariffTable(
                name=name,
                decimals=decimals,
                rounding=rounding,
                steps=draw(steps_st),
                rows=draw(version_rows(index, version_from)),
                version=index + 1,
                effective_from=version_from,
            )
        )
    return versions


@dataclass(frozen=True)
class Cdr:
    number: str
    billsec: int
    at: datetime
    sell: int
    buy: int


@st.composite
def cdrs(draw: st.DrawFn, tables: int) -> list[Cdr]:
    result = []
    for _ in range(draw(st.integers(1, 30))):
        billsec = draw(
            st.sampled_from([0, 1, 6, 7, 29, 30, 31, 59, 60, 61, 90, 91, 3600, MAX_BILLSEC])
            | st.integers(0, 10_000)
        )
        at = draw(moment_st) + timedelta(seconds=draw(st.sampled_from([-1, 0, 0, 1])))
        result.append(
            Cdr(
                number=draw(st.text(DIGITS, min_size=1, max_size=7)),
                billsec=billsec,
                at=at,
                sell=draw(st.integers(-1, tables - 1)),
                buy=draw(st.integers(-1, tables - 1)),
            )
        )
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, list[TariffTable]], list[Cdr]]:
    count = draw(st.integers(1, 3))
    tables = {f"t{i}": draw(table_versions(f"t{i}")) for i in range(count)}
    return tables, draw(cdrs(count))


def _expect(versions: list[TariffTable] | None, cdr: Cdr) -> reference.RefRated | None:
    if versions is None:
        return None
    return reference.rate(versions, cdr.number, cdr.billsec, cdr.at)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.sampled_from([0, 10**9]))  # both trie root layouts
def test_kernel_matches_reference(
    scenario: tuple[dict[str, list[TariffTable]], list[Cdr]], small_root_below: int
) -> None:
    tables, batch = scenario
    compiled = compile_tables(tables, small_root_below=small_root_below)
    names = list(tables)
    result = rate_batch(
        compiled,
        np.array([c.sell for c in batch], dtype=np.int32),
        np.array([c.buy for c in batch], dtype=np.int32),
        np.array([int(c.number) for c in batch], dtype=np.int64),
        np.array([len(c.number) for c in batch], dtype=np.int8),
        np.array([int(c.at.timestamp()) for c in batch], dtype=np.int64),
        np.array([c.billsec for c in batch], dtype=np.int32),
    )
    for i, cdr in enumerate(batch):
        sides = (
            (cdr.sell, result.sell_row, result.billable, result.price),
            (cdr.buy, result.buy_row, result.buy_billable, result.cost),
        )
        for table, rows, billable, money in sides:
            expected = _expect(tables[names[table]] if table >= 0 else None, cdr)
            row = int(rows[i])
            if expected is None:
                assert row == -1, (i, cdr)
                assert billable[i] == 0
                assert money[i] == 0
                continue
            assert row >= 0, (i, cdr, expected)
            assert compiled.row_version_key[row] == expected.table, (i, cdr)
            assert compiled.row_prefix[row] == expected.prefix, (i, cdr)
            assert compiled.row_destination[row] == expected.destination, (i, cdr)
            assert billable[i] == expected.billable_seconds, (i, cdr)
            assert money[i] == expected.price_micro, (i, cdr, expected)


def _one_table(*rows: TariffRow, **table: object) -> dict[str, list[TariffTable]]:
    return {"t": [TariffTable(name="t", rows=rows, **table)]}  # type: ignore[arg-type]


def _rate_one(
    tables: dict[str, list[TariffTable]], number: str, billsec: int, at: datetime
) -> tuple[int, int, int]:
    compiled = compile_tables(tables)
    result = rate_batch(
        compiled,
        np.zeros(1, np.int32),
        np.full(1, -1, np.int32),
        np.array([int(number)], np.int64),
        np.array([len(number)], np.int8),
        np.array([int(at.timestamp())], np.int64),
        np.array([billsec], np.int32),
    )
    return int(result.sell_row[0]), int(result.billable[0]), int(result.price[0])


def test_worked_example_60_60() -> None:
    tables = _one_table(TariffRow("44", "UK", rate=100_000), steps=Steps(60, 60), decimals=2)
    assert _rate_one(tables, "442071234567", 61, T0) == (0, 120, 200_000)  # 0.20
    assert _rate_one(tables, "442071234567", 60, T0) == (0, 60, 100_000)
    assert _rate_one(tables, "442071234567", 0, T0) == (0, 0, 0)


def test_worked_example_30_6() -> None:
    tables = _one_table(TariffRow("1", "NANP", rate=60_000), steps=Steps(30, 6))
    assert _rate_one(tables, "12125551234", 10, T0)[1:] == (30, 30_000)
    assert _rate_one(tables, "12125551234", 31, T0)[1:] == (36, 36_000)


def test_billsec_zero_costs_no_connect_fee() -> None:
    tables = _one_table(TariffRow("1", "NANP", rate=60_000, connect_fee=50_000))
    assert _rate_one(tables, "12125551234", 0, T0) == (0, 0, 0)
    assert _rate_one(tables, "12125551234", 1, T0) == (0, 1, 51_000)


def test_closed_code_falls_to_shorter_prefix() -> None:
    closes = T0 + timedelta(days=1)
    tables = _one_table(
        TariffRow("44", "UK", rate=100_000),
        TariffRow("447", "UK mobile", rate=300_000, effective_to=closes),
        steps=Steps(60, 60),
    )
    assert _rate_one(tables, "447700900123", 60, closes - timedelta(seconds=1))[2] == 300_000
    assert _rate_one(tables, "447700900123", 60, closes)[2] == 100_000


def test_number_shorter_than_prefix_does_not_match_it() -> None:
    tables = _one_table(TariffRow("4", "4", rate=1), TariffRow("4470000", "long", rate=2))
    row, _, _ = _rate_one(tables, "447000", 60, T0)
    assert row == 0  # '4', not '4470000'


def test_half_up_and_down_rounding() -> None:
    # 0.00125 / min for 60 s: half-up to 3 decimals is 0.001, 0.0015 -> 0.002.
    row = TariffRow("1", "x", rate=1_500)
    for mode, expected in ((Rounding.HALF_UP, 2_000), (Rounding.DOWN, 1_000), (Rounding.UP, 2_000)):
        tables = _one_table(row, steps=Steps(60, 60), decimals=3, rounding=mode)
        assert _rate_one(tables, "1", 60, T0)[2] == expected


def test_duplicate_prefix_and_date_is_refused() -> None:
    tables = _one_table(TariffRow("44", "a", rate=1, line=2), TariffRow("44", "b", rate=2, line=3))
    with pytest.raises(TariffError, match="line 3: prefix 44 twice"):
        compile_tables(tables)


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(TariffError, match="prefix '4a'"):
        compile_tables(_one_table(TariffRow("4a", "x", rate=1, line=7)))


def test_rate_batch_validates_inputs() -> None:
    compiled = compile_tables(_one_table(TariffRow("1", "x", rate=1)))
    one = np.zeros(1, np.int32)
    good = {
        "sell_table": one,
        "buy_table": one,
        "number": np.ones(1, np.int64),
        "number_len": np.ones(1, np.int8),
        "start_epoch": np.zeros(1, np.int64),
        "billsec": one,
    }
    with pytest.raises(ValueError, match="billsec outside"):
        rate_batch(compiled, **{**good, "billsec": np.array([-1], np.int32)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sell_table holds an index"):
        rate_batch(compiled, **{**good, "sell_table": np.array([1], np.int32)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"billsec has shape \(2,\), expected \(1,\)"):
        rate_batch(compiled, **{**good, "billsec": np.zeros(2, np.int32)})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="number is float64"):
        rate_batch(compiled, **{**good, "number": np.ones(1, np.float64)})  # type: ignore[arg-type]
    assert len(rate_batch(compiled, **good)) == 1  # type: ignore[arg-type]


def test_largest_rate_and_longest_call_stay_exact() -> None:
    """MONEY_MAX per minute for MAX_BILLSEC seconds: the overflow-safe path, to the micro-unit."""
    row = TariffRow("1", "x", rate=MONEY_MAX, connect_fee=MONEY_MAX, first_rate=MONEY_MAX - 1)
    for steps in (Steps(1, 1), Steps(7, 13), Steps(60, 60)):
        tables = _one_table(row, steps=steps, decimals=3, rounding=Rounding.HALF_UP)
        table = tables["t"][0]
        expected = reference.price_micro(table, row, MAX_BILLSEC)
        _, billable, price = _rate_one(tables, "1", MAX_BILLSEC, T0)
        assert (billable, price) == (steps.billable(MAX_BILLSEC), expected)
        assert billable < 2**31
