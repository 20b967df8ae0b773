"""Exact integer prices in micro-units, rounded to a tariff's decimals, for numba kernels.

price = connect_fee + (first_rate * X + rate * (billable - X)) / 60, where rates are micro-units
per minute and first_rate equals rate when a deck has no first-step price. The division by 60
is never done in floating point: the amount is kept as whole micro-units plus a remainder in
60ths, then rounded to a multiple of `unit` (10 ** (6 - decimals)) by the rounding mode.
Splitting seconds into whole minutes and leftover seconds keeps every product inside int64 for
rates up to 1e12 micro-units and calls up to 1e8 s (see rater.tariffs.compile bounds).
"""

from __future__ import annotations

from numba import njit

ROUND_UP = 0  # rater.money.Rounding.UP.code
ROUND_HALF_UP = 1
ROUND_DOWN = 2


@njit(inline="always", cache=True)
def round_sixtieths(whole: int, sixtieths: int, unit: int, mode: int) -> int:
    """Round whole + sixtieths / 60 micro-units (0 <= sixtieths < 60) to a multiple of unit."""
    quotient = whole // unit
    remainder = whole - quotient * unit
    if remainder == 0 and sixtieths == 0:
        return whole
    if mode == ROUND_UP:
        return (quotient + 1) * unit
    if mode == ROUND_DOWN:
        return quotient * unit
    if 2 * (remainder * 60 + sixtieths) >= 60 * unit:  # half-up, compared in 60ths
        return (quotient + 1) * unit
    return quotient * unit


@njit(inline="always", cache=True)
def price_micro(  # noqa: PLR0917 (numba kernels take scalars positionally)
    billable: int, minimum: int, rate: int, connect_fee: int, first_rate: int, unit: int, mode: int
) -> int:
    """The rounded price of `billable` seconds (0 seconds cost nothing, not even the fee)."""
    if billable <= 0:
        return 0
    rest = billable - minimum
    whole = connect_fee + first_rate * (minimum // 60) + rate * (rest // 60)
    sixtieths = first_rate * (minimum % 60) + rate * (rest % 60)
    whole += sixtieths // 60
    return round_sixtieths(whole, sixtieths % 60, unit, mode)
