"""Generated CDR streams: exact counts, unique ids, resends, realistic numbers and durations."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC

import numpy as np
import orjson
import pytest

from rater.loadgen.durations import DISPOSITIONS, draw_calls
from rater.loadgen.generate import GenerationOptions, Generator
from rater.loadgen.invalid import KINDS, diagnose
from rater.loadgen.numbers import DEFAULT_SWITCHES, NumberBook, uncovered_block
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.loadgen.prefixes import wholesale_table
from rater.pipeline.decode import decode
from rater.switches.numbers import normalise_number

NOW = 1_790_000_000
TABLE = wholesale_table("buy", limit=400)
PREFIXES = [row.prefix for row in TABLE.rows]


@dataclass(frozen=True)
class Record:
    value: bytes
    partition: int = 0
    offset: int = 0
    key: bytes | None = None
    timestamp: int = 0


def _scenario() -> Scenario:
    customers = [
        CustomerPlan(f"c{i}", "r1", "sell", cards=(f"8000000000{i:02d}",) if i < 5 else ())
        for i in range(30)
    ]
    customers.append(CustomerPlan("batch", "r1", "cards", cards=("811", "822"), disposable=True))
    return Scenario("t", (ResellerPlan("r1", "buy"),), tuple(customers))


def _generator(run_id: str = "run1", **options: object) -> Generator:
    book = NumberBook.from_prefixes(PREFIXES, seed=2)
    return Generator(_scenario(), book, GenerationOptions(**options), run_id, now=NOW)  # type: ignore[arg-type]


def test_counts_are_exact_across_chunks() -> None:
    gen = _generator(invalid_fraction=0.05, duplicate_fraction=0.03)
    chunks = [gen.chunk(n) for n in (997, 1500, 3, 2500)]
    total = sum(len(c) for c in chunks)
    assert total == 5000
    assert sum(sum(c.invalid.values()) for c in chunks) == 250
    assert sum(c.duplicates for c in chunks) == 150
    kinds: Counter[str] = Counter()
    for chunk in chunks:
        for value in chunk.values:
            found = diagnose(value)
            kinds[found.value if found else "valid"] += 1
    assert kinds["valid"] == 5000 - 250
    assert set(kinds) - {"valid"} == {k.value for k in KINDS}  # every kind, in turn
    assert max(kinds[k.value] for k in KINDS) - min(kinds[k.value] for k in KINDS) <= 1


def test_cdr_ids_unique_per_run_and_duplicates_are_later_identical_resends() -> None:
    gen = _generator(duplicate_fraction=0.1)
    chunk = gen.chunk(4000)
    first_seen: dict[tuple[str, str], int] = {}
    resends = 0
    for position, (key, value) in enumerate(zip(chunk.keys, chunk.values, strict=True)):
        record = orjson.loads(value)
        assert record["cdr_id"].startswith("run1-")
        assert key == record["account"].encode()  # key = account
        ident = (record["switch"], record["cdr_id"])
        if ident in first_seen:
            resends += 1
            earlier = first_seen[ident]
            assert earlier < position
            assert chunk.values[earlier] == value
            assert chunk.keys[earlier] == key
        else:
            first_seen[ident] = position
    assert resends == chunk.duplicates == 400
    other = _generator(run_id="run2", duplicate_fraction=0.1).chunk(4000)
    ids_other = {orjson.loads(v)["cdr_id"] for v in other.values}
    assert not ids_other & {i for _, i in first_seen}  # a second run is new traffic


def test_same_seed_same_traffic() -> None:
    a = _generator(seed=9).chunk(500).values
    b = _generator(seed=9).chunk(500).values
    c = _generator(seed=10).chunk(500).values
    assert a == b
    assert a != c


def test_valid_records_decode_and_their_numbers_normalise_to_the_intended_number() -> None:
    gen = _generator(unrated_fraction=0.05)
    chunk = gen.chunk(3000)
    records = [Record(v) for v in chunk.values]
    batch, rejects = decode(records, lambda _switch: UTC)
    assert rejects == []
    assert len(batch) == 3000
    intended = gen.book.intended(chunk.calls.callee_code, gen.switches)
    formats: Counter[str] = Counter()
    for i in range(len(chunk.calls)):
        profile = gen.switches[int(chunk.calls.switch[i])]
        dialled = str(chunk.calls.callee[i])
        assert normalise_number(dialled, profile.settings()) == intended[i], dialled
        if profile.tech_prefix and dialled.startswith(profile.tech_prefix):
            formats["tech"] += 1
            dialled = dialled[len(profile.tech_prefix) :]
        if dialled.startswith("+"):
            formats["plus"] += 1
        elif dialled.startswith(profile.international_prefix):
            formats["international"] += 1
        else:
            formats["national"] += 1
    assert min(formats.values()) > 30, formats  # every format switches use is present


def test_timestamps_follow_each_switch_format_and_are_consistent() -> None:
    gen = _generator()
    chunk = gen.chunk(2000)
    batch, _ = decode([Record(v) for v in chunk.values], lambda _switch: UTC)
    assert (batch.end <= NOW).all()
    assert (batch.end - batch.start == batch.duration).all()
    answered = batch.billsec > 0
    assert (
        batch.end[answered] - batch.answer[answered] == batch.billsec[answered]
    ).sum() >= 0.98 * answered.sum()
    by_switch = {s.name: s.time_format for s in DEFAULT_SWITCHES}
    for value in chunk.values[:300]:
        record = orjson.loads(value)
        kind = by_switch[record["switch"]]
        if kind == "iso":
            assert isinstance(record["start_time"], str)
            assert record["start_time"][10] == "T"
        elif kind == "epoch":
            assert isinstance(record["start_time"], int)
            assert record["start_time"] < 10**10
        else:
            assert isinstance(record["start_time"], int)
            assert record["start_time"] > 10**11


def test_durations_look_like_a_switch_day() -> None:
    calls = draw_calls(np.random.default_rng(4), 100_000, 0.33)
    unanswered = calls.billsec == 0
    assert 0.31 < unanswered.mean() < 0.35
    talk = calls.billsec[~unanswered]
    assert 60 < np.median(talk) < 150  # most calls a few minutes at most
    assert np.percentile(talk, 99.5) > 1200  # a long tail
    assert talk.max() <= 4 * 3600
    names = np.array(DISPOSITIONS)[calls.disposition]
    assert set(names[unanswered]) >= {
        "NO ANSWER",
        "BUSY",
        "FAILED",
        "CONGESTION",
        "CANCEL",
        "CHANUNAVAIL",
    }
    assert (names[~unanswered] == "ANSWERED").all()
    assert ((names == "ANSWERED") & unanswered).sum() > 0  # answered with billsec 0 exists too


def test_destination_popularity_is_skewed() -> None:
    book = NumberBook.from_prefixes(PREFIXES, seed=2)
    switch = np.zeros(50_000, dtype=np.int64)
    dest = book.draw(np.random.default_rng(1), switch, DEFAULT_SWITCHES[:1], 0.0) // 16
    counts = np.sort(np.bincount(dest, minlength=len(PREFIXES)))[::-1]
    top = counts[: len(PREFIXES) // 20].sum() / counts.sum()
    assert top > 0.3  # the top 5% of destinations carry a third of the calls or more


def test_uncovered_block_is_really_uncovered() -> None:
    block = uncovered_block(PREFIXES)
    assert block is not None
    assert not any(block.startswith(p) or p.startswith(block) for p in PREFIXES)
    assert uncovered_block([str(i) for i in range(1, 10)]) is None


@pytest.mark.parametrize(
    "bad", [{"invalid_fraction": 1.2}, {"invalid_fraction": 0.6, "duplicate_fraction": 0.5}]
)
def test_bad_options_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="fraction"):
        GenerationOptions(**bad)  # type: ignore[arg-type]


def test_only_card_batch_customers_make_only_card_calls() -> None:
    scenario = Scenario(
        "cards",
        (ResellerPlan("r1", "buy"),),
        (CustomerPlan("batch", "r1", "cards", cards=("811", "822"), disposable=True),),
    )
    book = NumberBook.from_prefixes(PREFIXES, seed=2)
    chunk = Generator(scenario, book, GenerationOptions(), "r", now=NOW).chunk(300)
    assert (chunk.calls.card >= 0).all()
    assert all(orjson.loads(v)["card"] in ("811", "822") for v in chunk.values)
