"""Switch formats (rater/pipeline/formats/): each fixture of tests/fixtures/switches decodes into
the CDR the switch meant, in UTC, with the outcome rules of docs/DESIGN.md section 4."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from rater.errors import ConfigError
from rater.pipeline.decode import CdrBatch, Decoded, Reject, fixed_zone_of
from rater.pipeline.formats import (
    FORMAT_HEADER,
    SWITCH_HEADER,
    decode_batch,
    validate,
)
from rater.pipeline.formats.common import dump_options
from rater.pipeline.formats.mapping import load
from rater.tariffs.model import SwitchSettings

FIXTURES = Path(__file__).parents[1] / "fixtures" / "switches"
S = 1_790_002_800  # 2026-09-21T15:00:00Z, 17:00 in Amsterdam


@dataclass
class Rec:
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: int = 0


def switch(
    name: str, fmt: str, tz: str = "UTC", mapping: str = "", **options: str
) -> SwitchSettings:
    return SwitchSettings(
        name=name, format=fmt, timezone=tz, mapping=mapping, options=dump_options(options)
    )


def run(settings: SwitchSettings, values: list[bytes], fmt: str = "") -> Decoded:
    headers = [(SWITCH_HEADER, settings.name.encode())]
    if fmt:
        headers.append((FORMAT_HEADER, fmt.encode()))
    records = [Rec(v, list(headers), offset=i) for i, v in enumerate(values)]
    return decode_batch(records, lambda _name: settings, fixed_zone_of({}), _rules())


def _rules() -> Any:
    from rater.pipeline.decode import DecodeRules

    return DecodeRules()


def rows(batch: CdrBatch) -> list[dict[str, Any]]:
    names = ("cdr_id", "switch", "account", "caller", "callee", "card", "start", "answer", "end",
             "duration", "billsec", "disposition", "hangup_cause")  # fmt: skip
    return [
        {name: getattr(batch, name)[i].item() if hasattr(getattr(batch, name)[i], "item")
         else getattr(batch, name)[i] for name in names}
        for i in range(len(batch))
    ]  # fmt: skip


def reasons(rejects: list[Reject]) -> list[str]:
    return [reject.reason.text for reject in rejects]


# ------------------------------------------------------------------------ freeswitch-json
FS = switch("fs1", "freeswitch-json")
A_LEG = (FIXTURES / "freeswitch" / "a_9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21.cdr.json").read_bytes()
B_LEG = (FIXTURES / "freeswitch" / "3f6a1b2c-7d8e-4f90-a1b2-c3d4e5f60718.cdr.json").read_bytes()


def test_freeswitch_a_leg_as_the_module_posts_it() -> None:
    decoded = run(FS, [A_LEG])
    assert decoded.rejects == []
    assert rows(decoded.batch) == [
        {"cdr_id": "9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21", "switch": "fs1", "account": "cust1",
         "caller": "1001", "callee": "00493012345678", "card": "", "start": S, "answer": S + 5,
         "end": S + 130, "duration": 130, "billsec": 125, "disposition": "ANSWERED",
         "hangup_cause": "NORMAL_CLEARING"}
    ]  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        A_LEG,
        b"cdr=" + quote(A_LEG.decode(), safe="").encode(),  # encode=true (form, URL-encoded)
        b"cdr=" + base64.b64encode(A_LEG),  # encode=base64
    ],
)
def test_freeswitch_bodies_json_form_and_base64(body: bytes) -> None:
    decoded = run(FS, [body])
    assert [r["cdr_id"] for r in rows(decoded.batch)] == ["9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21"]


def test_freeswitch_b_leg_is_another_leg_never_billed() -> None:
    decoded = run(FS, [A_LEG, B_LEG])
    assert (len(decoded.batch), decoded.other_legs, decoded.rejects) == (1, 1, [])


def test_freeswitch_encode_values_off_reads_plain_values() -> None:
    plain = (FIXTURES / "freeswitch" / "plain-values.cdr.json").read_bytes()
    decoded = run(switch("fs1", "freeswitch-json", **{"encode-values": "false"}), [plain])
    assert rows(decoded.batch)[0]["billsec"] == 61
    assert rows(decoded.batch)[0]["start"] == S + 600
    # the same document read as if values were URL-encoded: plain values have no escapes, so
    # the numbers still read; a '%' in a plain value would not
    assert len(run(FS, [plain]).batch) == 1


def test_freeswitch_billmsec_rounds_up_by_default_and_down_when_set() -> None:
    up = run(switch("fs1", "freeswitch-json", billsec="billmsec"), [A_LEG])
    down = run(switch("fs1", "freeswitch-json", billsec="billmsec", fractions="down"), [A_LEG])
    assert (rows(up.batch)[0]["billsec"], rows(down.batch)[0]["billsec"]) == (126, 125)


def test_freeswitch_account_from_another_variable_and_unanswered() -> None:
    doc = json.loads(A_LEG)
    doc["variables"]["billing_account"] = "cust2"
    other = run(
        switch("fs1", "freeswitch-json", account="billing_account"), [json.dumps(doc).encode()]
    )
    assert rows(other.batch)[0]["account"] == "cust2"
    missing = run(switch("fs1", "freeswitch-json", account="nope"), [A_LEG])
    assert reasons(missing.rejects) == ["missing field: variables.nope (the account)"]
    unanswered = run(FS, [(FIXTURES / "freeswitch" / "unanswered.cdr.json").read_bytes()])
    row = rows(unanswered.batch)[0]
    assert (row["billsec"], row["answer"], row["disposition"]) == (0, 0, "NO ANSWER")


def test_freeswitch_callee_falls_back_to_sip_req_user_and_stamps_are_local() -> None:
    doc = json.loads(A_LEG)
    del doc["callflow"]
    for name in ("start_epoch", "start_uepoch", "answer_epoch", "answer_uepoch", "end_epoch",
                 "end_uepoch"):  # fmt: skip
        del doc["variables"][name]
    decoded = run(switch("fs1", "freeswitch-json", "Europe/Amsterdam"), [json.dumps(doc).encode()])
    row = rows(decoded.batch)[0]
    assert (row["caller"], row["callee"]) == ("1001", "00493012345678")
    assert (row["start"], row["answer"], row["end"]) == (S, S + 5, S + 130)


def test_freeswitch_not_a_cdr_is_rejected_with_the_reason() -> None:
    decoded = run(FS, [b"not json", b"[1]", b'{"variables": {}}', b"cdr=%7Bbroken"])
    assert [r.reason.kind.value for r in decoded.rejects] == [
        "bad json", "not an object", "missing field", "bad json",
    ]  # fmt: skip


# ------------------------------------------------------------------------ asterisk-csv
AMS = "Europe/Amsterdam"


def test_asterisk_master_csv_default_columns() -> None:
    lines = (FIXTURES / "asterisk" / "Master.csv").read_bytes().splitlines()
    decoded = run(switch("ast1", "asterisk-csv", AMS), lines)
    got = rows(decoded.batch)
    assert [(r["start"], r["answer"], r["end"], r["billsec"], r["disposition"]) for r in got] == [
        (S, S + 5, S + 130, 125, "ANSWERED"),
        (S + 300, 0, S + 330, 0, "NO ANSWER"),
        (S + 400, S + 401, S + 461, 60, "ANSWERED"),
    ]
    assert [r["callee"] for r in got] == ["00493012345678", "0201234567", "112"]
    assert all(r["cdr_id"].startswith("sha256:") for r in got)  # no uniqueid column
    assert reasons(decoded.rejects) == ["missing field: dst"]
    again = run(switch("ast1", "asterisk-csv", AMS), lines)
    assert list(again.batch.cdr_id) == list(decoded.batch.cdr_id)  # a file read twice


def test_asterisk_master_csv_with_uniqueid_and_userfield() -> None:
    lines = (FIXTURES / "asterisk" / "Master-uniqueid-userfield.csv").read_bytes().splitlines()
    both = switch("ast1", "asterisk-csv", AMS, loguniqueid="yes", loguserfield="yes")
    decoded = run(both, lines)
    assert list(decoded.batch.cdr_id) == ["1790002800.1", "1790003100.3", "1790003200.5"]
    wrong = run(switch("ast1", "asterisk-csv", AMS), lines[:1])
    assert "18 columns, but this switch's cdr_csv writes 16" in reasons(wrong.rejects)[0]


def test_asterisk_local_time_across_the_end_of_daylight_saving() -> None:
    """Europe/Amsterdam, 2026-10-25: 03:00 CEST becomes 02:00 CET. A call from 02:59:30 (the
    first, summer reading) to 02:00:30 (the second, winter one) lasted 60 s."""
    line = (
        '"cust1","1001","0493012345678","from-internal","","PJSIP/1001-1","PJSIP/c-2","Dial","",'
        '"2026-10-25 02:59:30","2026-10-25 02:59:30","2026-10-25 02:00:30",60,60,"ANSWERED",'
        '"DOCUMENTATION"'
    )
    row = rows(run(switch("ast1", "asterisk-csv", AMS), [line.encode()]).batch)[0]
    start = int(datetime(2026, 10, 25, 0, 59, 30, tzinfo=UTC).timestamp())
    assert (row["start"], row["answer"], row["end"]) == (start, start, start + 60)


def test_asterisk_local_time_across_the_start_of_daylight_saving() -> None:
    """Europe/Amsterdam, 2026-03-29: 02:00 CET becomes 03:00 CEST."""
    line = (
        '"cust1","1001","0493012345678","from-internal","","PJSIP/1001-1","PJSIP/c-2","Dial","",'
        '"2026-03-29 01:59:30","2026-03-29 01:59:30","2026-03-29 03:00:30",60,60,"ANSWERED",'
        '"DOCUMENTATION"'
    )
    row = rows(run(switch("ast1", "asterisk-csv", AMS), [line.encode()]).batch)[0]
    start = int(datetime(2026, 3, 29, 0, 59, 30, tzinfo=UTC).timestamp())
    assert (row["start"], row["end"], row["billsec"]) == (start, start + 60, 60)


def test_asterisk_local_time_across_utc_midnight() -> None:
    """New York, 19:59:30 to 20:01:30 EDT: the call crosses midnight UTC."""
    line = (
        '"cust1","1001","0493012345678","from-internal","","PJSIP/1001-1","PJSIP/c-2","Dial","",'
        '"2026-09-21 19:59:30","2026-09-21 19:59:40","2026-09-21 20:01:30",120,110,"ANSWERED",'
        '"DOCUMENTATION"'
    )
    row = rows(run(switch("ast1", "asterisk-csv", "America/New_York"), [line.encode()]).batch)[0]
    start = int(datetime(2026, 9, 21, 23, 59, 30, tzinfo=UTC).timestamp())
    assert (row["start"], row["answer"], row["end"]) == (start, start + 10, start + 120)
    assert datetime.fromtimestamp(row["end"], UTC).day == 22


# ------------------------------------------------------------------------ asterisk-json
def test_asterisk_cdr_kafka_json() -> None:
    lines = (FIXTURES / "asterisk" / "cdr_kafka.jsonl").read_bytes().splitlines()
    decoded = run(switch("ast2", "asterisk-json", "Europe/Moscow"), lines)
    got = rows(decoded.batch)
    assert [(r["cdr_id"], r["start"], r["answer"], r["end"], r["billsec"], r["disposition"])
            for r in got] == [
        ("1790004800.21/21", S + 2000, S + 2006, S + 2131, 125, "ANSWERED"),
        ("1790005000.23/23", S + 2200, 0, S + 2212, 0, "NO ANSWER"),  # answer: the epoch, local
        ("1790005000.23/24", S + 2200, S + 2203, S + 2263, 60, "ANSWERED"),
    ]  # fmt: skip


# ------------------------------------------------------------------------ kamailio-json
def test_kamailio_acc_json() -> None:
    lines = (FIXTURES / "kamailio" / "acc_json.jsonl").read_bytes().splitlines()
    decoded = run(switch("kam1", "kamailio-json"), lines)
    got = rows(decoded.batch)
    assert got[0]["cdr_id"] == "a84b4c76e66710@pc33.example.net;from-tag=1928301774"
    assert (got[0]["caller"], got[0]["callee"], got[0]["account"]) == (
        "1001", "+493012345678", "cust1",
    )  # fmt: skip
    # start: the INVITE's $TS (setup_time); answer: acc's start_time; 65.432 s bills 66
    assert (got[0]["start"], got[0]["answer"], got[0]["end"], got[0]["billsec"]) == (
        S + 3000, S + 3004, S + 3069, 66,
    )  # fmt: skip
    assert (got[1]["billsec"], got[1]["answer"], got[1]["disposition"]) == (0, 0, "NO ANSWER")
    down = run(switch("kam1", "kamailio-json", fractions="down"), lines[:1])
    assert rows(down.batch)[0]["billsec"] == 65


def test_kamailio_without_setup_time_starts_at_the_answer() -> None:
    record = json.loads((FIXTURES / "kamailio" / "acc_json.jsonl").read_text().splitlines()[0])
    del record["setup_time"]
    row = rows(run(switch("kam1", "kamailio-json"), [json.dumps(record).encode()]).batch)[0]
    assert (row["start"], row["answer"]) == (S + 3004, S + 3004)


def test_kamailio_account_field_named_by_the_switch() -> None:
    record = json.loads((FIXTURES / "kamailio" / "acc_json.jsonl").read_text().splitlines()[0])
    record["acct"] = "cust2"
    got = run(switch("kam1", "kamailio-json", account="acct"), [json.dumps(record).encode()])
    assert rows(got.batch)[0]["account"] == "cust2"


# ------------------------------------------------------------------------ mapping
MAPPING = (FIXTURES / "mapping" / "cdr_custom.toml").read_text()


def test_mapping_reads_cdr_custom_with_fractions() -> None:
    lines = (FIXTURES / "mapping" / "cdr_custom.csv").read_bytes().splitlines()
    decoded = run(switch("ast3", "mapping", AMS, mapping=MAPPING), lines)
    got = rows(decoded.batch)
    assert decoded.rejects == []
    assert [(r["cdr_id"], r["start"], r["answer"], r["end"], r["billsec"], r["duration"])
            for r in got] == [
        ("1790003800.11", S + 1000, S + 1004, S + 1130, 126, 131),
        ("1790004000.13", S + 1200, 0, S + 1215, 0, 16),
    ]  # fmt: skip


def test_mapping_json_paths_regex_urldecode_and_other_leg() -> None:
    text = """
