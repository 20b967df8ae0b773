"""`mapping`: any other switch's CDRs, described by a TOML file per switch.

A mapping names, for each field of a CDR message, where its value is and how to convert it:

    input = "csv"                                   # or "json": one object per record
    columns = ["clid", "src", "dst", "start", ...]  # csv: the columns' names, in order

    [fields]
    cdr_id = { path = "uniqueid" }
    account = { path = "accountcode" }
    caller = { path = ["src", "clid"] }             # the first present, non-empty one
    callee = { path = "dst", regex = '^9(\\d+)$', replace = '\\1' }
    start_time = { path = "start", time = "%Y-%m-%d %H:%M:%S" }   # in the switch's zone
    end_time = { path = "end", time = "%Y-%m-%d %H:%M:%S" }
    answer_time = { path = "answer", time = "%Y-%m-%d %H:%M:%S" }
    billsec = { path = "billsec", convert = "int" }
    disposition = { value = "ANSWERED" }           # a constant

    [other_leg]                                     # records that are another leg
    path = "direction"
    equals = "outbound"

A path is a column name (csv) or a dotted path into the object (json; a number indexes an
array). Converters: `convert` = "text" (default), "int", "seconds" (decimal seconds, rounded
by the switch's `fractions` option), "epoch" (seconds, "1700000000.5" floors), "epoch_ms",
"epoch_us"; `time` = a strftime pattern, read in the switch's time zone (daylight saving
included) unless it has %z; `urldecode` = true; `regex` with `replace` rewrites the text
(a regex that does not match leaves it as it is). `default` is used when the value is absent
or empty. Required: cdr_id, account, caller, callee, start_time, end_time, billsec; without
a disposition, answered calls are ANSWERED and the others NO ANSWER.

A mapping is checked when `rater switch set --mapping FILE` reads it: errors name the line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import orjson

from rater.errors import ConfigError
from rater.pipeline.decode import OTHER_LEG, InvalidRecord
from rater.pipeline.formats.asterisk import split_line
from rater.pipeline.formats.common import (
    Context,
    epoch_of,
    integer_of,
    local_moment,
    path_get,
    place_call,
    seconds_of,
)
from rater.reasons import Kind, cap

NAME = "mapping"
REQUIRED = ("cdr_id", "account", "caller", "callee", "start_time", "end_time", "billsec")
OPTIONAL = ("answer_time", "duration", "disposition", "card", "auth_id", "access_number",
            "hangup_cause")  # fmt: skip
TIMES = ("start_time", "answer_time", "end_time")
NUMBERS = ("billsec", "duration")
CONVERTERS = ("text", "int", "seconds", "epoch", "epoch_ms", "epoch_us")
_SPEC_KEYS = {"path", "value", "convert", "time", "urldecode", "regex", "replace", "default"}


@dataclass(frozen=True)
class FieldSpec:
    """Where one field's value is and how it is converted."""

    name: str
    paths: tuple[tuple[str, ...], ...]
    value: str | None
    convert: str
    time: str
    urldecode: bool
    regex: re.Pattern[str] | None
    replace: str
    default: str | None

    def raw(self, record: object) -> object:
        if self.value is not None:
            return self.value
        for path in self.paths:
            found = path_get(record, path)
            if found is not None and found != "":
                return found
        return self.default

    def text(self, record: object) -> str:
        """The value as text after URL-decoding and the rewrite ("" when absent)."""
        raw = self.raw(record)
        if raw is None:
            return ""
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise InvalidRecord(
                Kind.WRONG_TYPE, f"{self.name}: got {cap(orjson.dumps(raw).decode())}"
            )
        text = str(raw)
        if self.urldecode:
            text = unquote(text)
        if self.regex is not None:
            text = self.regex.sub(self.replace, text, count=1)
        return text


@dataclass(frozen=True)
class Mapping:
    """A checked mapping."""

    input: str
    columns: tuple[str, ...]
    fields: dict[str, FieldSpec]
    other_leg: tuple[tuple[str, ...], str | None] | None


def _line_of(text: str, table: str, key: str) -> int:
    """The line defining `key` in `[table]` (or the table `[table.key]`); 0 when not found."""
    section = ""
    header = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]")
    assignment = re.compile(r'^\s*"?([A-Za-z0-9_\-]+)"?\s*=')
    for number, line in enumerate(text.splitlines(), start=1):
        found = header.match(line)
        if found:
            section = found.group(1)
            if section == f"{table}.{key}" or (not table and section == key):
                return number
            continue
        found = assignment.match(line)
        if found and found.group(1) == key and section == table:
            return number
    return 0


