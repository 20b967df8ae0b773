"""Billable seconds from billing steps X/Y (DESIGN.md section 2), for numba kernels."""

from __future__ import annotations

from numba import njit


@njit(inline="always", cache=True)
def billable_seconds(billsec: int, minimum: int, increment: int) -> int:
    """0 for 0 s; X up to X s; else X + ceil((billsec - X) / Y) * Y."""
    if billsec <= 0:
        return 0
    if billsec <= minimum:
        return minimum
    extra = billsec - minimum
    if increment == 1:  # 1/1 and 60/1 are common: skip the division
        return billsec
    return minimum + ((extra + increment - 1) // increment) * increment
