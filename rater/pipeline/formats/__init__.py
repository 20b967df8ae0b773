"""CDR formats of real switches, decoded into the same columnar batch as rater's own JSON.

A record names its switch in the Kafka header `rater-switch` (and may name its format in
`rater-format`, as `rater ingest --format` does); the switch's settings (`rater switch set
--format ... --option ...`) say how its records are written. The key stays the account, so
partitioning is the same whatever the format. A record without the header is rater's JSON,
which names its switch itself (docs/DESIGN.md section 5).

Each format turns one record into the fields of a CDR message; rater/pipeline/decode.py then
checks them like any message, so every format has the same outcomes (docs/DESIGN.md section
4): an invalid record is dead-lettered with its reason, another leg of a call (a FreeSWITCH
B-leg) is counted as `other leg` and never billed or stored. docs/SWITCHES.md has each
switch's configuration and what each of its fields becomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from rater.errors import ConfigError
from rater.pipeline.decode import (
    OTHER_LEG,
    Converter,
    Decoded,
    DecodeRules,
    InvalidRecord,
    KafkaRecord,
    TimezoneOf,
    decode_records,
)
from rater.pipeline.formats import asterisk, freeswitch, kamailio, mapping
from rater.pipeline.formats.common import (
    COMMON_OPTIONS,
    Context,
    ConvertFn,
    Option,
    check_options,
    parse_options,
    zone_of,
)
from rater.reasons import Kind, cap
from rater.tariffs.model import SwitchSettings

#: the Kafka header naming a record's switch (its value: the switch's name, UTF-8)
SWITCH_HEADER = "rater-switch"
#: the Kafka header naming a record's format, when its producer says it (`rater ingest`)
FORMAT_HEADER = "rater-format"
RATER = "rater"


def _rater(value: bytes, ctx: Context) -> dict[str, Any]:
    """rater's own JSON under a switch's header: the header's name is the switch."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, cap(str(error))) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(Kind.NOT_AN_OBJECT, "a CDR message is a JSON object")
    obj["switch"] = ctx.switch
    return obj


@dataclass(frozen=True)
class Format:
    name: str
    convert: ConvertFn
    options: Mapping[str, Option]
    #: how a file of this format splits into records: "lines" (one record a line), "csv"
    #: (lines, a quoted field may hold a line break) or "document" (one record a file)
    files: str
    summary: str


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(RATER, _rater, {}, "lines", "rater's JSON (docs/DESIGN.md section 5)"),
        Format(freeswitch.NAME, freeswitch.convert, freeswitch.OPTIONS, "document",
               "FreeSWITCH mod_json_cdr"),
        Format(asterisk.CSV, asterisk.convert_csv, asterisk.CSV_OPTIONS, "csv",
               "Asterisk cdr_csv (Master.csv)"),
        Format(asterisk.JSON, asterisk.convert_json, asterisk.JSON_OPTIONS, "lines",
               "Asterisk cdr_kafka (braams/asterisk-kafka)"),
        Format(kamailio.NAME, kamailio.convert, kamailio.OPTIONS, "lines",
               "Kamailio acc_json CDRs"),
        Format(mapping.NAME, mapping.convert, {}, "lines", "a TOML field mapping"),
    )
}  # fmt: skip


def format_named(name: str) -> Format:
    found = FORMATS.get(name)
    if found is None:
        raise ConfigError(f"unknown CDR format {name!r}; formats: {', '.join(FORMATS)}")
    return found


def validate(settings: SwitchSettings) -> None:
    """ConfigError naming what is wrong with a switch's format, options or mapping."""
    context(settings)


@lru_cache(maxsize=256)
def context(settings: SwitchSettings, format_name: str = "") -> Context:
    """The checked context of a switch (cached: settings are frozen and compare by value)."""
    fmt = format_named(format_name or settings.format)
    options = check_options(
        fmt.name, {**COMMON_OPTIONS, **fmt.options}, parse_options(settings.options)
    )
    extra: dict[str, Any] = {}
    if fmt.name == mapping.NAME:
        if not settings.mapping:
            raise ConfigError(
                f"switch {settings.name!r} has format mapping but no mapping "
                "(rater switch set --mapping FILE)"
            )
        extra["mapping"] = mapping.load(settings.mapping)
    if fmt.name == asterisk.CSV:
        extra["columns"] = asterisk.csv_columns(options)
    return Context(settings.name, settings, options, zone_of(settings), extra)


def convert(value: bytes, settings: SwitchSettings, format_name: str = "") -> dict[str, Any]:
    """One record's message fields (OTHER_LEG for another leg); InvalidRecord when it cannot
    be a CDR. `rater ingest` and the HTTP endpoint use it for the key (the account)."""
    ctx = context(settings, format_name)
    fmt = format_named(format_name or settings.format)
    return fmt.convert(value, ctx)


def header(record: object, name: str) -> str | None:
    """A record's header as text (None when absent)."""
    headers: Sequence[tuple[str, bytes]] | None = getattr(record, "headers", None)
    if not headers:
        return None
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", errors="replace")
    return None


SettingsOf = Callable[[str], SwitchSettings]


def converter(settings_of: SettingsOf) -> Converter:
    """decode's converter: records with a `rater-switch` header through their format."""

    def convert_record(record: KafkaRecord) -> tuple[str, dict[str, Any]] | None:
        switch = header(record, SWITCH_HEADER)
        if switch is None:
            return None
        named_format = header(record, FORMAT_HEADER) or ""
        try:
            settings = settings_of(switch)
            ctx = context(settings, named_format)
        except ConfigError as error:
            # a switch whose settings cannot read its records: each is dead-lettered with
            # the reason, and `rater dlq replay` brings them back once the settings are fixed
            raise _Unreadable(switch, error) from None
        fmt = format_named(named_format or settings.format)
        return switch, fmt.convert(record.value or b"", ctx)

    return convert_record


class _Unreadable(InvalidRecord):
    def __init__(self, switch: str, error: ConfigError) -> None:
        super().__init__(Kind.DECODE_ERROR, f"switch {cap(switch)}: {cap(str(error))}")


def decode_batch(
    records: Sequence[KafkaRecord], settings_of: SettingsOf, tz_of: TimezoneOf, rules: DecodeRules
) -> Decoded:
    """Decode a fetched batch whatever the formats of its records."""
    return decode_records(records, tz_of, rules, converter(settings_of))


__all__ = ["FORMATS", "FORMAT_HEADER", "OTHER_LEG", "RATER", "SWITCH_HEADER", "Format",
           "context", "convert", "converter", "decode_batch", "format_named", "header",
           "validate"]  # fmt: skip
