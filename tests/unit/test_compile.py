"""Compiling tariff tables to arrays: deep tries, bounds and errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.layout import MONEY_MAX, PAD_DIGITS
from rater.errors import TariffError
from rater.pipeline.rate import rate_batch
from rater.tariffs.compile import compile_tables, epoch_ceil
from rater.tariffs.model import Steps, TariffRow, TariffTable


def _longest(prefixes: list[str], number: str) -> str | None:
    """The brute-force match: the longest prefix; a short number (under 6 digits) matches
    only a prefix that is the whole number (docs/DESIGN.md section 4)."""
    if len(number) < 6:
        return number if number in prefixes else None
    found = [p for p in prefixes if number.startswith(p)]
    return max(found, key=len) if found else None


@pytest.mark.parametrize("small_root_below", [0, 10**9], ids=["5-digit root", "3-digit root"])
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text("0123456789", min_size=1, max_size=PAD_DIGITS), min_size=1, max_size=40, unique=True
    ),
    st.lists(st.text("0123456789", min_size=1, max_size=PAD_DIGITS), min_size=1, max_size=40),
)
def test_trie_finds_the_longest_prefix_at_every_depth(
    small_root_below: int, prefixes: list[str], tails: list[str]
) -> None:
    """Prefixes of 1-17 digits, numbers built on them and random ones, against brute force."""
    table = TariffTable(name="t", rows=tuple(TariffRow(p, p, rate=1) for p in prefixes))
    compiled = compile_tables({"t": [table]}, small_root_below=small_root_below)
    assert (compiled.ver_root[0] < 0) == (small_root_below > 0)
    numbers = [(prefixes[i % len(prefixes)] + tail)[:PAD_DIGITS] for i, tail in enumerate(tails)]
    numbers += tails
    size = len(numbers)
    result = rate_batch(
        compiled,
        np.zeros(size, np.int32),
        np.full(size, -1, np.int32),
        np.array([int(n) for n in numbers], np.int64),
        np.array([len(n) for n in numbers], np.int8),
        np.zeros(size, np.int64),
        np.ones(size, np.int32),
    )
    for number, row in zip(numbers, result.sell_row, strict=True):
        expected = _longest(prefixes, number)
        got = compiled.row_prefix[row] if row >= 0 else None
        assert got == expected, number


def test_lookup_arrays_and_names() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    a1 = TariffTable(name="a", rows=(TariffRow("1", "x", 1), TariffRow("12", "y", 2)))
    a2 = TariffTable(name="a", version=2, effective_from=t0, rows=(TariffRow("1", "z", 3),))
    b1 = TariffTable(
        name="b",
        decimals=2,
        steps=Steps(60, 60),
        rows=(TariffRow("4", "w", 4, steps=Steps(30, 6)),),
    )
    compiled = compile_tables({"a": [a2, a1], "b": [b1]})
    assert compiled.table_index("b") == 1
    assert compiled.table_index("nope") == -1
    assert compiled.table_indexes(["b", "a", "c"]).tolist() == [1, 0, -1]
    assert compiled.ver_keys == ("a@1", "a@2", "b@1")  # versions ordered by time
    assert compiled.ver_from[1] == int(t0.timestamp())
    assert list(compiled.row_version_key) == ["a@1", "a@1", "a@2", "b@1"]
    assert list(compiled.row_destination) == ["x", "y", "z", "w"]
    assert compiled.row_decimals(3) == 2
    assert compiled.row_steps(3) == Steps(30, 6)
    assert compiled.row_steps(0) == Steps(1, 1)


def test_epoch_ceil_rounds_partial_seconds_up() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    assert epoch_ceil(t0) == int(t0.timestamp())
    assert epoch_ceil(t0 + timedelta(microseconds=1)) == int(t0.timestamp()) + 1
    assert epoch_ceil(datetime(1970, 1, 1)) == 0  # naive is UTC


@pytest.mark.parametrize(
    ("row", "steps", "message"),
    [
        (TariffRow("1", "x", MONEY_MAX + 1, line=4), None, r"line 4\): rate"),
        (TariffRow("1", "x", 1, connect_fee=-1, line=5), None, r"line 5\): connect_fee"),
        (TariffRow("1", "x", 1, first_rate=MONEY_MAX + 1), None, "first_rate"),
        (TariffRow("1", "x", 1), Steps(2_000_000, 1), "steps 2000000/1"),
        (TariffRow("1" * (PAD_DIGITS + 1), "x", 1, line=9), None, "line 9: prefix"),
        (TariffRow("+1", "x", 1), None, "prefix '\\+1'"),
    ],
)
def test_unusable_rows_are_refused(row: TariffRow, steps: Steps | None, message: str) -> None:
    table = TariffTable(name="t", rows=(row,), steps=steps or Steps(1, 1))
    with pytest.raises(TariffError, match=message):
        compile_tables({"t": [table]})


def test_unusable_tables_are_refused() -> None:
    with pytest.raises(TariffError, match="has no versions"):
        compile_tables({"t": []})
    with pytest.raises(TariffError, match="filed under table 'u'"):
        compile_tables({"u": [TariffTable(name="t")]})
