"""Dialled numbers to E.164 digits without '+' (docs/DESIGN.md section 2).

Rules, in order:
1. SIP and tel URIs ('sip:+31201234567@host;user=phone') are reduced to their user part.
2. A carrier tech prefix matching the switch's `tech_prefix` regex ('78816#') is removed.
3. Visual separators (spaces, '-', '.', '(', ')') are removed.
4. '+' marks an international number. Otherwise an international access code is removed:
   '011' (North America) and '00' when the switch's country is 1 or unset; '00' elsewhere
   ('011' elsewhere can be a national area code: Dutch 0111 is Zierikzee).
5. National numbers need the switch's country code: a leading trunk prefix ('0') is replaced
   by the country code; in North America (country 1) a bare 10-digit number gets the 1.
   Anything else is taken to be E.164 already written without '+' ('4930...', '1508...').
6. The result must be 6 to 15 digits, not starting with 0.

A short number (fewer than 6 digits, dialled without '+' and not starting with 0: an
extension, a service or emergency code such as 1002 or 112) is kept as dialled after rule 3:
it is no E.164 number, so no access code, trunk prefix or country applies, and the rating
kernel matches it only against a tariff row of exactly that number (docs/DESIGN.md section 4).

`normalise_number` is the plain definition and names the reason for a reject;
`normalise_many` runs a numba fast path over a batch and falls back to `normalise_number`
for the rare numbers that are not plain digits, so both always agree. E.164 numbers never
start with 0, so (int64 value, int8 length) stores a number losslessly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt
from numba import njit

from kernels.layout import E164_MIN_DIGITS
from rater.errors import NormalisationError
from rater.reasons import quote
from rater.tariffs.model import SwitchSettings

MIN_DIGITS = E164_MIN_DIGITS
MAX_DIGITS = 15
NANP = "1"
_SEPARATORS = str.maketrans("", "", " -.()\t")
#: the fast path handles strings up to this many characters; longer ones take the slow path
_FAST_WIDTH = 24


@lru_cache(maxsize=64)
def _tech_pattern(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


def international_prefixes(switch: SwitchSettings) -> tuple[str, ...]:
    """Access codes stripped before an international number, for this switch's country."""
    if switch.country_code in ("", NANP):
        return ("011", "00")
    return ("00",)


def normalise_number(raw: str, switch: SwitchSettings) -> str:
    """E.164 digits without '+'; NormalisationError naming the value and the reason."""
    text = raw.strip()
    if not text:
        raise NormalisationError("empty number")
    lower = text[:5].lower()
    if lower.startswith(("sip:", "sips:", "tel:")):
        text = unquote(text.split(":", 1)[1].split("@", 1)[0].split(";", 1)[0])
    elif "@" in text:
        text = unquote(text.split("@", 1)[0])
    pattern = _tech_pattern(switch.tech_prefix)
    if pattern is not None:
        match = pattern.match(text)
        if match is not None and match.end() > 0:
            text = text[match.end() :]
    text = text.translate(_SEPARATORS)
    international = text.startswith("+")
    digits = text[1:] if international else text
    if not digits:
        raise NormalisationError(f"number {quote(raw)} has no digits")
    if not (digits.isascii() and digits.isdigit()):
        bad = next(c for c in digits if not ("0" <= c <= "9"))
        kind = "letters" if bad.isalpha() else f"the character {bad!r}"
        raise NormalisationError(f"number {quote(raw)} has {kind}, not only digits")
    if not international and len(digits) < MIN_DIGITS and digits[0] != "0":
        return digits  # a short number: matched as dialled
    if not international:
        for access in international_prefixes(switch):
            if digits.startswith(access):
                digits = digits[len(access) :]
                international = True
                break
    if not international and switch.country_code:
        trunk = switch.trunk_prefix
        if trunk and digits.startswith(trunk):
            digits = switch.country_code + digits[len(trunk) :]
        elif switch.country_code == NANP and len(digits) == 10 and digits[0] in "23456789":
            digits = NANP + digits
    if digits.startswith("0"):
        if international or switch.country_code:
            raise NormalisationError(f"number {quote(raw)} starts with 0 after its prefixes")
        raise NormalisationError(
            f"number {quote(raw)} is national but switch {switch.name!r} has no country code "
            "(set one with `rater switch set --country`)"
        )
    if len(digits) < MIN_DIGITS:
        raise NormalisationError(
            f"number {quote(raw)} is too short ({len(digits)} digits, at least {MIN_DIGITS})"
        )
    if len(digits) > MAX_DIGITS:
        raise NormalisationError(
            f"number {quote(raw)} is too long ({len(digits)} digits, at most {MAX_DIGITS})"
        )
    return digits


