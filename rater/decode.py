"""Decode Kafka records (JSON CDR messages, DESIGN.md section 5) into one columnar batch.

One pass: each record is parsed with orjson, checked field by field and appended to plain
Python lists, which become numpy arrays at the end (appending to lists and converting once is
about 3x faster than writing into preallocated object arrays element by element). A record that
cannot be a CDR becomes a `Reject` holding its original bytes, partition, offset and the reason;
it never raises. Numbers are normalised later, per switch (`rater.normalise`), because that needs
the switch's settings.

Timestamps are ISO 8601 (with an offset; without one the switch's time zone applies) or epoch
seconds / milliseconds (numbers, or strings of digits). They are kept as epoch seconds (int64),
the resolution of ClickHouse's DateTime.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
import orjson

#: epoch values at or above this are milliseconds (1e11 s would be the year 5138)
_MS_THRESHOLD = 100_000_000_000
#: ClickHouse DateTime is UInt32 seconds: 1970-01-01 .. 2106-02-07
_EPOCH_MAX = 2**32 - 1

#: required string fields, in message order
_REQUIRED_STR = ("cdr_id", "switch", "account", "caller", "callee", "disposition")
#: optional string fields; missing or null means ""
_OPTIONAL_STR = ("card", "auth_id", "access_number", "hangup_cause")

ObjArray = npt.NDArray[np.object_]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


class KafkaRecord(Protocol):
    """What decode needs of an aiokafka ConsumerRecord."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...


@dataclass(frozen=True)
class Reject:
    """A record that is not a valid CDR: it goes to the dead-letter topic as it came."""

    partition: int
    offset: int
    value: bytes
    key: bytes | None
    reason: str
    """which field and why, e.g. "billsec: negative (-5)"."""


@dataclass(frozen=True)
class CdrBatch:
    """Valid CDRs, one numpy array per field, all of the same length.

    Strings are object arrays of str ("" when an optional field is absent); times are epoch
    seconds (answer 0 when the call was not answered).
    """

    partition: I32
    offset: I64
    kafka_ts: I64
    """producer timestamp of the record, ms (latency publish -> stored)."""
    cdr_id: ObjArray
    switch: ObjArray
    account: ObjArray
    caller: ObjArray
    callee: ObjArray
    disposition: ObjArray
    card: ObjArray
    auth_id: ObjArray
    access_number: ObjArray
    hangup_cause: ObjArray
    start: I64
    answer: I64
    end: I64
    duration: I32
    billsec: I32

    def __len__(self) -> int:
        return len(self.offset)

    def take(self, index: npt.NDArray[Any]) -> CdrBatch:
        """The rows selected by a boolean mask or an index array, in that order."""
        return CdrBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def empty(cls) -> CdrBatch:
        return decode([], lambda _switch: UTC)[0]


class _InvalidError(Exception):
    """Internal: why one record is rejected."""


TimezoneOf = Callable[[str], tzinfo]


def decode(records: Iterable[KafkaRecord], tz_of: TimezoneOf) -> tuple[CdrBatch, list[Reject]]:
    """Split records into (valid CDRs as a columnar batch, rejects with reasons).

    `tz_of(switch)` gives the time zone for timestamps without an offset (the switch's setting).
    """
    cols: dict[str, list[Any]] = {
        name: []
        for name in (
            "partition",
            "offset",
            "kafka_ts",
            *_REQUIRED_STR,
            *_OPTIONAL_STR,
            "start",
            "answer",
            "end",
            "duration",
            "billsec",
        )
    }
    rejects: list[Reject] = []
    for record in records:
        try:
            row = _decode_one(record.value, tz_of)
        except _InvalidError as why:
            rejects.append(
                Reject(record.partition, record.offset, record.value or b"", record.key, str(why))
            )
            continue
        cols["partition"].append(record.partition)
        cols["offset"].append(record.offset)
        cols["kafka_ts"].append(record.timestamp)
        for name, value in zip(_ROW_FIELDS, row, strict=True):
            cols[name].append(value)
    return _to_batch(cols), rejects


_ROW_FIELDS = (*_REQUIRED_STR, *_OPTIONAL_STR, "start", "answer", "end", "duration", "billsec")


