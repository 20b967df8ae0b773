"""The batch rating kernel: sell price and buy cost of every CDR in one pass.

Pure numba over arrays: numbers (int64 digits + int8 length), start times (epoch s), billsec,
the sell and buy table of each CDR, and the compiled tariff arrays as one tuple in
kernels.layout.TARIFF_ARGS order (CompiledTariffs.kernel_args() builds it). Outputs are written into
preallocated arrays; a CDR with no match gets row -1 and zero billable seconds and money
(sentinels, never exceptions).

CDRs are processed in groups of GROUP, one trie level at a time for the whole group (sell and
buy), so the CPU has 2 * GROUP independent memory reads in flight instead of one dependent
chain per CDR: on a 287,000-prefix table with Zipf-popular destinations the tail of cold
prefixes misses every cache, and overlapping those misses is most of the speed
(benchmarks/bench_kernel.py measures both ways).
"""

from __future__ import annotations

from typing import Any

from numba import njit, prange

from kernels.layout import LEVELS, ROW_BASE60, ROW_RATE, ROW_ROUND, ROW_SAFE_REST, ROW_STEPS
from kernels.prefix import padded_number, row_in_force, walk_start, walk_step
from kernels.price import price_micro
from kernels.steps import billable_seconds

GROUP = 32  # CDRs per interleaved group; 16-64 measure within a few percent
SCRATCH_ROWS = 3  # padded number, sell entry, buy entry

#: numba without its reference-counting runtime: the kernels allocate nothing, and helpers
#: taking arrays then cost nothing per call (with it: ~12 ns of atomic refcounts per call).
NO_REFCOUNT: dict[str, Any] = {"_nrt": False}


@njit(inline="always", cache=True)
def price_row(row, billsec, row_data):  # type: ignore[no-untyped-def]
    """(billable seconds, price micro) of `billsec` seconds on compiled row `row`."""
    steps = row_data[row, ROW_STEPS]
    minimum = steps >> 32
    billable = billable_seconds(billsec, minimum, steps & 0xFFFFFFFF)
    rounding = row_data[row, ROW_ROUND]
    price = price_micro(
        billable, minimum, row_data[row, ROW_RATE], row_data[row, ROW_BASE60],
        row_data[row, ROW_SAFE_REST], rounding >> 2, rounding & 3,
    )  # fmt: skip
    return billable, price


@njit(inline="always", cache=True)
def rate_group(lo, hi, cdrs, tariffs, out, scratch):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """Rate CDRs lo..hi-1 (at most GROUP), interleaving their memory reads level by level."""
    sell_table, buy_table, number, number_len, start, billsec = cdrs
    sell_row, buy_row, billable, buy_billable, price, cost = out
    table_ver_lo, table_ver_hi, ver_from, ver_root, trie, node_data, row_data = tariffs
    padded = scratch[0]
    sell_entry = scratch[1]
    buy_entry = scratch[2]
    for j in range(hi - lo):
        i = lo + j
        number_padded = padded_number(number[i], number_len[i])
        padded[j] = number_padded
        sell_entry[j] = walk_start(
            sell_table[i], number_padded, start[i], table_ver_lo, table_ver_hi, ver_from,
            ver_root, trie,
        )  # fmt: skip
        buy_entry[j] = walk_start(
            buy_table[i], number_padded, start[i], table_ver_lo, table_ver_hi, ver_from,
            ver_root, trie,
        )  # fmt: skip
    for level in range(1, LEVELS):
        inner = 0
        for j in range(hi - lo):
            sell_entry[j] = walk_step(sell_entry[j], padded[j], level, trie)
            buy_entry[j] = walk_step(buy_entry[j], padded[j], level, trie)
            inner += (sell_entry[j] >= 0) + (buy_entry[j] >= 0)
        if inner == 0:
            break
    for j in range(hi - lo):
        i = lo + j
        sell_row[i] = row_in_force(sell_entry[j], number_len[i], start[i], node_data, row_data)
        buy_row[i] = row_in_force(buy_entry[j], number_len[i], start[i], node_data, row_data)
    for i in range(lo, hi):
        row = sell_row[i]
        if row >= 0:
            billable[i], price[i] = price_row(row, billsec[i], row_data)
        else:
            billable[i] = 0
            price[i] = 0
        row = buy_row[i]
        if row >= 0:
            buy_billable[i], cost[i] = price_row(row, billsec[i], row_data)
        else:
            buy_billable[i] = 0
            cost[i] = 0


@njit(cache=True, nogil=True, **NO_REFCOUNT)
def rate_kernel(cdrs, tariffs, out, scratch):  # type: ignore[no-untyped-def]
    """Rate a batch single-threaded (the pipeline runs one kernel per worker process).

    cdrs = (sell_table, buy_table, number, number_len, start, billsec);
    out = (sell_row, buy_row, billable, buy_billable, price, cost);
    scratch: int64 (SCRATCH_ROWS, GROUP). Compiled without reference counting (_nrt=False):
    it allocates nothing, and helper calls taking arrays then cost nothing.
    """
    size = cdrs[2].shape[0]
    for lo in range(0, size, GROUP):
        rate_group(lo, min(lo + GROUP, size), cdrs, tariffs, out, scratch)


@njit(cache=True, nogil=True, parallel=True, **NO_REFCOUNT)
def rate_kernel_parallel(cdrs, tariffs, out, scratch):  # type: ignore[no-untyped-def]
    """The same with prange over groups; scratch is (groups, SCRATCH_ROWS, GROUP).

    Measured in the benchmark only: the pipeline scales with processes, not threads.
    """
    size = cdrs[2].shape[0]
    for group in prange((size + GROUP - 1) // GROUP):
        lo = group * GROUP
        rate_group(lo, min(lo + GROUP, size), cdrs, tariffs, out, scratch[group])
