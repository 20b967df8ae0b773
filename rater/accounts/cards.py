"""Card numbers (prefix + random digits + Luhn check digit) and PINs (random digits).

A clear PIN exists only in the CardBatch returned at creation; Redis keeps its HMAC under the
current PIN key (rater/accounts/pinkeys.py), so a copy of the database does not reveal PINs.

Batches draw their digits in bulk (`new_card_numbers`, `new_pins`): one `secrets.token_bytes`
call per round, turned into uniform decimal values by rejection sampling (no modulo bias), and
Luhn digits computed over the whole batch with numpy. 100,000 numbers take a fraction of a
second instead of the ~10 s that one `secrets.randbelow(10)` per digit took.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from rater.accounts.luhn import luhn_digit
from rater.errors import ConfigError
from rater.settings import Settings

#: decimal digits drawn from one 64-bit value (10**18 < 2**64: at most ~5% of draws rejected)
_DIGITS_PER_WORD = 18


def number_layout(settings: Settings) -> tuple[str, int]:
    """(prefix, how many random digits) of a card number; ConfigError when unusable."""
    prefix = settings.card_number_prefix
    random_digits = settings.card_number_length - len(prefix) - 1
    if not prefix.isdigit() and prefix:
        raise ConfigError(f"card number prefix {prefix!r} must be digits")
    if random_digits < 6:
        raise ConfigError(
            f"card numbers of {settings.card_number_length} digits with prefix {prefix!r} leave "
            f"{random_digits} random digits; at least 6 are needed"
        )
    return prefix, random_digits


def _check_pin_length(settings: Settings) -> int:
    if settings.pin_length < 4:
        raise ConfigError(f"PIN length {settings.pin_length} is too short; at least 4")
    return settings.pin_length


def new_card_number(settings: Settings) -> str:
    """A random card number of settings.card_number_length digits ending in its Luhn digit."""
    prefix, random_digits = number_layout(settings)
    payload = prefix + random_digit_strings(1, random_digits)[0]
    return payload + luhn_digit(payload)


def new_pin(settings: Settings) -> str:
    return random_digit_strings(1, _check_pin_length(settings))[0]


def new_card_numbers(
    settings: Settings, count: int, *, avoid: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """`count` distinct card numbers (none of them in `avoid`), each ending in its Luhn digit."""
    prefix, random_digits = number_layout(settings)
    if count > 10**random_digits // 2:
        raise ConfigError(
            f"{count} card numbers do not fit in {random_digits} random digits; "
            "widen card_number_length"
        )
    drawn: dict[str, None] = {}  # insertion-ordered set
    while len(drawn) < count:
        payloads = [
            prefix + body for body in random_digit_strings(count - len(drawn), random_digits)
        ]
        for payload, check in zip(payloads, luhn_digits(payloads), strict=True):
            number = payload + check
            if number not in avoid:
                drawn[number] = None  # a repeat within the batch is dropped here
    return list(drawn)


def new_pins(settings: Settings, count: int) -> list[str]:
    """`count` PINs of settings.pin_length uniform random digits (repeats allowed)."""
    return random_digit_strings(count, _check_pin_length(settings))


def random_digit_strings(count: int, width: int) -> list[str]:
    """`count` strings of `width` uniform random decimal digits, from `secrets`."""
    if count <= 0:
        return []
    parts: list[npt.NDArray[np.uint64]] = []
    widths: list[int] = []
    left = width
    while left > 0:
        w = min(left, _DIGITS_PER_WORD)
        parts.append(_uniform_below(count, 10**w))
        widths.append(w)
        left -= w
    if len(parts) == 1:
        w = widths[0]
        return [f"{v:0{w}d}" for v in parts[0].tolist()]
    columns = [[f"{v:0{w}d}" for v in p.tolist()] for p, w in zip(parts, widths, strict=True)]
    return ["".join(pieces) for pieces in zip(*columns, strict=True)]


def _uniform_below(count: int, bound: int) -> npt.NDArray[np.uint64]:
    """`count` uniform integers in [0, bound) (bound <= 10**18) from secrets.token_bytes.

    A 64-bit draw v is kept only when v < limit, the largest multiple of bound that fits:
    then v % bound is exactly uniform (no modulo bias). With bound <= 10**18 at most ~5% of
    the draws are thrown away (for 10**18 itself: 2**64 mod 10**18 / 2**64).
    """
    limit = np.uint64((2**64 // bound) * bound)
    out = np.empty(0, dtype=np.uint64)
    while out.size < count:
        need = count - out.size
        extra = need // 8 + 16  # a little more than the expected rejections
        raw = np.frombuffer(secrets.token_bytes(8 * (need + extra)), dtype=np.uint64)
        kept = raw[raw < limit][:need] % np.uint64(bound)
        out = np.concatenate([out, kept])
    return out


def luhn_digits(payloads: Sequence[str]) -> list[str]:
    """luhn_digit of many payloads of one length, computed as one array."""
    if not payloads:
        return []
    length = len(payloads[0])
    blob = "".join(payloads).encode("ascii")
    if len(blob) != length * len(payloads):
        return [luhn_digit(p) for p in payloads]  # mixed lengths: one by one
    digits = np.frombuffer(blob, dtype=np.uint8).reshape(len(payloads), length).astype(np.int64)
    digits -= ord("0")
    if digits.min() < 0 or digits.max() > 9:
        raise ValueError("Luhn payloads must be digits")
    # from the right, every second digit (the one next to the check digit first) is doubled
    doubled = digits[:, ::-1][:, ::2] * 2
    doubled -= 9 * (doubled > 9)
    total = doubled.sum(axis=1) + digits[:, ::-1][:, 1::2].sum(axis=1)
    checks = (10 - total % 10) % 10
    return [chr(48 + int(c)) for c in checks.tolist()]
