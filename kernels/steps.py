"""Billable seconds from billing steps X/Y (docs/DESIGN.md section 2), for numba kernels."""

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
    # Common increments get literal divisors (a multiplication instead of a ~40-cycle idiv).
    if increment == 1:
        return billsec
    if increment == 60:
        return minimum + ((extra + 59) // 60) * 60
    if increment == 6:
        return minimum + ((extra + 5) // 6) * 6
    if increment == 30:
        return minimum + ((extra + 29) // 30) * 30
    return minimum + ((extra + increment - 1) // increment) * increment
