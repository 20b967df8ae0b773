"""What the switch formats share: their options, seconds with fractions, epochs, local times.

Every converter turns one record into the fields of a CDR message (docs/DESIGN.md section 5)
with times as epoch seconds (UTC) and seconds as integers; the checks of
rater/pipeline/decode.py then apply to them as to rater's own JSON. A record that cannot be a
CDR raises InvalidRecord naming the field and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from itertools import product
from typing import Any

import orjson

from rater.errors import ConfigError
from rater.pipeline.decode import InvalidRecord, zone
from rater.reasons import Kind, cap, quote
from rater.tariffs.model import SwitchSettings

#: epoch seconds ClickHouse's DateTime holds (1970 .. 2106)
EPOCH_MAX = 2**32 - 1
#: the same limit for numbers of seconds (int32 columns; rater/pipeline/decode.py)
SECONDS_MAX = 2**31 - 1

#: fractional seconds ("65.432") round up by default: a started second is billed
FRACTIONS = ("up", "down")


@dataclass(frozen=True)
class Option:
    """One option of a format: its default and the values allowed (empty: any text)."""

    default: str
    choices: tuple[str, ...] = ()
    help: str = ""


#: options every format has
COMMON_OPTIONS: dict[str, Option] = {
    "fractions": Option("up", FRACTIONS, "fractional seconds: up (a started second) or down"),
}


@dataclass(frozen=True)
class Context:
    """A switch's settings as a converter needs them (made once per settings)."""

    switch: str
    settings: SwitchSettings
    options: Mapping[str, str]
    tz: tzinfo
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def round_up(self) -> bool:
        return self.options.get("fractions", "up") == "up"


def parse_options(text: str) -> dict[str, str]:
    """The options stored with a switch (a JSON object of strings)."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"switch options are not a JSON object: {error}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ConfigError("switch options must be a JSON object of strings")
    return value


def dump_options(options: Mapping[str, str]) -> str:
    return orjson.dumps(dict(sorted(options.items()))).decode() if options else ""


def check_options(
    format_name: str, known: Mapping[str, Option], given: Mapping[str, str]
) -> dict[str, str]:
    """Every option with its value (defaults filled in); ConfigError naming a bad one."""
    out = {name: option.default for name, option in known.items()}
    for name, value in given.items():
        option = known.get(name)
        if option is None:
            names = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"format {format_name} has no option {name!r} (options: {names})")
        if option.choices and value not in option.choices:
            raise ConfigError(
                f"option {name} of format {format_name} is {value!r}; "
                f"use one of {', '.join(option.choices)}"
            )
        out[name] = value
    return out


# ------------------------------------------------------------------------------------ values
def text_of(value: object, name: str, *, required: bool = True) -> str:
    """A string field ("" when missing and not required)."""
    if value is None or value == "":
        if required:
            raise InvalidRecord(Kind.MISSING, name)
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise InvalidRecord(Kind.WRONG_TYPE, f"{name}: expected a string, got {quote(value)}")


def integer_of(value: object, name: str) -> int:
    """A whole number of seconds, from a number or a string of digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isascii() and text.lstrip("-").isdigit() and len(text) < 20:
            return int(text)
    if value is None or value == "":
        raise InvalidRecord(Kind.MISSING, name)
    raise InvalidRecord(Kind.WRONG_TYPE, f"{name}: expected an integer, got {quote(value)}")


