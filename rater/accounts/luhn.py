"""Luhn (mod 10) check digits for card numbers."""

from __future__ import annotations


def luhn_digit(payload: str) -> str:
    """The check digit to append to `payload` (digits only)."""
    if not payload.isdigit():
        raise ValueError(f"Luhn payload must be digits, not {payload!r}")
    total = 0
    # from the right, every second digit of the payload (the one next to the check digit first)
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the last digit of `number` is its Luhn check digit."""
    if len(number) < 2 or not number.isdigit():
        return False
    return luhn_digit(number[:-1]) == number[-1]
