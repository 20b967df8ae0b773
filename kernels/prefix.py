"""Longest-prefix match against compiled tariff versions, for numba kernels.

The arrays are those of rater.tariffs.compile.CompiledTariffs (its docstring explains the
layout; kernels/layout.py names the columns). A match has three steps, split so a batch
kernel can interleave many CDRs:

1. `walk_start`: the version in force, the number in the PAD_DIGITS-digit padded space (17),
   the root entry;
2. `walk_step` per trie level (at most 6 below the root): one dependent array read each;
3. `row_in_force`: from the longest prefix's node, the latest started row; if that code is
   closed, not yet started, or longer than the number, the parent (next shorter) prefix. A
   short number (fewer than E164_MIN_DIGITS digits) matches only a prefix of its own length.

`match_row` chains them for one number. Helpers take arrays as arguments: callers must be
compiled with `_nrt=False` (no reference counting), else each call pays atomic
increments/decrements on every array, about 12 ns per call measured.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kernels.layout import (
    E164_MIN_DIGITS,
    LEVELS,
    NO_NODE,
    NODE_LEN,
    NODE_PARENT,
    NODE_ROW_HI,
    NODE_ROW_LO,
    PAD_DIGITS,
    ROW_FROM,
    ROW_NODE,
    ROW_TO,
)

POW10 = np.array([10**k for k in range(PAD_DIGITS + 1)], dtype=np.int64)


@njit(inline="always", cache=True)
def padded_number(digits, length):  # type: ignore[no-untyped-def]
    """Digits of `length` digits in the PAD_DIGITS-digit padded space; -1 when it cannot be
    matched."""
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
def walk_start(table, padded, at, table_ver_lo, table_ver_hi, ver_from, ver_root, trie):  # type: ignore[no-untyped-def]  # noqa: PLR0917
    """The root trie entry for a padded number (NO_NODE when there is no table or number)."""
    version = version_at(table, at, table_ver_lo, table_ver_hi, ver_from)
    if version < 0 or padded < 0:
        return NO_NODE
    root = ver_root[version]
    if root >= 0:  # a 5-digit root
        return trie[root + padded // 10**12]
    # A small version's 3-digit root, then the level of digits 4-5: its blocks line up with
    # the 5-digit root's, so the walk goes on the same way.
    entry = trie[-root - 1 + padded // 10**14]
    if entry < 0:
        return entry
    return trie[entry + (padded // 10**12) % 100]


@njit(inline="always", cache=True)
def digit_pair(padded, level):  # type: ignore[no-untyped-def]
    """Digits 6+2(level-1) and 7+2(level-1) of the padded number: the index at `level`.

    Literal divisors: LLVM turns each into a multiplication (a run-time divisor is an idiv of
    ~40 cycles); `level` is the same for a whole pass, so the branches predict perfectly.
    """
    if level == 1:
        return (padded // 10**10) % 100
    if level == 2:
        return (padded // 10**8) % 100
    if level == 3:
        return (padded // 10**6) % 100
    if level == 4:
        return (padded // 10**4) % 100
    if level == 5:
        return (padded // 100) % 100
    return padded % 100


@njit(inline="always", cache=True)
def walk_step(entry, padded, level, trie):  # type: ignore[no-untyped-def]
    """One level down from a child-block entry; leaves (entry < 0) stay as they are."""
    if entry < 0:
        return entry
    return trie[entry + digit_pair(padded, level)]


@njit(inline="always", cache=True)
def row_in_force(entry, length, at, node_data, row_data):  # type: ignore[no-untyped-def]
    """Row id in force at `at` from a leaf entry, falling back to shorter prefixes; -1: none."""
    if entry == NO_NODE:
        return -1
    code = -entry - 2
    short = length < E164_MIN_DIGITS  # matched by its own length only
    if code & 1:  # a prefix with one row: check it without reading the node record
        row = code >> 1
        node_and_length = row_data[row, ROW_NODE]
        prefix_length = node_and_length & 31
        if (
            prefix_length <= length
            and (prefix_length == length or not short)
            and row_data[row, ROW_FROM] <= at
            and row_data[row, ROW_TO] > at
        ):
            return row
        node = node_data[node_and_length >> 5, NODE_PARENT]
    else:
        node = code >> 1
    while node >= 0:
        prefix_length = node_data[node, NODE_LEN]
        if short and prefix_length < length:
            return -1  # parents are shorter still
        if prefix_length == length or (prefix_length < length and not short):
            # The latest started row of this prefix; rows are ordered by date.
            row = node_data[node, NODE_ROW_HI] - 1
            row_lo = node_data[node, NODE_ROW_LO]
            while row >= row_lo and row_data[row, ROW_FROM] > at:
                row -= 1
            if row >= row_lo and row_data[row, ROW_TO] > at:
                return row
        node = node_data[node, NODE_PARENT]  # closed, not started or too long: shorter prefix
    return -1


@njit(inline="always", cache=True)
def match_row(table, digits, length, at, tariffs):  # type: ignore[no-untyped-def]
    """Row id in force for one number at `at` in `table`'s version then in force; -1 if none.

    tariffs: CompiledTariffs.kernel_args() (table_ver_lo, table_ver_hi, ver_from, ver_root,
    trie, node_data, row_data).
    """
    table_ver_lo, table_ver_hi, ver_from, ver_root, trie, node_data, row_data = tariffs
    padded = padded_number(digits, length)
    entry = walk_start(table, padded, at, table_ver_lo, table_ver_hi, ver_from, ver_root, trie)
    for level in range(1, LEVELS):
        entry = walk_step(entry, padded, level, trie)
    return row_in_force(entry, length, at, node_data, row_data)
