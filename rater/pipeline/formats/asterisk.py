"""`asterisk-csv` (cdr_csv's Master.csv) and `asterisk-json` (the cdr_kafka module of
braams/asterisk-kafka).

cdr_csv (cdr/cdr_csv.c of Asterisk, build_csv_record) writes, per CDR, one line of quoted
strings and bare integers: accountcode, src, dst, dcontext, clid, channel, dstchannel,
lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags, then uniqueid
(loguniqueid=yes), userfield (loguserfield=yes), and peeraccount, linkedid, sequence
(newcdrcolumns=yes). Times are "%Y-%m-%d %H:%M:%S" in the server's local time unless
usegmtime=yes; an unanswered call's answer is an empty field. The switch's options name the
columns it writes, its time zone setting the zone of the times.

cdr_kafka (cdr_kafka.c, obj_as_is) publishes one JSON object per CDR with the same names in
lower case, duration, billsec, disposition, amaflags and sequence as integers, and times
formatted with its `dateformat` (default "%F %T") in its `timezone`; an unanswered call's
answer time is the epoch printed in that zone ("1970-01-01 03:00:00" in Moscow).

Identity: uniqueid is the channel's; Asterisk writes one CDR per dialled party of a parallel
dial and per bridge of a transfer, all with Party A's uniqueid (include/asterisk/cdr.h), told
apart by `sequence`. The id is therefore uniqueid/sequence where the record has a sequence,
uniqueid alone where it has only that, and without either a SHA-256 of the channel, start,
source, destination and destination channel, so a file read twice is still de-duplicated.
"""

from __future__ import annotations

import csv
import hashlib
from typing import Any

import orjson

from rater.pipeline.decode import InvalidRecord
from rater.pipeline.formats.common import (
    Context,
    Option,
    integer_of,
    local_moment,
    place_call,
    text_of,
)
from rater.reasons import Kind, cap

CSV = "asterisk-csv"
JSON = "asterisk-json"

YES_NO = ("yes", "no")
CSV_OPTIONS = {
    "loguniqueid": Option("no", YES_NO, "cdr.conf [csv] loguniqueid: the uniqueid column"),
    "loguserfield": Option("no", YES_NO, "cdr.conf [csv] loguserfield: the userfield column"),
    "newcdrcolumns": Option("no", YES_NO, "cdr.conf [csv] newcdrcolumns: peeraccount, ..."),
}
JSON_OPTIONS = {
    "dateformat": Option("%Y-%m-%d %H:%M:%S", (), "cdr_kafka.conf dateformat (%F %T)"),
}

#: Master.csv's columns before the optional ones (build_csv_record)
BASE_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
)  # fmt: skip
DATE = "%Y-%m-%d %H:%M:%S"

#: enum ast_cdr_disposition (include/asterisk/cdr.h) -> ast_cdr_disp2str's words
DISPOSITIONS = {
    0: "NO ANSWER", 1: "NO ANSWER", 2: "FAILED", 4: "BUSY", 8: "ANSWERED", 16: "CONGESTION",
}  # fmt: skip


def csv_columns(options: dict[str, str]) -> tuple[str, ...]:
    columns = list(BASE_COLUMNS)
    if options.get("loguniqueid") == "yes":
        columns.append("uniqueid")
    if options.get("loguserfield") == "yes":
        columns.append("userfield")
    if options.get("newcdrcolumns") == "yes":
        columns += ["peeraccount", "linkedid", "sequence"]
    return tuple(columns)


def split_line(value: bytes) -> list[str]:
    """The fields of one CSV line (quotes doubled inside quoted fields, as cdr_csv writes)."""
    try:
        text = value.decode()
    except UnicodeDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, f"not UTF-8: {cap(str(error))}") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise InvalidRecord(Kind.EMPTY, "an empty line")
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error as error:
        raise InvalidRecord(Kind.BAD_JSON, f"not one CSV line: {cap(str(error))}") from None
    if len(rows) != 1:
        raise InvalidRecord(Kind.BAD_JSON, "not one CSV line")
    return rows[0]


def convert_csv(value: bytes, ctx: Context) -> dict[str, Any]:
    columns: tuple[str, ...] = ctx.extra["columns"]
    fields = split_line(value)
    if len(fields) != len(columns):
        raise InvalidRecord(
            Kind.MISSING if len(fields) < len(columns) else Kind.WRONG_TYPE,
            f"{len(fields)} columns, but this switch's cdr_csv writes {len(columns)} "
            f"({_options_text(ctx)}; rater switch set --option ...)",
        )
    row = dict(zip(columns, fields, strict=True))
    return _cdr(row, ctx, DATE, answer_empty=True)


def _options_text(ctx: Context) -> str:
    return ", ".join(f"{k}={ctx.options[k]}" for k in CSV_OPTIONS)


def convert_json(value: bytes, ctx: Context) -> dict[str, Any]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, cap(str(error))) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(Kind.NOT_AN_OBJECT, "a cdr_kafka record is a JSON object")
    disposition = obj.get("disposition")
    if isinstance(disposition, int) and not isinstance(disposition, bool):
        obj = {**obj, "disposition": DISPOSITIONS.get(disposition, f"UNKNOWN {disposition}")}
    return _cdr(obj, ctx, ctx.options["dateformat"], answer_empty=False)


def _cdr(row: dict[str, Any], ctx: Context, pattern: str, *, answer_empty: bool) -> dict[str, Any]:
    billsec = integer_of(row.get("billsec"), "billsec")
    duration = integer_of(row.get("duration"), "duration")
    start = local_moment(row.get("start"), "start", pattern)
    end = local_moment(row.get("end"), "end", pattern)
    answer_raw = row.get("answer")
    answer = None
    if answer_raw not in (None, ""):
        answer = local_moment(answer_raw, "answer", pattern)
        if not answer_empty and answer.year <= 1970:
            answer = None  # cdr_kafka prints an unanswered call's zero time in its zone
    epochs = place_call(start, answer, end, ctx.tz, duration=duration, billsec=billsec)
    return {
        "cdr_id": _cdr_id(row),
        "switch": ctx.switch,
        "account": text_of(row.get("accountcode"), "accountcode"),
        "caller": text_of(row.get("src"), "src"),
        "callee": text_of(row.get("dst"), "dst"),
        "access_number": "",
        "card": "",
        "auth_id": "",
        "start_time": epochs[0],
        "answer_time": epochs[1],
        "end_time": epochs[2],
        "duration": duration,
        "billsec": billsec,
        "disposition": text_of(row.get("disposition"), "disposition"),
        "hangup_cause": "",
    }


def _cdr_id(row: dict[str, Any]) -> str:
    uniqueid = text_of(row.get("uniqueid"), "uniqueid", required=False)
    sequence = row.get("sequence")
    if uniqueid and sequence not in (None, ""):
        return f"{uniqueid}/{text_of(sequence, 'sequence')}"
    if uniqueid:
        return uniqueid
    parts = [
        text_of(row.get(name), name, required=False)
        for name in ("channel", "start", "src", "dst", "dstchannel")
    ]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"sha256:{digest[:32]}"