def normalise_many(
    raws: Sequence[str], switch: SwitchSettings
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], list[str | None]]:
    """A batch: (digits as int64, digit count as int8, reject reason or None) per number.

    A reject has value 0 and length 0. The fast path is a numba loop over the batch as a
    fixed-width UCS-4 array; only numbers it cannot settle on its own (anything but optional
    '+' and digits, or a reject) go through normalise_number one by one.
    """
    count = len(raws)
    values = np.zeros(count, dtype=np.int64)
    lengths = np.zeros(count, dtype=np.int8)
    reasons: list[str | None] = [None] * count
    if count == 0:
        return values, lengths, reasons
    if not _fast_path_safe(switch.tech_prefix):
        for i, raw in enumerate(raws):
            _one(raws, i, raw, switch, values, lengths, reasons)
        return values, lengths, reasons
    chars = np.asarray(raws, dtype=f"<U{_FAST_WIDTH}")  # longer strings are cut: see below
    codes = chars.view(np.uint32).reshape(count, _FAST_WIDTH)
    # a fixed-width string drops trailing NULs and the kernel stops at the first NUL: numbers
    # whose real length differs from what the kernel sees take the Python path
    real_lengths = np.fromiter(map(len, raws), dtype=np.int64, count=count)
    access = international_prefixes(switch)
    access_codes = np.zeros((len(access), 3), dtype=np.uint32)
    access_lens = np.zeros(len(access), dtype=np.int64)
    for i, code in enumerate(access):
        access_codes[i, : len(code)] = [ord(c) for c in code]
        access_lens[i] = len(code)
    trunk = switch.trunk_prefix if switch.trunk_prefix.isdigit() else ""
    trunk_codes = np.array([ord(c) for c in trunk] or [0], dtype=np.uint32)
    country = int(switch.country_code) if switch.country_code.isdigit() else 0
    tech_min, tech_max = _tech_bounds(switch.tech_prefix)
    slow = _fast_normalise(
        codes, access_codes, access_lens, trunk_codes, len(trunk), country,
        len(switch.country_code) if country else 0, switch.country_code == NANP,
        tech_min, tech_max, values, lengths, real_lengths,
    )  # fmt: skip
    for i in np.flatnonzero(slow).tolist():
        _one(raws, i, raws[i], switch, values, lengths, reasons)
    return values, lengths, reasons


_DIGITS_HASH = re.compile(r"^\^\\d(?:\{(\d+)(?:,(\d+))?\}|(\+)|(\*))#$")


def _tech_bounds(tech_prefix: str) -> tuple[int, int]:
    """(min, max) digit count when the tech prefix is 'digits then #' (the default ^\\d{1,6}#,
    also ^\\d{5}#, ^\\d+#): the numba path strips those itself. (0, -1) otherwise: numbers
    with a '#' then take the Python path."""
    match = _DIGITS_HASH.match(tech_prefix)
    if match is None:
        return 0, -1
    low, high, plus, star = match.groups()
    if plus:
        return 1, _FAST_WIDTH
    if star:
        return 0, _FAST_WIDTH
    return int(low), int(high) if high is not None else int(low)


def _fast_path_safe(tech_prefix: str) -> bool:
    """The numba path leaves every number with a '#' to Python; that is right only when a tech
    prefix cannot match plain digits: no pattern, or one that needs a literal '#'."""
    if not tech_prefix:
        return True
    return "#" in tech_prefix and not any(c in tech_prefix for c in "|?*")


def _one(  # noqa: PLR0917 - a hot helper with positional arguments
    raws: Sequence[str],
    i: int,
    raw: str,
    switch: SwitchSettings,
    values: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int8],
    reasons: list[str | None],
) -> None:
    try:
        digits = normalise_number(raw, switch)
    except NormalisationError as error:
        values[i] = 0
        lengths[i] = 0
        reasons[i] = str(error)
        return
    values[i] = int(digits)
    lengths[i] = len(digits)


@njit(cache=True, nogil=True)
def _fast_normalise(  # type: ignore[no-untyped-def]  # noqa: PLR0917 - numba: positional arrays
    codes, access_codes, access_lens, trunk, trunk_len, country, country_len, nanp,
    tech_min, tech_max, values, lengths, real_lengths,
):  # fmt: skip
    """Settle plain numbers; returns a bool array of those left for the Python path."""
    n, width = codes.shape
    slow = np.zeros(n, dtype=np.bool_)
    zero = np.uint32(48)
    for row in range(n):
        end = width
        for k in range(width):
            if codes[row, k] == 0:
                end = k
                break
        if end in (width, 0) or end != real_lengths[row]:
            slow[row] = True  # possibly cut at the array width, empty, or holding a NUL
            continue
        start = 0
        if tech_max >= 0:  # a tech prefix of tech_min..tech_max digits and '#'
            k = 0
            while k < end and k <= tech_max and zero <= codes[row, k] <= zero + 9:
                k += 1
            if k < end and codes[row, k] == 35 and tech_min <= k <= tech_max:  # '#'
                start = k + 1
        international = False
        if start < end and codes[row, start] == 43:  # '+'
            start += 1
            international = True
        plain = True
        for k in range(start, end):
            c = codes[row, k]
            if c < zero or c > zero + 9:
                plain = False
                break
        if not plain or start == end:
            slow[row] = True
            continue
        if not international and end - start < 6 and codes[row, start] != zero:
            value = np.int64(0)  # a short number, kept as dialled (normalise_number)
            for k in range(start, end):
                value = value * 10 + np.int64(codes[row, k] - zero)
            values[row] = value
            lengths[row] = end - start
            continue
        if not international:
            for a in range(access_codes.shape[0]):
                length = access_lens[a]
                if end - start >= length:
                    same = True
                    for k in range(length):
                        if codes[row, start + k] != access_codes[a, k]:
                            same = False
                            break
                    if same:
                        start += length
                        international = True
                        break
        lead = 0  # country code put in front, and its digit count
        lead_len = 0
        if not international and country_len > 0:
            has_trunk = trunk_len > 0 and end - start >= trunk_len
            if has_trunk:
                for k in range(trunk_len):
                    if codes[row, start + k] != trunk[k]:
                        has_trunk = False
                        break
            if has_trunk:
                start += trunk_len
                lead, lead_len = country, country_len
            elif nanp and end - start == 10 and codes[row, start] >= zero + 2:
                lead, lead_len = country, country_len
        digits = lead_len + end - start
        first = codes[row, start] if lead_len == 0 and start < end else zero + 1
        if digits < 6 or digits > 15 or first == zero:
            slow[row] = True  # a reject: the Python path writes the reason
            continue
        value = np.int64(lead)
        for k in range(start, end):
            value = value * 10 + np.int64(codes[row, k] - zero)
        values[row] = value
        lengths[row] = digits
    return slow
