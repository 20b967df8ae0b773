"""Decode throughput per switch format, beside rater's own JSON (rater/pipeline/formats/).

The same calls written as each switch writes them (the fixtures of tests/fixtures/switches,
repeated with new ids and times) go through `decode_batch`, the pipeline's decode: a record with
the `rater-switch` header is converted by its switch's format into the fields of a CDR message,
then checked like any message; a record without it is rater's JSON on the inlined fast path.
Every record must decode (the counts are checked).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import BenchContext, BenchReport, Measurement, median_time
from rater.pipeline.decode import DecodeRules, fixed_zone_of
from rater.pipeline.formats import SWITCH_HEADER, decode_batch
from rater.tariffs.model import SwitchSettings

TITLE = "Decode per switch format (rater JSON, FreeSWITCH, Asterisk, Kamailio, mapping)"
NEEDS_STACK = False

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "switches"


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _rater(i: int) -> bytes:
    start = 1_790_002_800 + i % 40_000
    return json.dumps({
        "cdr_id": f"r{i}", "switch": "sw1", "account": f"cust{i % 600}", "caller": "+31201234567",
        "callee": f"+4930{i % 10**7:07d}", "start_time": start, "answer_time": start + 5,
        "end_time": start + 130, "billsec": 125, "disposition": "ANSWERED",
    }).encode()  # fmt: skip


def _variants(n: int) -> dict[str, tuple[SwitchSettings | None, list[bytes]]]:
    fs_doc = json.loads(
        (FIXTURES / "freeswitch" / "a_9e0c7b8a-4f2d-4c59-a8a5-0c1f3d9b7e21.cdr.json").read_text()
    )
    fs = []
    for i in range(n):
        fs_doc["variables"]["uuid"] = f"{i:08d}-4f2d-4c59-a8a5-0c1f3d9b7e21"
        fs.append(json.dumps(fs_doc).encode())
    csv_line = (FIXTURES / "asterisk" / "Master-uniqueid-userfield.csv").read_text().splitlines()[0]
    csv = [csv_line.replace('"1790002800.1"', f'"1790002800.{i}"').encode() for i in range(n)]
    kafka_line = json.loads((FIXTURES / "asterisk" / "cdr_kafka.jsonl").read_text().splitlines()[0])
    kafka = []
    for i in range(n):
        kafka_line["sequence"] = i
        kafka.append(json.dumps(kafka_line).encode())
    kam_line = json.loads((FIXTURES / "kamailio" / "acc_json.jsonl").read_text().splitlines()[0])
    kam = []
    for i in range(n):
        kam_line["call_id"] = f"{i}@pc33.example.net"
        kam.append(json.dumps(kam_line).encode())
    custom_line = (FIXTURES / "mapping" / "cdr_custom.csv").read_text().splitlines()[0]
    custom = [
        custom_line.replace('"1790003800.11"', f'"1790003800.{i}"').encode() for i in range(n)
    ]
    mapping = (FIXTURES / "mapping" / "cdr_custom.toml").read_text()
    ams = "Europe/Amsterdam"
    return {
        "rater JSON (no header)": (None, [_rater(i) for i in range(n)]),
        "freeswitch-json (mod_json_cdr, encode-values)": (
            SwitchSettings(name="fs", format="freeswitch-json"), fs,
        ),
        "asterisk-csv (Master.csv, local time)": (
            SwitchSettings(name="ast", format="asterisk-csv", timezone=ams,
                           options='{"loguniqueid":"yes","loguserfield":"yes"}'), csv,
        ),
        "asterisk-json (cdr_kafka)": (
            SwitchSettings(name="ak", format="asterisk-json", timezone="Europe/Moscow"), kafka,
        ),
        "kamailio-json (acc_json)": (SwitchSettings(name="kam", format="kamailio-json"), kam),
        "mapping (cdr_custom TOML)": (
            SwitchSettings(name="cc", format="mapping", timezone=ams, mapping=mapping), custom,
        ),
    }  # fmt: skip


def run(ctx: BenchContext) -> BenchReport:
    n = 2_000 if ctx.quick else 20_000
    repeats = 1 if ctx.quick else 3
    tz_of = fixed_zone_of({})
    rules = DecodeRules()
    rates: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name, (settings, values) in _variants(n).items():
        headers = [(SWITCH_HEADER, settings.name.encode())] if settings is not None else []
        records = [Record(0, i, None, v, 0, headers) for i, v in enumerate(values)]

        def settings_of(_name: str, settings: SwitchSettings | None = settings) -> SwitchSettings:
            assert settings is not None
            return settings

        def once(records: list[Record] = records, settings_of=settings_of) -> None:  # type: ignore[no-untyped-def]
            decoded = decode_batch(records, settings_of, tz_of, rules)
            if decoded.rejects or len(decoded.batch) != n:
                first = decoded.rejects[0].reason.text if decoded.rejects else ""
                raise AssertionError(f"{len(decoded.rejects)} of {n} rejected: {first}")

        rates[name] = n / median_time(once, repeats=repeats)
        sizes[name] = sum(len(v) for v in values) // n
    base = "rater JSON (no header)"
    measurements = [
        Measurement(f"decode {name}", rate, "CDRs/s", f"decode {base}", rates[base])
        for name, rate in rates.items()
        if name != base
    ]
    measurements.insert(0, Measurement(f"decode {base}", rates[base], "CDRs/s"))
    return BenchReport(
        title=TITLE,
        measurements=measurements,
        notes=[
            "One process, one batch of each format at a time (median of repeats). A format's "
            "converter runs in Python per record (orjson or the csv module, then its fields), "
            "and the record then takes decode's checks like a message; rater's JSON takes the "
            "inlined fast path. FreeSWITCH documents are the largest (a few KB each: call "
            "statistics, the app log, the call flow) and URL-decode each variable read; local "
            "times (Asterisk) go through strptime and the zone's rules, daylight saving "
            "included. A worker's batch is also priced, debited and stored, so a format only "
            "limits a worker if its decode is slower than those stages together "
            "(benchmarks/RESULTS.md, bench_stages)."
        ],
        params={"records per format": n, "repeats": repeats, "mean bytes": sizes},
    )
