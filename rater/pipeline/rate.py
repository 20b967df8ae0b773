"""The rating stage's driver: validate a columnar batch in Python, run the numba kernel.

`rate_batch` prices the sell side (the customer's tariff) and the buy side (the reseller's
tariff) of every CDR in one kernel pass. Validation is vectorised; there is no per-CDR Python.
Kernels compile on first use and are cached on disk (numba cache=True).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.layout import MAX_BILLSEC, PAD_DIGITS
from kernels.rate import GROUP, SCRATCH_ROWS, rate_kernel, rate_kernel_parallel
from rater.tariffs.compile import CompiledTariffs


@dataclass(frozen=True)
class RateResult:
    """Per-CDR outputs of one batch (arrays of the batch's length)."""

    sell_row: npt.NDArray[np.int32]  # compiled row id of the sell match; -1: none
    buy_row: npt.NDArray[np.int32]  # compiled row id of the buy match; -1: none
    billable: npt.NDArray[np.int32]  # billable seconds by the sell row's steps
    buy_billable: npt.NDArray[np.int32]  # billable seconds by the buy row's steps
    price: npt.NDArray[np.int64]  # sell price, micro-units (0 without a sell match)
    cost: npt.NDArray[np.int64]  # buy cost, micro-units (0 without a buy match)

    def __len__(self) -> int:
        return int(self.sell_row.shape[0])


_DTYPES = {
    "sell_table": np.int32,
    "buy_table": np.int32,
    "number": np.int64,
    "number_len": np.int8,
    "start_epoch": np.int64,
    "billsec": np.int32,
}


def _checked(name: str, values: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    expected = _DTYPES[name]
    if values.ndim != 1 or values.shape[0] != size:
        raise ValueError(f"rate_batch: {name} has shape {values.shape}, expected ({size},)")
    if values.dtype != expected:
        if not np.can_cast(values.dtype, expected, casting="same_kind"):
            raise TypeError(f"rate_batch: {name} is {values.dtype}, expected {expected.__name__}")
        cast = values.astype(expected)
        if not np.array_equal(cast, values):
            raise ValueError(f"rate_batch: {name} does not fit {expected.__name__}")
        values = cast
    return np.ascontiguousarray(values)


def rate_batch(  # noqa: PLR0917 (the pipeline's positional contract)
    compiled: CompiledTariffs,
    sell_table: npt.NDArray[np.int32],
    buy_table: npt.NDArray[np.int32],
    number: npt.NDArray[np.int64],
    number_len: npt.NDArray[np.int8],
    start_epoch: npt.NDArray[np.int64],
    billsec: npt.NDArray[np.int32],
    *,
    parallel: bool = False,
) -> RateResult:
    """Rate a batch: sell and buy tables per CDR (CompiledTariffs.table_index, -1: none).

    billsec must be 0..MAX_BILLSEC (68 years; the decoder rejects negatives); a table index outside
    the compiled tables is an error, -1 means "no table" and gives row -1.
    """
    size = int(np.shape(number)[0])
    columns = {
        "sell_table": sell_table,
        "buy_table": buy_table,
        "number": number,
        "number_len": number_len,
        "start_epoch": start_epoch,
        "billsec": billsec,
    }
    arrays = {name: _checked(name, np.asarray(v), size) for name, v in columns.items()}
    tables = len(compiled.table_names)
    for name in ("sell_table", "buy_table"):
        column = arrays[name]
        if size and (column.min() < -1 or column.max() >= tables):
            raise ValueError(f"rate_batch: {name} holds an index outside -1..{tables - 1}")
    if size and (arrays["billsec"].min() < 0 or arrays["billsec"].max() > MAX_BILLSEC):
        raise ValueError(f"rate_batch: billsec outside 0..{MAX_BILLSEC}")
    if size and (arrays["number_len"].min() < 0 or arrays["number_len"].max() > PAD_DIGITS):
        raise ValueError(f"rate_batch: number_len outside 0..{PAD_DIGITS}")

    result = RateResult(
        sell_row=np.empty(size, dtype=np.int32),
        buy_row=np.empty(size, dtype=np.int32),
        billable=np.empty(size, dtype=np.int32),
        buy_billable=np.empty(size, dtype=np.int32),
        price=np.empty(size, dtype=np.int64),
        cost=np.empty(size, dtype=np.int64),
    )
    cdrs = tuple(arrays[name] for name in _DTYPES)
    out = (
        result.sell_row,
        result.buy_row,
        result.billable,
        result.buy_billable,
        result.price,
        result.cost,
    )
    if parallel:
        groups = (size + GROUP - 1) // GROUP
        scratch = np.empty((groups, SCRATCH_ROWS, GROUP), dtype=np.int64)
        rate_kernel_parallel(cdrs, compiled.kernel_args(), out, scratch)
    else:
        scratch = np.empty((SCRATCH_ROWS, GROUP), dtype=np.int64)
        rate_kernel(cdrs, compiled.kernel_args(), out, scratch)
    return result
