"""Longest-prefix match against a compiled tariff version, for numba kernels.

The arrays are those of rater.tariffs.compile.CompiledTariffs (its docstring explains the
layout): a bucket index on the first digits, a binary search among flattened prefix
intervals, then a walk up to shorter prefixes while a code is closed or not yet started.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PAD_DIGITS = 18
BUCKET_SPAN = 10**14  # 10 ** (PAD_DIGITS - BUCKET_DIGITS)
BUCKET_STRIDE = 10**4 + 1  # BUCKETS + 1 entries per version
POW10 = np.array([10**k for k in range(PAD_DIGITS + 1)], dtype=np.int64)

# rater.tariffs.compile NODE_* and ROW_* columns
NODE_LEN = 0
NODE_PARENT = 1
NODE_ROW_LO = 2
NODE_ROW_HI = 3
ROW_FROM = 0
ROW_TO = 1


@njit(inline="always", cache=True)
def padded_number(digits, length):  # type: ignore[no-untyped-def]
    """Digits of `length` digits in the 18-digit padded space; -1 when it cannot be matched."""
    if length <= 0 or length > PAD_DIGITS or digits < 0 or digits >= POW10[length]:
        return -1
    return digits * POW10[PAD_DIGITS - length]


@njit(inline="always", cache=True)
def version_at(table, at, table_ver_lo, table_ver_hi, ver_from):  # type: ignore[no-untyped-def]
    """Version id of `table` in force at epoch second `at` (-1 for table -1)."""
    if table < 0:
        return -1
    lo = table_ver_lo[table]
    version = table_ver_hi[table] - 1
    while version > lo and ver_from[version] > at:  # tables have a handful of versions
        version -= 1
    return version


@njit(inline="always", cache=True)
def longest_node(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    version, padded, bucket_lo, bucket_node, bound_value, bound_node
):
    """Node of the longest prefix covering `padded` in `version`, ignoring dates; -1 if none."""
    slot = version * BUCKET_STRIDE + padded // BUCKET_SPAN
    lo = bucket_lo[slot]
    hi = bucket_lo[slot + 1]
    first = lo
    while lo < hi:  # first boundary > padded
        mid = (lo + hi) >> 1
        if bound_value[mid] <= padded:
            lo = mid + 1
        else:
            hi = mid
    if lo > first:
        return bound_node[lo - 1]
    return bucket_node[slot]


@njit(inline="always", cache=True)
def match_row(  # type: ignore[no-untyped-def]  # noqa: PLR0917
    table,
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
):
    """Row id in force for a number at `at` in `table`'s version then in force; -1 if none."""
    version = version_at(table, at, table_ver_lo, table_ver_hi, ver_from)
    if version < 0:
        return -1
    padded = padded_number(digits, length)
    if padded < 0:
        return -1
    node = longest_node(version, padded, bucket_lo, bucket_node, bound_value, bound_node)
    while node >= 0:
        if node_data[node, NODE_LEN] <= length:
            # The latest started row of this prefix; rows are ordered by date.
            row = node_data[node, NODE_ROW_HI] - 1
            row_lo = node_data[node, NODE_ROW_LO]
            while row >= row_lo and row_data[row, ROW_FROM] > at:
                row -= 1
            if row >= row_lo and row_data[row, ROW_TO] > at:
                return row
        node = node_data[node, NODE_PARENT]  # closed, not started or too long: shorter prefix
    return -1
