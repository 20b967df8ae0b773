"""Compile tariff tables (all their versions) into flat numpy arrays for the rating kernel.

Layout (all versions of all tables in one set of arrays; ids are global):

- Numbers and prefixes live in a 17-digit "padded" space: digits d of length L become
  d * 10**(17 - L), so a prefix p of length k covers the interval [p * 10**(17-k),
  (p + 1) * 10**(17-k)). Nested prefixes give nested intervals; each version's intervals are
  flattened into sorted, disjoint pieces that each name the longest prefix covering them (a
  "node").
- Those pieces are indexed by a multibit trie: a root block per version of 10**5 entries (the
  first five digits; 10**3 for a small version), then blocks of 100 entries (two more digits
  each) only where a piece starts inside the range an entry covers. An entry is either a
  leaf, -(code + 2), naming what is in force over its whole range, or the offset of its child
  block (>= 0). A leaf code is 2 * row + 1 for a prefix with a single row (the common match
  reads no node record), 2 * node for a prefix with several rows, and -1 (entry -1) for no
  prefix. A 9-digit prefix is found in 3 dependent array reads whatever the table size; a
  binary search over the 300,000 pieces of the phonenumbers geodata table needed ~12 and ran at
  less than half the speed; a 4-digit root needed one read more and measured 1.3-1.7x slower
  (on a shared, noisy 2-core machine).
- A node has its prefix length (a number shorter than the prefix must not match it), its
  parent (the next shorter prefix in the same version: where a closed or not yet started code
  falls to) and its rows, ordered by date.
- A row is one 64-byte record (ROW_* columns of an int64 matrix): one cache line per match.

Dates are int64 epoch seconds: starts are compared as `start_time >= ceil(effective_from)`,
which equals the datetime comparison for whole-second start times (CDR times are seconds).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.layout import (
    BLOCK_DIGITS,
    INT64_MAX,
    MONEY_MAX,
    NODE_COLUMNS,
    NODE_LEN,
    NODE_PARENT,
    NODE_ROW_HI,
    NODE_ROW_LO,
    PAD_DIGITS,
    ROOT_DIGITS,
    ROW_BASE60,
    ROW_COLUMNS,
    ROW_FROM,
    ROW_NODE,
    ROW_RATE,
    ROW_ROUND,
    ROW_SAFE_REST,
    ROW_STEPS,
    ROW_TO,
    SMALL_ROOT_BELOW,
    SMALL_ROOT_DIGITS,
    STEP_MAX,
    TARIFF_ARGS,
    TIME_MAX,
    TIME_MIN,
)
from rater.errors import TariffError
from rater.money import DECIMALS_MAX
from rater.tariffs.model import Steps, TariffRow, TariffTable

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)

Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]


def epoch_ceil(moment: datetime) -> int:
    """Epoch seconds, rounded up (naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return -((_EPOCH - moment) // _SECOND)


@dataclass(frozen=True, eq=False)
class CompiledTariffs:
    """Every version of every table as arrays the kernel reads (see the module docstring)."""

    table_names: tuple[str, ...]
    table_ver_lo: Int32Array  # per table: its versions are ids [lo, hi), by effective_from
    table_ver_hi: Int32Array
    ver_from: Int64Array  # per version: epoch s in force from (TIME_MIN for the first)
    ver_keys: tuple[str, ...]  # per version: 'name@version'
    ver_decimals: npt.NDArray[np.int8]
    ver_root: Int32Array  # per version: root block offset in `trie`; -(offset + 1): small root
    trie: Int32Array  # trie blocks of all versions: -(node + 2) for a leaf, else a block offset
    node_data: Int32Array  # (nodes, NODE_COLUMNS): NODE_* columns (kernels/layout.py)
    row_data: Int64Array  # (rows, ROW_COLUMNS): ROW_* columns (kernels/layout.py)
    row_version: Int32Array  # per row: its version id
    row_prefix: ObjectArray  # per row: its prefix (str)
    row_destination: ObjectArray  # per row: its destination name (str)
    row_version_key: ObjectArray  # per row: 'name@version' of its version
    row_line: Int32Array  # per row: line of the source file

    def table_index(self, name: str) -> int:
        """Index of a table by name; -1 if unknown."""
        try:
            return self.table_names.index(name)
        except ValueError:
            return -1

    def table_indexes(self, names: Sequence[str]) -> Int32Array:
        """Indexes of many table names (-1 for unknown ones), for a batch's sell/buy columns."""
        lookup = {name: i for i, name in enumerate(self.table_names)}
        return np.fromiter((lookup.get(n, -1) for n in names), dtype=np.int32, count=len(names))

    def row_steps(self, row: int) -> Steps:
        """The billing steps a row is priced with (its own, else its table's)."""
        packed = int(self.row_data[row, ROW_STEPS])
        return Steps(packed >> 32, packed & 0xFFFFFFFF)

    def row_decimals(self, row: int) -> int:
        """Decimals of the version a row belongs to (how its prices are written)."""
        return int(self.ver_decimals[int(self.row_version[row])])

    def kernel_args(self) -> tuple[npt.NDArray[Any], ...]:
        """The arrays the kernels take, in their order (kernels.layout.TARIFF_ARGS)."""
        return tuple(getattr(self, name) for name in TARIFF_ARGS)


@dataclass
class _Builder:
    """Accumulates versions; one per compile_tables call."""

    ver_from: list[int]
    ver_keys: list[str]
    ver_decimals: list[int]
    ver_root: list[int]
    trie: list[Int64Array]
    node_data: list[tuple[int, ...]]
    row_data: list[tuple[int, ...]]
    row_version: list[int]
    row_prefix: list[str]
    row_destination: list[str]
    row_line: list[int]
    trie_size: int = 0


def _version_order(table: TariffTable) -> tuple[bool, datetime, int]:
    moment = table.effective_from or _EPOCH
    return (table.effective_from is not None, moment, table.version)


def _check_money(table: TariffTable, row: TariffRow, field: str, value: int) -> int:
    if not 0 <= value <= MONEY_MAX:
        raise TariffError(
            f"{table.key} prefix {row.prefix} (line {row.line}): {field} {value} micro-units "
            f"is outside 0..{MONEY_MAX}"
        )
    return value


def _check_steps(table: TariffTable, row: TariffRow, steps: Steps) -> Steps:
    if steps.minimum > STEP_MAX or steps.increment > STEP_MAX:
        raise TariffError(
            f"{table.key} prefix {row.prefix} (line {row.line}): steps {steps} above {STEP_MAX} s"
        )
    return steps


def _row_record(table: TariffTable, row: TariffRow, rounding: int, node: int) -> tuple[int, ...]:
    steps = row.steps or table.steps
    if steps.minimum > STEP_MAX or steps.increment > STEP_MAX:
        _check_steps(table, row, steps)
    rate = row.rate
    first = rate if row.first_rate is None else row.first_rate
    fee = row.connect_fee
    if not (0 <= rate <= MONEY_MAX and 0 <= first <= MONEY_MAX and 0 <= fee <= MONEY_MAX):
        _check_money(table, row, "rate", rate)
        _check_money(table, row, "first_rate", first)
        _check_money(table, row, "connect_fee", fee)
    base60 = 60 * fee + first * steps.minimum
    record = [0] * ROW_COLUMNS  # filled by name: kernels/layout.py is the column contract
    record[ROW_FROM] = TIME_MIN if row.effective_from is None else epoch_ceil(row.effective_from)
    record[ROW_TO] = TIME_MAX if row.effective_to is None else epoch_ceil(row.effective_to)
    record[ROW_RATE] = rate
    record[ROW_BASE60] = base60
    record[ROW_SAFE_REST] = (INT64_MAX - base60) // max(rate, 1)
    record[ROW_STEPS] = (steps.minimum << 32) + steps.increment
    record[ROW_ROUND] = rounding
    record[ROW_NODE] = node * 32 + len(row.prefix)
    return tuple(record)


def _node_record(length: int, parent: int, row_lo: int, row_hi: int) -> tuple[int, ...]:
    record = [0] * NODE_COLUMNS
    record[NODE_LEN] = length
    record[NODE_PARENT] = parent
    record[NODE_ROW_LO] = row_lo
    record[NODE_ROW_HI] = row_hi
    return tuple(record)


def _padded_interval(prefix: str) -> tuple[int, int]:
    scale = 10 ** (PAD_DIGITS - len(prefix))
    value = int(prefix)
    return value * scale, (value + 1) * scale


def _flatten(prefixes: list[str], node_base: int) -> tuple[list[int], list[int], list[int]]:
    """Sorted prefixes -> (boundary values, boundary nodes, parent of each prefix).

    Walks the prefixes in lexicographic order (a depth-first walk of the nested intervals) with
    a stack of open intervals; each opening or closing emits the node then in force.
    """
    values = [0]
    nodes = [-1]
    parents: list[int] = []
    stack: list[tuple[str, int, int]] = []  # (prefix, node id, padded end)

    def emit(value: int, node: int) -> None:
        if values[-1] == value:
            nodes[-1] = node  # the later event at one point wins
        else:
            values.append(value)
            nodes.append(node)

    for index, prefix in enumerate(prefixes):
        while stack and not prefix.startswith(stack[-1][0]):
            _, _, end = stack.pop()
            emit(end, stack[-1][1] if stack else -1)
        parents.append(stack[-1][1] if stack else -1)
        start, end = _padded_interval(prefix)
        node = node_base + index
        emit(start, node)
        stack.append((prefix, node, end))
    while stack:
        _, _, end = stack.pop()
        emit(end, stack[-1][1] if stack else -1)
    return values, nodes, parents


def _add_version(
    builder: _Builder, table: TariffTable, in_force_from: int, small_root_below: int
) -> None:
    version_id = len(builder.ver_keys)
    builder.ver_from.append(in_force_from)
    builder.ver_keys.append(table.key)
    builder.ver_decimals.append(table.decimals)

    by_prefix: dict[str, list[TariffRow]] = {}
    for row in table.rows:
        if not (row.prefix.isdigit() and row.prefix.isascii() and len(row.prefix) <= PAD_DIGITS):
            raise TariffError(
                f"{table.key} line {row.line}: prefix {row.prefix!r} is not 1-{PAD_DIGITS} digits"
            )
        by_prefix.setdefault(row.prefix, []).append(row)
    prefixes = sorted(by_prefix)
    node_base = len(builder.node_data)
    values, nodes, parents = _flatten(prefixes, node_base)

    version_start = TIME_MIN if table.effective_from is None else epoch_ceil(table.effective_from)
    rounding = 10 ** (DECIMALS_MAX - table.decimals) * 4 + table.rounding.code
    leaf_codes = np.empty(len(prefixes), dtype=np.int64)
    for index, (prefix, parent) in enumerate(zip(prefixes, parents, strict=True)):
        node = node_base + index
        candidates = by_prefix[prefix]
        if len(candidates) == 1:  # the common case, about 3x faster than the general one
            row = candidates[0]
            leaf_codes[index] = 2 * len(builder.row_data) + 1
            builder.row_data.append(_row_record(table, row, rounding, node))
            builder.row_version.append(version_id)
            builder.row_prefix.append(prefix)
            builder.row_destination.append(row.destination)
            builder.row_line.append(row.line)
            rows_end = len(builder.row_data)
            builder.node_data.append(_node_record(len(prefix), parent, rows_end - 1, rows_end))
            continue
        # Rows of one prefix ordered by date; a row without a date sorts at its version's time.
        ordered = sorted(
            candidates,
            key=lambda r: (
                version_start if r.effective_from is None else epoch_ceil(r.effective_from)
            ),
        )
        records = [_row_record(table, row, rounding, node) for row in ordered]
        order_keys = [
            version_start if row.effective_from is None else rec[ROW_FROM]
            for row, rec in zip(ordered, records, strict=True)
        ]
        for earlier, later, row in zip(order_keys, order_keys[1:], ordered[1:], strict=False):
            if earlier == later:
                raise TariffError(
                    f"{table.key} line {row.line}: prefix {prefix} twice with the same "
                    "effective date"
                )
        leaf_codes[index] = 2 * node
        row_lo = len(builder.row_data)
        builder.row_data.extend(records)
        for row in ordered:
            builder.row_version.append(version_id)
            builder.row_prefix.append(prefix)
            builder.row_destination.append(row.destination)
            builder.row_line.append(row.line)
        builder.node_data.append(_node_record(len(prefix), parent, row_lo, len(builder.row_data)))

    small = len(prefixes) < small_root_below
    builder.ver_root.append(-(builder.trie_size + 1) if small else builder.trie_size)
    root_digits = SMALL_ROOT_DIGITS if small else ROOT_DIGITS
    node_array = np.asarray(nodes, dtype=np.int64)
    piece_codes = np.full(len(node_array), -1, dtype=np.int64)
    covered = node_array >= 0
    piece_codes[covered] = leaf_codes[node_array[covered] - node_base]
    for level in _trie_levels(values, piece_codes, builder.trie_size, root_digits):
        builder.trie.append(level)
        builder.trie_size += len(level)


def _trie_levels(
    values: list[int], codes: Int64Array, base: int, root_digits: int
) -> Iterator[Int64Array]:
    """The trie blocks over the pieces (values, leaf codes), level by level, root first.

    Vectorised per level: each entry covers [start, start + span); it is a leaf when no piece
    starts strictly inside that range, else it points to a child block of 100 entries.
    """
    value_array = np.asarray(values, dtype=np.int64)
    span = 10 ** (PAD_DIGITS - root_digits)
    starts = np.arange(10**root_digits, dtype=np.int64) * span
    offset = base + len(starts)  # where the next level's blocks begin
    while len(starts):
        first_after = np.searchsorted(value_array, starts, side="right")
        inner = first_after < np.searchsorted(value_array, starts + span, side="left")
        entries = -(codes[first_after - 1] + 2)  # value 0 always opens a piece
        children = int(np.count_nonzero(inner))
        block = 10**BLOCK_DIGITS
        entries[inner] = offset + np.arange(children, dtype=np.int64) * block
        yield entries
        offset += children * block
        span //= block
        steps = np.arange(block, dtype=np.int64) * span
        starts = (starts[inner][:, None] + steps[None, :]).ravel()


def _objects(values: list[str]) -> ObjectArray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def compile_tables(
    tables: Mapping[str, Sequence[TariffTable]], *, small_root_below: int = SMALL_ROOT_BELOW
) -> CompiledTariffs:
    """Compile {table name: its versions} for the kernel; TariffError for an unusable table.

    small_root_below: versions with fewer prefixes get the 3-digit root (tests set it to 0 or
    a large number to exercise both layouts).
    """
    builder = _Builder([], [], [], [], [], [], [], [], [], [], [])
    names: list[str] = []
    ver_lo: list[int] = []
    ver_hi: list[int] = []
    for name, versions in tables.items():
        if not versions:
            raise TariffError(f"tariff table {name!r} has no versions")
        names.append(name)
        ver_lo.append(len(builder.ver_keys))
        for position, table in enumerate(sorted(versions, key=_version_order)):
            if table.name != name:
                raise TariffError(f"version {table.key} filed under table {name!r}")
            first = position == 0 or table.effective_from is None
            start = TIME_MIN if first else epoch_ceil(table.effective_from)  # type: ignore[arg-type]
            _add_version(builder, table, start, small_root_below)
        ver_hi.append(len(builder.ver_keys))

    def cat(parts: list[Int64Array], dtype: type) -> npt.NDArray[Any]:
        if not parts:
            return np.zeros(0, dtype=dtype)
        return np.concatenate(parts).astype(dtype)

    if builder.trie_size >= 2**31 or len(builder.row_data) >= 2**31:
        raise TariffError("tariff tables too large for 32-bit ids")
    return CompiledTariffs(
        table_names=tuple(names),
        table_ver_lo=np.asarray(ver_lo, dtype=np.int32),
        table_ver_hi=np.asarray(ver_hi, dtype=np.int32),
        ver_from=np.asarray(builder.ver_from, dtype=np.int64),
        ver_keys=tuple(builder.ver_keys),
        ver_decimals=np.asarray(builder.ver_decimals, dtype=np.int8),
        ver_root=np.asarray(builder.ver_root, dtype=np.int32),
        trie=cat(builder.trie, np.int32),
        node_data=np.asarray(builder.node_data, dtype=np.int32).reshape(-1, NODE_COLUMNS),
        row_data=np.asarray(builder.row_data, dtype=np.int64).reshape(-1, ROW_COLUMNS),
        row_version=np.asarray(builder.row_version, dtype=np.int32),
        row_prefix=_objects(builder.row_prefix),
        row_destination=_objects(builder.row_destination),
        row_version_key=_objects([builder.ver_keys[v] for v in builder.row_version]),
        row_line=np.asarray(builder.row_line, dtype=np.int32),
    )
