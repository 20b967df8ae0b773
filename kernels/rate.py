"""The batch rating kernel: sell price and buy cost of every CDR in one pass.

Pure numba over arrays: numbers (int64 digits + int8 length), start times (epoch s), billsec,
the sell and buy table of each CDR, and the compiled tariff arrays (rater.tariffs.compile,
CompiledTariffs.kernel_args() order). Outputs are written into preallocated arrays; a CDR with
no match gets row -1 and zero billable seconds and money (sentinels, never exceptions).
"""

from __future__ import annotations

from numba import njit, prange

from kernels.prefix import match_row
from kernels.price import price_micro
from kernels.steps import billable_seconds

ROW_RATE = 2
ROW_FEE = 3
ROW_FIRST = 4
ROW_MIN = 5
ROW_INC = 6
ROW_ROUND = 7


@njit(inline="always", cache=True)
def _price_row(row: int, billsec: int, row_data) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(billable seconds, price micro) of `billsec` on compiled row `row`."""
    minimum = row_data[row, ROW_MIN]
    billable = billable_seconds(billsec, minimum, row_data[row, ROW_INC])
    rounding = row_data[row, ROW_ROUND]
    price = price_micro(
        billable,
        minimum,
        row_data[row, ROW_RATE],
        row_data[row, ROW_FEE],
        row_data[row, ROW_FIRST],
        rounding >> 2,
        rounding & 3,
    )
    return billable, price


@njit(inline="always", cache=True)
def _rate_one(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    i,
    sell_table,
    buy_table,
    number,
    number_len,
    start,
    billsec,
    table_ver_lo,
    table_ver_hi,
    ver_from,
    bucket_lo,
    bucket_node,
    bound_value,
    bound_node,
    node_data,
    row_data,
    sell_row,
    buy_row,
    billable,
    buy_billable,
    price,
    cost,
) -> None:
    digits = number[i]
    length = number_len[i]
    at = start[i]
    seconds = billsec[i]
    row = match_row(
        sell_table[i],
        digits,
        length,
        at,
        table_ver_lo,
        table_ver_hi,
        ver_from,
        bucket_lo,
        bucket_node,
        bound_value,
        bound_node,
        node_data,
        row_data,
    )
    sell_row[i] = row
    if row >= 0:
        billable[i], price[i] = _price_row(row, seconds, row_data)
    else:
        billable[i] = 0
        price[i] = 0
    row = match_row(
        buy_table[i],
        digits,
        length,
        at,
        table_ver_lo,
        table_ver_hi,
        ver_from,
        bucket_lo,
        bucket_node,
        bound_value,
        bound_node,
        node_data,
        row_data,
    )
    buy_row[i] = row
    if row >= 0:
        buy_billable[i], cost[i] = _price_row(row, seconds, row_data)
    else:
        buy_billable[i] = 0
        cost[i] = 0


@njit(cache=True, nogil=True)
def rate_kernel(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    sell_table,
    buy_table,
    number,
    number_len,
    start,
    billsec,
    table_ver_lo,
    table_ver_hi,
    ver_from,
    bucket_lo,
    bucket_node,
    bound_value,
    bound_node,
    node_data,
    row_data,
    sell_row,
    buy_row,
    billable,
    buy_billable,
    price,
    cost,
) -> None:
    """Rate every CDR of a batch, single-threaded (the pipeline runs one per process)."""
    for i in range(number.shape[0]):
        _rate_one(
            i,
            sell_table,
            buy_table,
            number,
            number_len,
            start,
            billsec,
            table_ver_lo,
            table_ver_hi,
            ver_from,
            bucket_lo,
            bucket_node,
            bound_value,
            bound_node,
            node_data,
            row_data,
            sell_row,
            buy_row,
            billable,
            buy_billable,
            price,
            cost,
        )


@njit(cache=True, nogil=True, parallel=True)
def rate_kernel_parallel(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    sell_table,
    buy_table,
    number,
    number_len,
    start,
    billsec,
    table_ver_lo,
    table_ver_hi,
    ver_from,
    bucket_lo,
    bucket_node,
    bound_value,
    bound_node,
    node_data,
    row_data,
    sell_row,
    buy_row,
    billable,
    buy_billable,
    price,
    cost,
) -> None:
    """The same with prange over CDRs (measured in the benchmark; not used by the pipeline)."""
    for i in prange(number.shape[0]):
        _rate_one(
            i,
            sell_table,
            buy_table,
            number,
            number_len,
            start,
            billsec,
            table_ver_lo,
            table_ver_hi,
            ver_from,
            bucket_lo,
            bucket_node,
            bound_value,
            bound_node,
            node_data,
            row_data,
            sell_row,
            buy_row,
            billable,
            buy_billable,
            price,
            cost,
        )
