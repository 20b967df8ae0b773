"""The catalogue of invalid CDR records the load generator publishes, and a validator for them.

Every kind is a corruption a real switch or exporter produces now and then. Each is made from a
valid CDR (so the rest of the record is realistic) and must end in the dead-letter topic
(docs/DESIGN.md section 4) with a reason naming the field: `expected_kind` is the kind of
rater's decoder's reason (rater/pipeline/decode.py, rater/reasons.py) and `expected_detail` a
regular expression for its detail, except for `bad_number`, which decodes but cannot be
normalised (rater/pipeline/normalise.py rejects it later in the pipeline).

`diagnose(value)` is this catalogue's own, independent check: which kind of invalid record a
message is (None when it is a well-formed CDR as far as this catalogue is concerned).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import numpy as np
import orjson

from rater.reasons import Kind


class InvalidKind(StrEnum):
    """Kinds of invalid records, in catalogue order."""

    BAD_JSON = "bad_json"  # cut off mid-record (a truncated write, a full disk)
    NOT_UTF8 = "not_utf8"  # a Latin-1 caller name from an old exporter
    NOT_AN_OBJECT = "not_an_object"  # a JSON array of the fields instead of an object
    MISSING_FIELD = "missing_field"  # a required field left out
    MISTYPED_FIELD = "mistyped_field"  # a number as text, an id as a number
    NEGATIVE_BILLSEC = "negative_billsec"  # an unsigned underflow written signed
    END_BEFORE_START = "end_before_start"  # a clock stepped back during the call
    BAD_TIMESTAMP = "bad_timestamp"  # a time that is not ISO 8601 nor epoch
    BAD_NUMBER = "bad_number"  # a callee that is not a telephone number


#: fields a MISSING_FIELD record may lack (each is required by docs/DESIGN.md section 5)
MISSING_FIELDS = ("switch", "account", "callee", "start_time", "end_time", "billsec")
#: (field, wrong value) pairs of MISTYPED_FIELD records
MISTYPED = (
    ("billsec", "ninety"),
    ("billsec", [60]),
    ("account", 4711),
    ("start_time", True),
    ("callee", 31612345678),
)
#: callees no normalisation can turn into E.164 digits (Asterisk's 's' extension, SIP URIs)
BAD_NUMBERS = ("s", "anonymous", "sip:alice@example.com", "+31-20-ABC", "unknown")
BAD_TIMESTAMPS = ("2026-13-45T25:61:00Z", "yesterday", "26/11/2026 10:15")


@dataclass(frozen=True)
class KindInfo:
    """What the catalogue promises about one kind."""

    kind: InvalidKind
    description: str
    #: the kind of the decoder's reason (rater/reasons.py); None: decodes, fails normalisation
    expected_kind: Kind | None
    #: regex the reason's detail must match (it names the field)
    expected_detail: str = ""


CATALOGUE: dict[InvalidKind, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(InvalidKind.BAD_JSON, "JSON cut off mid-record", Kind.BAD_JSON),
        KindInfo(InvalidKind.NOT_UTF8, "caller name in Latin-1, not UTF-8", Kind.BAD_JSON),
        KindInfo(
            InvalidKind.NOT_AN_OBJECT, "a JSON array, not an object", Kind.NOT_AN_OBJECT, "^got"
        ),
        KindInfo(
            InvalidKind.MISSING_FIELD,
            "a required field left out",
            Kind.MISSING,
            r"^(" + "|".join(MISSING_FIELDS) + r")$",
        ),
        KindInfo(
            InvalidKind.MISTYPED_FIELD,
            "a field of the wrong JSON type",
            Kind.WRONG_TYPE,
            r"^(billsec|account|start_time|callee): expected",
        ),
        KindInfo(InvalidKind.NEGATIVE_BILLSEC, "billsec below zero", Kind.NEGATIVE, r"^billsec "),
        KindInfo(
            InvalidKind.END_BEFORE_START,
            "end_time before start_time",
            Kind.END_BEFORE_START,
            r"^end_time .* < start_time",
        ),
        KindInfo(
            InvalidKind.BAD_TIMESTAMP,
            "start_time neither ISO 8601 nor epoch",
            Kind.BAD_TIME,
            r"^start_time .* is not ISO 8601",
        ),
        KindInfo(InvalidKind.BAD_NUMBER, "callee that is not a telephone number", None),
    )
}
KINDS: tuple[InvalidKind, ...] = tuple(CATALOGUE)


def corrupt(kind: InvalidKind, record: dict[str, Any], rng: np.random.Generator) -> bytes:
    """A message of `kind` made from a valid CDR `record` (which is not modified)."""
    return _MAKERS[kind](dict(record), rng)


def _pick(rng: np.random.Generator, options: tuple[Any, ...]) -> Any:
    return options[int(rng.integers(len(options)))]


def _bad_json(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    data = orjson.dumps(rec)
    cut = int(rng.integers(len(data) // 3, len(data) - 1))
    return data[:cut]


def _not_utf8(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    # orjson only writes UTF-8, so the Latin-1 bytes are put in after encoding
    marker = "CALLERNAMEMARK"
    rec["caller_name"] = marker
    name = _pick(rng, ("Müller".encode("latin-1"), "José Peña".encode("latin-1"), b"Fran\xe7ois"))
    return orjson.dumps(rec).replace(marker.encode(), name)


def _not_an_object(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    return orjson.dumps(list(rec.values()))


def _missing_field(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    rec.pop(_pick(rng, MISSING_FIELDS))
    return orjson.dumps(rec)


def _mistyped_field(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    name, value = _pick(rng, MISTYPED)
    rec[name] = value
    return orjson.dumps(rec)


def _negative_billsec(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    rec["billsec"] = -int(rng.integers(1, 3600))
    return orjson.dumps(rec)


def _end_before_start(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    shift = int(rng.integers(1, 3600))
    rec["end_time"] = _shift_time(rec["start_time"], -shift)
    rec.pop("answer_time", None)  # keep the answer-time check out of the way: end is the fault
    return orjson.dumps(rec)


def _bad_timestamp(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    rec["start_time"] = _pick(rng, BAD_TIMESTAMPS)
    return orjson.dumps(rec)


def _bad_number(rec: dict[str, Any], rng: np.random.Generator) -> bytes:
    rec["callee"] = _pick(rng, BAD_NUMBERS)
    return orjson.dumps(rec)


def _shift_time(value: Any, seconds: int) -> Any:
    """A time written the same way (ISO, epoch s, epoch ms), moved by `seconds`."""
    if isinstance(value, str):
        moment = datetime.fromisoformat(value) + timedelta(seconds=seconds)
        out = moment.isoformat()
        if value.endswith("Z") and out.endswith("+00:00"):
            out = out[: -len("+00:00")] + "Z"
        return out
    if value >= 100_000_000_000:  # epoch milliseconds
        return int(value) + seconds * 1000
    return int(value) + seconds


_MAKERS: dict[InvalidKind, Callable[[dict[str, Any], np.random.Generator], bytes]] = {
    InvalidKind.BAD_JSON: _bad_json,
    InvalidKind.NOT_UTF8: _not_utf8,
    InvalidKind.NOT_AN_OBJECT: _not_an_object,
    InvalidKind.MISSING_FIELD: _missing_field,
    InvalidKind.MISTYPED_FIELD: _mistyped_field,
    InvalidKind.NEGATIVE_BILLSEC: _negative_billsec,
    InvalidKind.END_BEFORE_START: _end_before_start,
    InvalidKind.BAD_TIMESTAMP: _bad_timestamp,
    InvalidKind.BAD_NUMBER: _bad_number,
}

# ----------------------------------------------------------------------------- validator

_REQUIRED = (
    "cdr_id",
    "switch",
    "account",
    "caller",
    "callee",
    "start_time",
    "end_time",
    "billsec",
    "disposition",
)
_DIGITS = re.compile(r"^(\d{1,6}#)?\+?\d{3,}$")


def diagnose(value: bytes) -> InvalidKind | None:
    """Which catalogue kind `value` is, by this catalogue's own rules; None for a good CDR."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidKind.NOT_UTF8
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return InvalidKind.BAD_JSON
    if not isinstance(obj, dict):
        return InvalidKind.NOT_AN_OBJECT
    if any(obj.get(name) is None for name in _REQUIRED):
        return InvalidKind.MISSING_FIELD
    for name in ("cdr_id", "switch", "account", "caller", "callee", "disposition"):
        if not isinstance(obj[name], str):
            return InvalidKind.MISTYPED_FIELD
    if type(obj["billsec"]) is not int:
        return InvalidKind.MISTYPED_FIELD
    if isinstance(obj["start_time"], bool) or not isinstance(obj["start_time"], (str, int)):
        return InvalidKind.MISTYPED_FIELD
    if obj["billsec"] < 0:
        return InvalidKind.NEGATIVE_BILLSEC
    start, end = _seconds(obj["start_time"]), _seconds(obj["end_time"])
    if start is None or end is None:
        return InvalidKind.BAD_TIMESTAMP
    if end < start:
        return InvalidKind.END_BEFORE_START
    if not _DIGITS.match(obj["callee"]):
        return InvalidKind.BAD_NUMBER
    return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value / 1000 if value >= 100_000_000_000 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None