def seconds_of(value: object, name: str, *, round_up: bool) -> int:
    """Seconds with a fraction ("65.432") as whole seconds: up (a started second is billed)
    or down, as the switch's `fractions` option says. Exact: decimal, never float."""
    if value is None or value == "":
        raise InvalidRecord(Kind.MISSING, name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidRecord(Kind.WRONG_TYPE, f"{name}: expected seconds, got {quote(value)}")
    text = value.strip() if isinstance(value, str) else repr(value)
    if len(text) > 40:
        raise InvalidRecord(Kind.OUT_OF_RANGE, f"{name} {quote(value)} is too long")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise InvalidRecord(
            Kind.WRONG_TYPE, f"{name}: expected seconds, got {quote(value)}"
        ) from None
    if not number.is_finite():
        raise InvalidRecord(Kind.WRONG_TYPE, f"{name}: expected seconds, got {quote(value)}")
    if number < 0:
        raise InvalidRecord(Kind.NEGATIVE, f"{name} {quote(value)}")
    whole = int(number.to_integral_value(ROUND_CEILING if round_up else ROUND_FLOOR))
    if whole > SECONDS_MAX:
        raise InvalidRecord(Kind.OUT_OF_RANGE, f"{name} {quote(value)} is too large")
    return whole


def milliseconds_of(value: object, name: str, *, round_up: bool) -> int:
    """Milliseconds (FreeSWITCH's billmsec) as whole seconds, rounded like seconds_of."""
    millis = integer_of(value, name)
    if millis < 0:
        raise InvalidRecord(Kind.NEGATIVE, f"{name} {millis}")
    return -(-millis // 1000) if round_up else millis // 1000


def epoch_of(value: object, name: str, *, divisor: int = 1) -> int:
    """Epoch seconds from a number or a string ("1700000000", "1700000000.123"; microseconds
    with divisor 10**6), floored: a time is the second it falls in."""
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidRecord(Kind.MISSING, name)
    if isinstance(value, int):
        seconds = value // divisor
    elif isinstance(value, float) and math.isfinite(value):
        seconds = math.floor(value / divisor)
    elif isinstance(value, str):
        text = value.strip()
        body = text.replace(".", "", 1)
        if not (body.isascii() and body.isdigit()) or len(text) > 24:
            raise InvalidRecord(Kind.BAD_TIME, f"{name} {quote(value)} is not epoch seconds")
        seconds = int(Decimal(text) / divisor) if "." in text else int(text) // divisor
    else:
        raise InvalidRecord(Kind.WRONG_TYPE, f"{name}: expected epoch seconds, got {quote(value)}")
    if not 0 <= seconds <= EPOCH_MAX:
        raise InvalidRecord(Kind.OUT_OF_RANGE, f"{name} {quote(value)} is outside 1970..2106")
    return seconds


# ------------------------------------------------------------------------------- local times
#: the layout of Asterisk's and FreeSWITCH's local times ("%F %T")
ISO_LOCAL = "%Y-%m-%d %H:%M:%S"


def local_moment(value: object, name: str, pattern: str) -> datetime:
    """A time written with a strftime pattern ("%Y-%m-%d %H:%M:%S"), not yet placed in a zone
    (naive) unless the pattern has %z."""
    text = text_of(value, name).strip()
    pattern = pattern.replace("%F", "%Y-%m-%d").replace("%T", "%H:%M:%S")  # C's shorthands
    if pattern == ISO_LOCAL and len(text) == 19 and text[10] == " ":
        # about 10x strptime (datetime.fromisoformat is C); the same strict layout
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass  # strptime names the problem below
    try:
        return datetime.strptime(text, pattern)
    except ValueError:
        raise InvalidRecord(
            Kind.BAD_TIME, f"{name} {quote(text)} does not match {cap(pattern)}"
        ) from None


def _epochs(moment: datetime, tz: tzinfo) -> list[int]:
    """The epoch seconds a wall-clock time can mean in `tz`: two in the hour a clock is set
    back (daylight saving ends), else one."""
    if moment.tzinfo is not None:
        return [math.floor(moment.timestamp())]
    first = math.floor(moment.replace(tzinfo=tz, fold=0).timestamp())
    second = math.floor(moment.replace(tzinfo=tz, fold=1).timestamp())
    return [first] if first == second else [first, second]


def place_call(
    start: datetime,
    answer: datetime | None,
    end: datetime,
    tz: tzinfo,
    *,
    duration: int | None,
    billsec: int,
) -> tuple[int, int, int]:
    """(start, answer or 0, end) as epoch seconds from local wall-clock times.

    In the hour a clock is set back every wall-clock time happens twice; of the readings in
    order (start <= answer <= end) the one whose end - start is closest to the switch's own
    duration (or whose end - answer is closest to billsec) is taken, the earlier reading on a
    tie. A call from 02:59:30 summer time to 02:00:30 winter time is then 60 s, not -59 min.
    """
    starts, ends = _epochs(start, tz), _epochs(end, tz)
    answers = _epochs(answer, tz) if answer is not None else [0]
    best: tuple[int, int, int] | None = None
    best_error = 0
    for s, a, e in product(starts, answers, ends):
        if e < s or (answer is not None and not s <= a <= e):
            continue
        error = abs(e - s - duration) if duration is not None else 0
        if answer is not None and billsec:
            error += abs(e - a - billsec)
        if best is None or error < best_error:
            best, best_error = (s, a, e), error
    if best is None:  # out of order whatever the reading: decode names it
        return starts[0], answers[0], ends[0]
    return best


def zone_of(settings: SwitchSettings) -> tzinfo:
    try:
        return zone(settings.timezone)
    except ValueError as error:
        raise ConfigError(f"switch {settings.name!r}: {error}") from None


def utc_text(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def path_get(obj: object, path: tuple[str, ...]) -> object:
    """obj[p0][p1]... through objects and arrays (a digit indexes an array); None when absent."""
    current = obj
    for part in path:
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


#: a format's conversion of one record's bytes with a switch's context
ConvertFn = Callable[[bytes, Context], dict[str, Any]]
