"""Exact integer prices in micro-units, rounded to a tariff's decimals, for numba kernels.

price = connect_fee + (first_rate * X + rate * (billable - X)) / 60, where rates are micro-units
per minute and first_rate equals rate when a deck has no first-step price. The compiler stores
per row base60 = 60 * connect_fee + first_rate * X (the part that does not depend on the call),
so the exact price in 60ths of a micro-unit is base60 + rate * (billable - X): one product and
one division by a literal (60 * unit) rounds it. Never floating point.

When that product could overflow int64 (rest > the row's safe_rest: a huge rate times a very
long call) the amount is kept as whole micro-units plus a remainder in 60ths instead, which
stays inside int64 for every rate and call the compiler and driver accept (MONEY_MAX,
MAX_BILLSEC in kernels/layout.py).
"""

from __future__ import annotations

from numba import njit

from kernels.layout import ROUND_DOWN, ROUND_UP


@njit(inline="always", cache=True)
def divide_by_60_units(amount60: int, unit: int) -> int:
    """amount60 // (60 * unit) for the seven possible units, each with a literal divisor.

    LLVM turns a literal divisor into a multiplication; a run-time one is a 64-bit idiv of
    tens of cycles. A batch's units repeat, so the branches predict well.
    """
    if unit == 100:  # 4 decimals, the default
        return amount60 // 6_000
    if unit == 10_000:
        return amount60 // 600_000
    if unit == 1:
        return amount60 // 60
    if unit == 10:
        return amount60 // 600
    if unit == 1_000:
        return amount60 // 60_000
    if unit == 100_000:
        return amount60 // 6_000_000
    return amount60 // (60 * unit)


@njit(inline="always", cache=True)
def round_up_or_down(quotient: int, remainder: int, step: int, unit: int, mode: int) -> int:
    """quotient * unit + remainder / step * unit (0 <= remainder < step), rounded by mode."""
    if remainder == 0 or mode == ROUND_DOWN:
        return quotient * unit
    if mode == ROUND_UP or 2 * remainder >= step:
        return (quotient + 1) * unit
    return quotient * unit


@njit(inline="always", cache=True)
def price_micro(  # noqa: PLR0917 (numba kernels take scalars positionally)
    billable: int, minimum: int, rate: int, base60: int, safe_rest: int, unit: int, mode: int
) -> int:
    """The rounded price of `billable` seconds (0 seconds cost nothing, not even the fee)."""
    if billable <= 0:
        return 0
    rest = billable - minimum
    if rest <= safe_rest:
        amount60 = base60 + rate * rest
        quotient = divide_by_60_units(amount60, unit)
        return round_up_or_down(quotient, amount60 - quotient * 60 * unit, 60 * unit, unit, mode)
    # Overflow-safe: whole micro-units plus sixtieths, then rounded to the unit.
    whole = base60 // 60 + rate * (rest // 60)
    sixtieths = base60 % 60 + rate * (rest % 60)
    whole += sixtieths // 60
    quotient = whole // unit
    remainder60 = (whole - quotient * unit) * 60 + sixtieths % 60
    return round_up_or_down(quotient, remainder60, 60 * unit, unit, mode)