def _error(text: str, table: str, key: str, message: str) -> ConfigError:
    line = _line_of(text, table, key)
    where = f"line {line}: " if line else ""
    return ConfigError(f"mapping {where}{message}")


@lru_cache(maxsize=64)
def load(text: str) -> Mapping:
    """Parse and check a mapping's text; ConfigError naming the line of a problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"mapping is not TOML: {error}") from None
    for key in doc:
        if key not in ("input", "columns", "fields", "other_leg"):
            raise _error(text, "", key, f"unknown key {key!r} (input, columns, fields, other_leg)")
    kind = doc.get("input", "json")
    if kind not in ("json", "csv"):
        raise _error(text, "", "input", f"input is {kind!r}; use json or csv")
    columns = doc.get("columns", [])
    if kind == "csv":
        if not columns or not all(isinstance(c, str) and c for c in columns):
            where = "columns" if "columns" in doc else "input"
            raise _error(text, "", where, "a csv mapping names its columns, in order")
    elif columns:
        raise _error(text, "", "columns", 'columns are for input = "csv"')
    table = doc.get("fields")
    if not isinstance(table, dict):
        raise ConfigError("mapping has no [fields] table")
    fields: dict[str, FieldSpec] = {}
    for name, spec in table.items():
        if name not in REQUIRED and name not in OPTIONAL:
            raise _error(text, "fields", name, f"{name!r} is no field of a CDR message")
        fields[name] = _field(text, name, spec, kind, tuple(columns))
    for name in REQUIRED:
        if name not in fields:
            raise ConfigError(f"mapping: [fields] has no {name} (required: {', '.join(REQUIRED)})")
    patterns = {name: bool(fields[name].time) for name in TIMES if name in fields}
    if len(set(patterns.values())) > 1:
        odd = next(n for n, p in patterns.items() if p != patterns["start_time"])
        raise _error(text, "fields", odd, f"{odd}: give every time as a pattern or as an epoch")
    other = doc.get("other_leg")
    other_leg = None
    if other is not None:
        if not isinstance(other, dict) or not isinstance(other.get("path"), str):
            raise _error(text, "", "other_leg", "other_leg needs a path (and maybe equals)")
        equals = other.get("equals")
        other_leg = (_path(text, "other_leg", other["path"], kind, tuple(columns)), equals)
    return Mapping(kind, tuple(columns), fields, other_leg)


def _path(text: str, name: str, path: str, kind: str, columns: tuple[str, ...]) -> tuple[str, ...]:
    if kind == "csv":
        if path not in columns:
            raise _error(text, "fields", name, f"{name}: column {path!r} is not in columns")
        return (path,)
    return tuple(path.split("."))


def _field(text: str, name: str, spec: object, kind: str, columns: tuple[str, ...]) -> FieldSpec:
    if not isinstance(spec, dict):
        raise _error(text, "fields", name, f'{name} must be a table like {{ path = "..." }}')
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise _error(
            text, "fields", name,
            f"{name}: unknown key {sorted(unknown)[0]!r} ({', '.join(sorted(_SPEC_KEYS))})",
        )  # fmt: skip
    raw_paths = spec.get("path")
    value = spec.get("value")
    if (raw_paths is None) == (value is None):
        raise _error(text, "fields", name, f"{name} needs a path or a value (one of them)")
    if value is not None and not isinstance(value, str):
        raise _error(text, "fields", name, f"{name}: value must be a string")
    listed = [raw_paths] if isinstance(raw_paths, str) else raw_paths or []
    if not all(isinstance(p, str) and p for p in listed):
        raise _error(text, "fields", name, f"{name}: path is a string or a list of strings")
    paths = tuple(_path(text, name, p, kind, columns) for p in listed)
    convert = spec.get("convert", "text")
    if convert not in CONVERTERS:
        raise _error(
            text, "fields", name, f"{name}: convert {convert!r}; use {', '.join(CONVERTERS)}"
        )
    time = spec.get("time", "")
    if not isinstance(time, str) or (time and "%" not in time):
        raise _error(text, "fields", name, f"{name}: time is a strftime pattern like %Y-%m-%d")
    if time and convert != "text":
        raise _error(text, "fields", name, f"{name}: give time or convert, not both")
    if name in TIMES and not time and convert not in ("epoch", "epoch_ms", "epoch_us"):
        raise _error(text, "fields", name, f'{name} needs time = "PATTERN" or an epoch convert')
    if name in NUMBERS and convert not in ("int", "seconds"):
        raise _error(text, "fields", name, f'{name} needs convert = "int" or "seconds"')
    regex_text = spec.get("regex")
    regex = None
    if regex_text is not None:
        try:
            regex = re.compile(regex_text)
        except (re.error, TypeError) as error:
            raise _error(text, "fields", name, f"{name}: regex {regex_text!r}: {error}") from None
    replace = spec.get("replace", "")
    if (regex is None) != ("replace" not in spec) or not isinstance(replace, str):
        raise _error(text, "fields", name, f"{name}: regex and replace go together")
    urldecode = spec.get("urldecode", False)
    default = spec.get("default")
    if not isinstance(urldecode, bool) or (default is not None and not isinstance(default, str)):
        raise _error(text, "fields", name, f"{name}: urldecode is true/false, default a string")
    return FieldSpec(name, paths, value, convert, time, urldecode, regex, replace, default)


def _record(value: bytes, mapping: Mapping) -> object:
    if mapping.input == "csv":
        fields = split_line(value)
        if len(fields) != len(mapping.columns):
            raise InvalidRecord(
                Kind.MISSING if len(fields) < len(mapping.columns) else Kind.WRONG_TYPE,
                f"{len(fields)} columns, the mapping names {len(mapping.columns)}",
            )
        return dict(zip(mapping.columns, fields, strict=True))
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, cap(str(error))) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(Kind.NOT_AN_OBJECT, "the mapping reads JSON objects")
    return obj


def convert(value: bytes, ctx: Context) -> dict[str, Any]:
    mapping: Mapping = ctx.extra["mapping"]
    record = _record(value, mapping)
    if mapping.other_leg is not None:
        path, equals = mapping.other_leg
        found = path_get(record, path)
        if (equals is None and found not in (None, "", False)) or (
            equals is not None and found is not None and str(found) == equals
        ):
            return OTHER_LEG
    specs = mapping.fields
    out: dict[str, Any] = {"switch": ctx.switch}
    for name, spec in specs.items():
        if name in TIMES or name in NUMBERS:
            continue
        text = spec.text(record)
        if not text and name in REQUIRED:
            raise InvalidRecord(Kind.MISSING, f"{name} ({_where(spec)})")
        out[name] = text
    out["billsec"] = _number(specs["billsec"], record, ctx)
    duration_spec = specs.get("duration")
    duration = _number(duration_spec, record, ctx) if duration_spec is not None else None
    out["duration"] = duration
    _times(out, specs, record, ctx, duration)
    if "disposition" not in out:
        out["disposition"] = "ANSWERED" if out["billsec"] > 0 else "NO ANSWER"
    return out


def _where(spec: FieldSpec) -> str:
    return " or ".join(".".join(p) for p in spec.paths) or "a constant"


def _number(spec: FieldSpec, record: object, ctx: Context) -> int:
    text = spec.text(record)
    if spec.convert == "seconds":
        return seconds_of(text, spec.name, round_up=ctx.round_up)
    return integer_of(text, spec.name)


_EPOCH_DIVISORS = {"epoch": 1, "epoch_ms": 1_000, "epoch_us": 1_000_000}


def _times(
    out: dict[str, Any],
    specs: dict[str, FieldSpec],
    record: object,
    ctx: Context,
    duration: int | None,
) -> None:
    texts = {name: specs[name].text(record) if name in specs else "" for name in TIMES}
    for name in ("start_time", "end_time"):
        if not texts[name]:
            raise InvalidRecord(Kind.MISSING, f"{name} ({_where(specs[name])})")
    start_spec = specs["start_time"]
    if start_spec.time:
        read: Callable[[str, str], Any] = lambda name, text: local_moment(  # noqa: E731
            text, name, specs[name].time
        )
        answer = read("answer_time", texts["answer_time"]) if texts["answer_time"] else None
        start, answer_s, end = place_call(
            read("start_time", texts["start_time"]), answer, read("end_time", texts["end_time"]),
            ctx.tz, duration=duration, billsec=out["billsec"],
        )  # fmt: skip
        out.update(start_time=start, answer_time=answer_s, end_time=end)
        return
    for name in TIMES:
        spec = specs.get(name)
        if spec is None or not texts[name]:
            out[name] = 0
            continue
        out[name] = epoch_of(texts[name], name, divisor=_EPOCH_DIVISORS.get(spec.convert, 1))