[fields]
cdr_id = { path = "call.id" }
account = { path = "acct", default = "cust9" }
caller = { path = ["from", "ani"], urldecode = true }
callee = { path = "to", regex = '^9(\\d+)$', replace = '\\1' }
start_time = { path = "t.0", convert = "epoch_ms" }
end_time = { path = "t.1", convert = "epoch_ms" }
billsec = { path = "secs", convert = "seconds" }

[other_leg]
path = "leg"
equals = "b"
"""
    records = [
        {"call": {"id": "x1"}, "ani": "%2B31201234567", "to": "900493012345678",
         "t": [1790002800000, 1790002900500], "secs": "99.2"},
        {"call": {"id": "x2"}, "leg": "b", "from": "1", "to": "2", "t": [0, 0], "secs": "0"},
    ]  # fmt: skip
    decoded = run(switch("m1", "mapping", mapping=text), [json.dumps(r).encode() for r in records])
    assert decoded.other_legs == 1
    row = rows(decoded.batch)[0]
    assert (row["account"], row["caller"], row["callee"]) == (
        "cust9",
        "+31201234567",
        "00493012345678",
    )
    assert (row["start"], row["end"], row["billsec"], row["disposition"]) == (
        S,
        S + 100,
        100,
        "ANSWERED",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('input = "csv"\n[fields]\n', "line 1: a csv mapping names its columns"),
        ("[fields]\ncdr_id = { path = 'a' }\ncallee = { paht = 'b' }\n",
         "line 3: callee: unknown key 'paht'"),
        ("[fields]\ncdr_id = { path = 'a' }\n\nstart_time = { path = 's' }\n",
         "line 4: start_time needs time"),
        ("[fields]\nbillsec = { path = 'b', convert = 'float' }\n",
         "line 2: billsec: convert 'float'"),
        ("[fields]\n[fields.callee]\nregex = '('\npath = 'x'\nreplace = ''\n",
         "line 2: callee: regex"),
        ("[fields]\ncdr_id = { path = 'a' }\n", "[fields] has no account"),
        ("[fields\n", "mapping is not TOML"),
    ],
)  # fmt: skip
def test_mapping_errors_name_the_line(text: str, message: str) -> None:
    load.cache_clear()
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert message in str(caught.value)


# ------------------------------------------------------------------------ settings and routing
def test_settings_are_checked() -> None:
    validate(switch("a", "freeswitch-json", billsec="billmsec"))
    with pytest.raises(ConfigError, match="unknown CDR format 'sip'"):
        validate(switch("a", "sip"))
    with pytest.raises(ConfigError, match="has no option 'colour'"):
        validate(switch("a", "freeswitch-json", colour="red"))
    with pytest.raises(ConfigError, match="use one of up, down"):
        validate(switch("a", "kamailio-json", fractions="sideways"))
    with pytest.raises(ConfigError, match="no mapping"):
        validate(switch("a", "mapping"))


def test_records_without_the_header_are_rater_json_and_the_header_names_the_switch() -> None:
    message = {"cdr_id": "c1", "switch": "json-says", "account": "cust1", "caller": "1",
               "callee": "+493012345678", "start_time": S, "end_time": S + 60, "billsec": 60,
               "disposition": "ANSWERED"}  # fmt: skip
    plain = Rec(json.dumps(message).encode())
    named = Rec(json.dumps(message).encode(), [(SWITCH_HEADER, b"edge")], offset=1)
    kam = (FIXTURES / "kamailio" / "acc_json.jsonl").read_bytes().splitlines()[0]
    formatted = Rec(kam, [(SWITCH_HEADER, b"kam1"), (FORMAT_HEADER, b"kamailio-json")], offset=2)
    seen: list[str] = []

    def settings_of(name: str) -> SwitchSettings:
        seen.append(name)
        return SwitchSettings(name=name)

    decoded = decode_batch([plain, named, formatted], settings_of, fixed_zone_of({}), _rules())
    assert list(decoded.batch.switch) == ["json-says", "edge", "kam1"]
    assert list(decoded.batch.index) == [0, 1, 2]
    assert seen == ["edge", "kam1"]


def test_a_switch_whose_settings_cannot_read_its_records_dead_letters_them() -> None:
    bad = SwitchSettings(name="m", format="mapping")  # no mapping text
    decoded = run(bad, [b"{}"])
    assert len(decoded.rejects) == 1
    assert "has format mapping but no mapping" in decoded.rejects[0].reason.text
