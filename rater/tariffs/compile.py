"""Compile tariff tables (all their versions) into flat numpy arrays for the rating kernel.

Layout (all versions of all tables in one set of arrays; ids are global):

- Numbers and prefixes live in an 18-digit "padded" space: digits d of length L become
  d * 10**(18 - L), so a prefix p of length k covers the interval [p * 10**(18-k),
  (p + 1) * 10**(18-k)). Nested prefixes give nested intervals; each version's intervals are
  flattened into sorted, disjoint pieces ("boundaries") that each name the longest prefix
  covering them (a "node"). Longest-prefix match is then one binary search, not one probe per
  prefix length.
- The binary search is cut short by a direct index on the first BUCKET_DIGITS digits: bucket b
  holds the boundaries strictly inside [b * 10**14, (b + 1) * 10**14) and the node in force at
  the bucket's start. A 100,000-prefix table averages ~20 boundaries a bucket, so a lookup is
  a few steps within one or two cache lines after the bucket read.
- A node has its prefix length (a number shorter than the prefix must not match it), its
  parent (the next shorter prefix in the same version: where a closed or not yet started code
  falls to) and its rows, ordered by date.
- A row is one 64-byte record (ROW_* columns of an int64 matrix): one cache line per match.

Dates are int64 epoch seconds: starts are compared as `start_time >= ceil(effective_from)`,
which equals the datetime comparison for whole-second start times (CDR times are seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from rater.errors import TariffError
from rater.money import DECIMALS_MAX
from rater.tariffs.model import Steps, TariffRow, TariffTable

PAD_DIGITS = 18  # int64 holds every 18-digit number; E.164 numbers have at most 15 digits
BUCKET_DIGITS = 4
BUCKETS = 10**BUCKET_DIGITS
BUCKET_SPAN = 10 ** (PAD_DIGITS - BUCKET_DIGITS)

TIME_MIN = np.iinfo(np.int64).min  # the beginning of time
TIME_MAX = np.iinfo(np.int64).max  # never

#: Bounds that keep every intermediate of the kernel's integer price inside int64:
#: rate * (billable // 60) <= 1e12 * 1.7e6 for billsec <= MAX_BILLSEC.
MONEY_MAX = 10**12  # micro-units: 1,000,000 currency units per minute or per call
STEP_MAX = 1_000_000  # seconds, for X and Y of billing steps
MAX_BILLSEC = 100_000_000  # about 3 years; longer is not a call

# Columns of CompiledTariffs.row_data.
ROW_FROM = 0  # epoch s the row starts (TIME_MIN: whenever its version is in force)
ROW_TO = 1  # epoch s the code closes, exclusive (TIME_MAX: never)
ROW_RATE = 2  # micro-units per minute
ROW_FEE = 3  # connect fee, micro-units
ROW_FIRST = 4  # micro-units per minute for the first X seconds (= rate when the deck has none)
ROW_MIN = 5  # steps X
ROW_INC = 6  # steps Y
ROW_ROUND = 7  # 10 ** (6 - decimals) * 4 + rounding code
ROW_COLUMNS = 8

# Columns of CompiledTariffs.node_data.
NODE_LEN = 0
NODE_PARENT = 1
NODE_ROW_LO = 2
NODE_ROW_HI = 3

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
    bucket_lo: Int32Array  # per version * (BUCKETS + 1): first boundary id of the bucket
    bucket_node: Int32Array  # per version * (BUCKETS + 1): node in force at the bucket start
    bound_value: Int64Array  # padded start of each flattened piece
    bound_node: Int32Array  # longest prefix node covering it (-1: none)
    node_data: Int32Array  # (nodes, 4): NODE_* columns
    row_data: Int64Array  # (rows, 8): ROW_* columns
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

    def row_decimals(self, row: int) -> int:
        """Decimals of the version a row belongs to (how its prices are written)."""
        return int(self.ver_decimals[int(self.row_version[row])])

    def kernel_args(self) -> tuple[npt.NDArray[Any], ...]:
        """The arrays the kernels take, in their order (kernels.rate.TARIFF_ARGS)."""
        return (
            self.table_ver_lo,
            self.table_ver_hi,
            self.ver_from,
            self.bucket_lo,
            self.bucket_node,
            self.bound_value,
            self.bound_node,
            self.node_data,
            self.row_data,
        )


@dataclass
class _Builder:
    """Accumulates versions; one per compile_tables call."""

    ver_from: list[int]
    ver_keys: list[str]
    ver_decimals: list[int]
    bucket_lo: list[Int64Array]
    bucket_node: list[Int64Array]
    bound_value: list[Int64Array]
    bound_node: list[Int64Array]
    node_data: list[tuple[int, int, int, int]]
    row_data: list[tuple[int, ...]]
    row_version: list[int]
    row_prefix: list[str]
    row_destination: list[str]
    row_line: list[int]
    bounds_total: int = 0


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


def _row_record(table: TariffTable, row: TariffRow) -> tuple[int, ...]:
    steps = _check_steps(table, row, row.steps or table.steps)
    rate = _check_money(table, row, "rate", row.rate)
    first = (
        rate if row.first_rate is None else _check_money(table, row, "first_rate", row.first_rate)
    )
    unit = 10 ** (DECIMALS_MAX - table.decimals)
    return (
        TIME_MIN if row.effective_from is None else epoch_ceil(row.effective_from),
        TIME_MAX if row.effective_to is None else epoch_ceil(row.effective_to),
        rate,
        _check_money(table, row, "connect_fee", row.connect_fee),
        first,
        steps.minimum,
        steps.increment,
        unit * 4 + table.rounding.code,
    )


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


def _add_version(builder: _Builder, table: TariffTable, in_force_from: int) -> None:
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
    for prefix, parent in zip(prefixes, parents, strict=True):
        # Rows of one prefix ordered by date; a row without a date sorts at its version's time.
        ordered = sorted(
            by_prefix[prefix],
            key=lambda r: (
                version_start if r.effective_from is None else epoch_ceil(r.effective_from)
            ),
        )
        records = [_row_record(table, row) for row in ordered]
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
        row_lo = len(builder.row_data)
        builder.row_data.extend(records)
        for row in ordered:
            builder.row_version.append(version_id)
            builder.row_prefix.append(prefix)
            builder.row_destination.append(row.destination)
            builder.row_line.append(row.line)
        builder.node_data.append((len(prefix), parent, row_lo, len(builder.row_data)))

    value_array = np.asarray(values, dtype=np.int64)
    node_array = np.asarray(nodes, dtype=np.int64)
    starts = np.arange(BUCKETS + 1, dtype=np.int64) * BUCKET_SPAN
    # Boundaries strictly after each bucket start; the piece in force at the start is the one
    # of the last boundary <= it (boundary 0 always exists).
    first_after = np.searchsorted(value_array, starts, side="right")
    builder.bucket_lo.append(first_after + builder.bounds_total)
    builder.bucket_node.append(node_array[first_after - 1])
    builder.bound_value.append(value_array)
    builder.bound_node.append(node_array)
    builder.bounds_total += len(values)


def _objects(values: list[str]) -> ObjectArray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def compile_tables(tables: Mapping[str, Sequence[TariffTable]]) -> CompiledTariffs:
    """Compile {table name: its versions} for the kernel; TariffError for an unusable table."""
    builder = _Builder([], [], [], [], [], [], [], [], [], [], [], [], [])
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
            _add_version(builder, table, start)
        ver_hi.append(len(builder.ver_keys))

    def cat(parts: list[Int64Array], dtype: type) -> npt.NDArray[Any]:
        if not parts:
            return np.zeros(0, dtype=dtype)
        return np.concatenate(parts).astype(dtype)

    if builder.bounds_total >= 2**31 or len(builder.row_data) >= 2**31:
        raise TariffError("tariff tables too large for 32-bit ids")
    return CompiledTariffs(
        table_names=tuple(names),
        table_ver_lo=np.asarray(ver_lo, dtype=np.int32),
        table_ver_hi=np.asarray(ver_hi, dtype=np.int32),
        ver_from=np.asarray(builder.ver_from, dtype=np.int64),
        ver_keys=tuple(builder.ver_keys),
        ver_decimals=np.asarray(builder.ver_decimals, dtype=np.int8),
        bucket_lo=cat(builder.bucket_lo, np.int32),
        bucket_node=cat(builder.bucket_node, np.int32),
        bound_value=cat(builder.bound_value, np.int64),
        bound_node=cat(builder.bound_node, np.int32),
        node_data=np.asarray(builder.node_data, dtype=np.int32).reshape(-1, 4),
        row_data=np.asarray(builder.row_data, dtype=np.int64).reshape(-1, ROW_COLUMNS),
        row_version=np.asarray(builder.row_version, dtype=np.int32),
        row_prefix=_objects(builder.row_prefix),
        row_destination=_objects(builder.row_destination),
        row_version_key=_objects([builder.ver_keys[v] for v in builder.row_version]),
        row_line=np.asarray(builder.row_line, dtype=np.int32),
    )
