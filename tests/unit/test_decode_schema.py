"""schemas/cdr.schema.json and the decoder agree on the CDR message (docs/DESIGN.md section 5)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson

from rater.pipeline import decode as decoding
from rater.settings import PROJECT_ROOT

SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "cdr.schema.json").read_text())


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def test_required_fields_are_the_decoders() -> None:
    times = {"start_time", "end_time", "billsec"}
    assert set(SCHEMA["required"]) == set(decoding._REQUIRED_STR) | times


def test_every_field_the_decoder_reads_is_described() -> None:
    read = {*decoding._REQUIRED_STR, *decoding._OPTIONAL_STR, "start_time", "answer_time",
            "end_time", "duration", "billsec"}  # fmt: skip
    assert read == set(SCHEMA["properties"])


def test_the_schemas_example_decodes() -> None:
    for example in SCHEMA["examples"]:
        batch, rejects = decoding.decode(
            [Rec(0, 0, None, orjson.dumps(example))], decoding.fixed_zone_of({})
        )
        assert rejects == []
        assert batch.cdr_id.tolist() == [example["cdr_id"]]
        assert batch.billsec.tolist() == [example["billsec"]]
