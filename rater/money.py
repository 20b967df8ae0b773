"""Money as integer micro-units; Decimal strings only at the edges.

1 currency unit = 1,000,000 micro-units. Rates have at most 6 decimals, so every rate, fee and
price is an exact integer here. Rounding a rational amount to a tariff's decimals is done on
integers (numerator / denominator) so kernels and the reference agree to the micro-unit.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from enum import StrEnum

from rater.errors import MoneyError

MICRO = 1_000_000
DECIMALS_MAX = 6


class Rounding(StrEnum):
    """How a price is rounded to the tariff's decimals."""

    UP = "up"  # towards +infinity (prices are never negative): the telecom default
    HALF_UP = "half-up"
    DOWN = "down"

    @property
    def code(self) -> int:
        """Integer code used inside numba kernels."""
        return {Rounding.UP: 0, Rounding.HALF_UP: 1, Rounding.DOWN: 2}[self]


def parse_decimal(text: str | int | Decimal, *, decimal_comma: bool = False) -> Decimal:
    """Parse '0.0123', '0,0123' (with decimal_comma) or an int into a Decimal; MoneyError if not."""
    if isinstance(text, Decimal):
        return text
    if isinstance(text, int):
        return Decimal(text)
    raw = text.strip()
    if decimal_comma:
        raw = raw.replace(",", ".")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise MoneyError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise MoneyError(f"{text!r} is not a finite number")
    return value


def to_micro(value: str | int | Decimal, *, decimal_comma: bool = False) -> int:
    """Exact conversion to micro-units; MoneyError when more than 6 decimals would be lost."""
    amount = parse_decimal(value, decimal_comma=decimal_comma)
    scaled = amount * MICRO
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{value!r} has more than {DECIMALS_MAX} decimals")
    return int(scaled)


def from_micro(micro: int, decimals: int = DECIMALS_MAX) -> str:
    """Micro-units to a decimal string with exactly `decimals` places ('1.230000')."""
    if not 0 <= decimals <= DECIMALS_MAX:
        raise MoneyError(f"decimals must be 0..{DECIMALS_MAX}, not {decimals}")
    amount = Decimal(int(micro)).scaleb(-DECIMALS_MAX)
    return str(amount.quantize(Decimal(1).scaleb(-decimals)))


def display(micro: int) -> str:
    """Micro-units as an exact decimal string with at least two decimals ('50.00', '0.0125')."""
    whole, fraction = from_micro(micro).split(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def round_div(numerator: int, denominator: int, unit: int, mode: Rounding) -> int:
    """Round numerator/denominator (>= 0) to a multiple of `unit`, exactly, on integers.

    Used for prices: numerator/denominator is the exact price in micro-units and unit is
    10 ** (6 - decimals).
    """
    if denominator <= 0 or unit <= 0:
        raise MoneyError("denominator and unit must be positive")
    den = denominator * unit
    q, r = divmod(numerator, den)
    if r == 0:
        return q * unit
    if mode is Rounding.UP:
        return (q + 1) * unit
    if mode is Rounding.DOWN:
        return q * unit
    return (q + 1) * unit if 2 * r >= den else q * unit