def _decode_one(value: bytes | None, tz_of: TimezoneOf) -> tuple[Any, ...]:
    if not value:
        raise _InvalidError("bad JSON: empty message")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise _InvalidError(f"bad JSON: {error}") from None
    if type(obj) is not dict:
        raise _InvalidError(f"bad JSON: expected an object, got {_type_name(obj)}")
    required = [_required_str(obj, name) for name in _REQUIRED_STR]
    optional = [_optional_str(obj, name) for name in _OPTIONAL_STR]
    billsec = _required_int(obj, "billsec")
    if billsec < 0:
        raise _InvalidError(f"billsec: negative ({billsec})")
    switch = required[1]
    start = _timestamp(obj, "start_time", switch, tz_of, required=True)
    end = _timestamp(obj, "end_time", switch, tz_of, required=True)
    answer = _timestamp(obj, "answer_time", switch, tz_of, required=False)
    if end < start:
        raise _InvalidError(f"end_time: before start_time ({end} < {start} epoch seconds)")
    if answer and not start <= answer <= end:
        raise _InvalidError(f"answer_time: outside start_time..end_time ({answer})")
    duration_raw = obj.get("duration")
    if duration_raw is None:
        duration = end - start
    else:
        duration = _int_value("duration", duration_raw)
        if duration < 0:
            raise _InvalidError(f"duration: negative ({duration})")
    if billsec > _EPOCH_MAX or duration > _EPOCH_MAX:
        raise _InvalidError("billsec: out of range")
    return (*required, *optional, start, answer, end, duration, billsec)


def _type_name(value: object) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _required_str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(f"{name}: missing")
    if type(value) is not str:
        raise _InvalidError(f"{name}: expected a string, got {_type_name(value)}")
    if not value:
        raise _InvalidError(f"{name}: empty")
    return value


def _optional_str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if type(value) is not str:
        raise _InvalidError(f"{name}: expected a string, got {_type_name(value)}")
    return value


def _required_int(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        raise _InvalidError(f"{name}: missing")
    return _int_value(name, value)


def _int_value(name: str, value: object) -> int:
    # bool is an int subclass in Python; a JSON true is not a number of seconds
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _InvalidError(f"{name}: expected an integer, got {_type_name(value)} {value!r}")


def _timestamp(
    obj: dict[str, Any], name: str, switch: str, tz_of: TimezoneOf, *, required: bool
) -> int:
    value = obj.get(name)
    if value is None or value == "":
        if required:
            raise _InvalidError(f"{name}: missing")
        return 0
    kind = type(value)
    if kind is int or kind is float:
        seconds = _epoch(name, value)
    elif kind is str:
        seconds = _parse_time_text(name, value, switch, tz_of)
    else:
        raise _InvalidError(
            f"{name}: expected ISO 8601 or epoch seconds/ms, got {_type_name(value)}"
        )
    if not 0 <= seconds <= _EPOCH_MAX:
        raise _InvalidError(f"{name}: {value!r} is outside 1970..2106")
    return seconds


def _epoch(name: str, value: float) -> int:
    if not math.isfinite(value):
        raise _InvalidError(f"{name}: {value!r} is not a time")
    if abs(value) >= _MS_THRESHOLD:
        return math.floor(value / 1000)
    return math.floor(value)


def _parse_time_text(name: str, text: str, switch: str, tz_of: TimezoneOf) -> int:
    stripped = text.strip()
    if stripped and (stripped[0].isdigit() and stripped.replace(".", "", 1).isdigit()):
        return _epoch(name, float(stripped) if "." in stripped else int(stripped))
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise _InvalidError(f"{name}: {text!r} is not ISO 8601 or epoch seconds/ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz_of(switch))
    return math.floor(moment.timestamp())


def _to_batch(cols: dict[str, list[Any]]) -> CdrBatch:
    def strings(name: str) -> ObjArray:
        out = np.empty(len(cols[name]), dtype=object)
        out[:] = cols[name]
        return out

    return CdrBatch(
        partition=np.asarray(cols["partition"], dtype=np.int32),
        offset=np.asarray(cols["offset"], dtype=np.int64),
        kafka_ts=np.asarray(cols["kafka_ts"], dtype=np.int64),
        **{name: strings(name) for name in (*_REQUIRED_STR, *_OPTIONAL_STR)},
        start=np.asarray(cols["start"], dtype=np.int64),
        answer=np.asarray(cols["answer"], dtype=np.int64),
        end=np.asarray(cols["end"], dtype=np.int64),
        duration=np.asarray(cols["duration"], dtype=np.int32),
        billsec=np.asarray(cols["billsec"], dtype=np.int32),
    )


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """A time zone by IANA name ("UTC", "Europe/Amsterdam"); UTC for an unknown name is wrong,
    so an unknown name raises ValueError naming it."""
    if name in ("", "UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def fixed_zone_of(zones: dict[str, str], default: str = "UTC") -> TimezoneOf:
    """tz_of for decode() from a switch -> IANA zone name mapping."""
    return lambda switch: zone(zones.get(switch, default))


def strings_of(values: Sequence[str]) -> ObjArray:
    """An object array of str (what CdrBatch string columns hold)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out
