"""The invalid-record catalogue: every kind is what it claims, for the catalogue's own validator
and for rater's decoder (rater/pipeline/decode.py) and normaliser (rater/switches/numbers.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC

import numpy as np
import orjson
import pytest

from rater.errors import NormalisationError
from rater.loadgen.generate import GenerationOptions, Generator
from rater.loadgen.invalid import CATALOGUE, KINDS, InvalidKind, corrupt, diagnose
from rater.loadgen.numbers import DEFAULT_SWITCHES, NumberBook
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.pipeline.decode import decode
from rater.reasons import Reason
from rater.switches.numbers import normalise_number


@dataclass(frozen=True)
class Record:
    value: bytes
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: int = 0


def _valid_records(n: int) -> list[dict[str, object]]:
    book = NumberBook.from_prefixes(["31", "3161", "44", "49", "1"], seed=3)
    scenario = Scenario(
        "t",
        (ResellerPlan("r1", "buy"),),
        (
            CustomerPlan("c1", "r1", "sell", cards=("800000000018",)),
            CustomerPlan("c2", "r1", "sell"),
        ),
    )
    gen = Generator(scenario, book, GenerationOptions(seed=5), "run", now=1_790_000_000)
    chunk = gen.chunk(n)
    return [orjson.loads(v) for v in chunk.values]


def _decode_reason(value: bytes) -> Reason | None:
    batch, rejects = decode([Record(value)], lambda _switch: UTC)
    if rejects:
        return rejects[0].reason
    assert len(batch) == 1
    return None


def test_valid_generated_records_pass_the_validator_and_the_decoder() -> None:
    for record in _valid_records(300):
        value = orjson.dumps(record)
        assert diagnose(value) is None, value
        assert _decode_reason(value) is None, value


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_fails_for_its_stated_reason(kind: InvalidKind) -> None:
    rng = np.random.default_rng(11)
    info = CATALOGUE[kind]
    switches = {s.name: s.settings() for s in DEFAULT_SWITCHES}
    for record in _valid_records(60):
        value = corrupt(kind, record, rng)
        assert diagnose(value) is kind, value
        reason = _decode_reason(value)
        if info.expected_kind is None:
            # decodes, but the pipeline cannot normalise the callee: dead letter all the same
            assert reason is None, (value, reason)
            callee = orjson.loads(value)["callee"]
            with pytest.raises(NormalisationError):
                normalise_number(callee, switches[str(record["switch"])])
        else:
            assert reason is not None, value
            assert reason.kind == info.expected_kind, (kind, reason, value)
            assert re.search(info.expected_detail, reason.detail), (kind, reason, value)


def test_corrupt_leaves_the_original_record_alone() -> None:
    record = _valid_records(1)[0]
    before = dict(record)
    for kind in KINDS:
        corrupt(kind, record, np.random.default_rng(1))
    assert record == before
