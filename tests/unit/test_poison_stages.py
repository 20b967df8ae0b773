"""The stages after decode keep one record from stopping a batch: normalise groups switches by
exact name, batch-level calls are halved around the records that fail, prices above the maximum
are unrated, dead letters fit the topic, metric labels stay in closed sets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
import orjson
import pytest
import redis.exceptions
from prometheus_client import REGISTRY

from rater import metrics
from rater.accounts.lookup import Resolved
from rater.errors import ServiceUnavailable
from rater.pipeline import fates
from rater.pipeline.deadletter import RECORD_OVERHEAD, letter_of
from rater.pipeline.decode import CdrBatch, Reject, decode
from rater.pipeline.fates import UNRATED, BatchReport, count, observe, rated_columns
from rater.pipeline.isolate import bisect, is_infrastructure
from rater.pipeline.normalise import SwitchCache, normalise
from rater.reasons import Kind, Reason, cap, quote
from rater.settings import Settings
from rater.switches.numbers import normalise_many, normalise_number
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable

START = 1_790_000_000


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def _cdr(i: int, **changes: Any) -> bytes:
    message = {
        "cdr_id": f"c{i}", "switch": "sw", "account": "cust", "caller": "+31201234567",
        "callee": "0301234567", "start_time": START, "end_time": START + 65, "billsec": 60,
        "disposition": "ANSWERED",
    }  # fmt: skip
    message.update(changes)
    return orjson.dumps(message)


class _Registry:
    """SwitchRegistry.get over a dict (the real one reads Redis)."""

    def __init__(self, known: dict[str, SwitchSettings]) -> None:
        self.known = known

    def get(self, name: str) -> SwitchSettings:
        return self.known.get(name, SwitchSettings(name=name))


# ------------------------------------------------------------------------ normalise
def test_a_switch_name_ending_in_nul_does_not_borrow_another_switchs_settings() -> None:
    # numpy compares an object array with the str 'sw\0' as the fixed-width 'sw': the CDRs of
    # 'sw' were normalised with the settings of 'sw\0' (no country: national numbers rejected)
    records = [Rec(0, i, None, _cdr(i, switch=s)) for i, s in enumerate(["sw", "sw\x00", "sw"])]
    cdrs, rejects = decode(records, lambda _s: UTC)
    assert rejects == []
    registry = _Registry({"sw": SwitchSettings(name="sw", country_code="49")})
    kept, numbers, bad = normalise(records, cdrs, SwitchCache(registry))  # type: ignore[arg-type]
    assert kept.cdr_id.tolist() == ["c0", "c2"]
    assert numbers.value.tolist() == [49301234567, 49301234567]
    assert [(r.offset, r.reason.kind, r.switch) for r in bad] == [(1, Kind.BAD_NUMBER, "sw\x00")]
    assert bad[0].record is records[1]


def test_a_number_with_a_nul_is_the_same_in_the_fast_path_and_the_definition() -> None:
    switch = SwitchSettings()
    for raw in ["+493012345678\x00", "+49301234\x005678", "\x00+493012345678"]:
        with pytest.raises(Exception, match="character"):
            normalise_number(raw, switch)
        _, lengths, reasons = normalise_many([raw, "+493012345678"], switch)
        assert reasons[0] is not None
        assert "'\\x00'" in reasons[0]
        assert lengths.tolist() == [0, 12]


def test_a_normaliser_that_raises_rejects_only_its_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from rater.pipeline import normalise as stage

    def fragile(raws: list[str], switch: SwitchSettings) -> Any:
        if any("666" in r for r in raws):
            raise IndexError("out of range")
        return normalise_many(raws, switch)

    def fragile_one(raw: str, switch: SwitchSettings) -> str:
        if "666" in raw:
            raise IndexError("out of range")
        return normalise_number(raw, switch)

    monkeypatch.setattr(stage, "normalise_many", fragile)
    monkeypatch.setattr(stage, "normalise_number", fragile_one)
    records = [Rec(0, i, None, _cdr(i, callee=c)) for i, c in
               enumerate(["+493012345678", "+4930666666", "+4989123456"])]  # fmt: skip
    cdrs, _ = decode(records, lambda _s: UTC)
    kept, _, bad = normalise(records, cdrs, SwitchCache(_Registry({})))  # type: ignore[arg-type]
    assert kept.cdr_id.tolist() == ["c0", "c2"]
    assert bad[0].reason.kind == Kind.NORMALISE_ERROR
    assert bad[0].error == "IndexError"
    assert bad[0].reason.detail == "IndexError: out of range"

    def down(_name: str) -> SwitchSettings:
        raise redis.exceptions.ConnectionError("Redis went away")

    with pytest.raises(redis.exceptions.ConnectionError):  # never blamed on the records
        normalise(records, cdrs, down)  # type: ignore[arg-type]


# ------------------------------------------------------------------------ halving
def test_bisect_finds_the_records_that_fail_alone() -> None:
    calls: list[int] = []

    def call(index: np.ndarray) -> list[int]:  # type: ignore[type-arg]
        calls.append(len(index))
        if {3, 11} & set(index.tolist()):
            raise ValueError("bad record")
        return index.tolist()

    done, failed = bisect(16, call, what="test")
    assert sorted(failed) == [3, 11]
    assert all(isinstance(e, ValueError) for e in failed.values())
    ok = [i for index, _ in done for i in index.tolist()]
    assert ok == [i for i in range(16) if i not in (3, 11)]  # pieces in order
    assert calls[:2] == [16, 16]  # the whole batch twice, then halves
    assert len(calls) < 40


def test_bisect_lets_infrastructure_errors_through() -> None:
    for error in (
        redis.exceptions.ConnectionError("gone"),
        redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'"),
        ServiceUnavailable("ClickHouse"),
        TimeoutError(),
    ):
        assert is_infrastructure(error)

        def fail(_index: np.ndarray, error: Exception = error) -> None:  # type: ignore[type-arg]
            raise error

        with pytest.raises(type(error)):
            bisect(4, fail, what="test")
    assert not is_infrastructure(redis.exceptions.ResponseError("ERR user_script:1: bad input"))
    assert not is_infrastructure(ValueError())


# ------------------------------------------------------------------------ rated columns
TABLE = TariffTable(name="t", steps=Steps(1, 1), decimals=6, rows=(
    TariffRow("49", "Germany", 60_000_000), TariffRow("4930", "Berlin", 10_000),
))  # fmt: skip
COMPILED = compile_tables({"t": [TABLE]})


def _columns(numbers: list[int], billsec: list[int], max_price: int = 10**12) -> fates.Priced:
    n = len(numbers)
    return rated_columns(
        COMPILED, COMPILED, sell_names=["t"] * n, buy_names=["t"] * n, before=[None] * n,
        number=np.asarray(numbers, dtype=np.int64),
        number_len=np.asarray([len(str(x)) for x in numbers], dtype=np.int8),
        start=np.full(n, START, dtype=np.int64), billsec=np.asarray(billsec, dtype=np.int32),
        max_price=max_price,
    )  # fmt: skip


def test_a_price_above_the_maximum_is_unrated_and_charges_nothing() -> None:
    # 60 EUR a minute for a day: 86,400 EUR, above a maximum of 50,000 EUR
    priced = _columns([4989123456, 493012345678], [86_400, 60], max_price=50_000 * 10**6)
    assert priced.outcome.tolist() == [UNRATED, "rated"]
    assert priced.reason[0].kind == Kind.PRICE_ABOVE_MAX
    assert "price 86400000000" in priced.reason[0].detail
    assert priced.price.tolist() == [0, 10_000]
    assert priced.cost.tolist()[0] == 0


def test_a_cdr_the_kernel_fails_on_alone_is_unrated_with_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = fates.rate_batch

    def fragile(compiled: Any, sell: Any, buy: Any, number: Any, *rest: Any) -> Any:
        if 4989123456 in number.tolist():
            raise ValueError("rate_batch: number does not fit")
        return real(compiled, sell, buy, number, *rest)

    monkeypatch.setattr(fates, "rate_batch", fragile)
    priced = _columns([493012345678, 4989123456, 493012345679], [60, 60, 60])
    assert priced.outcome.tolist() == ["rated", UNRATED, "rated"]
    assert priced.reason[1] == Reason(
        Kind.RATING_ERROR, "ValueError: rate_batch: number does not fit"
    )
    assert priced.price.tolist() == [10_000, 0, 10_000]


# ------------------------------------------------------------------------ reasons
def test_reasons_quote_values_briefly() -> None:
    assert quote("abc") == "'abc'"
    assert len(quote("x" * 10_000)) < 140
    assert quote("x" * 10_000).endswith("(10,000 characters)")
    assert len(quote("\x00" * 10_000)) < 260  # escapes are cut too
    assert cap("y" * 50) == "y" * 50
    assert Reason(Kind.LATE).text == "late"
    assert Reason(Kind.UNKNOWN_CARD, "'81'").text == "unknown card: '81'"
    assert all(": " not in kind.value for kind in Kind)  # 'kind: detail' splits at the first


# ------------------------------------------------------------------------ dead letters
def test_a_dead_letter_keeps_small_records_whole_and_cuts_large_ones() -> None:
    settings = Settings(dlq_max_message_bytes=1_000_000)
    small = Reject(Rec(2, 7, b"acct", b"{oops"), Reason(Kind.BAD_JSON, "unexpected end"), "")
    letter = letter_of(small, settings, "topic-id")
    assert (letter.value, letter.key) == (b"{oops", b"acct")
    headers = dict(letter.headers)
    assert headers["reason"] == b"bad json: unexpected end"
    assert headers["reason_kind"] == b"bad json"
    assert (headers["partition"], headers["offset"], headers["topic_id"]) == (
        b"2", b"7", b"topic-id",
    )  # fmt: skip
    assert "truncated" not in headers

    value = b'{"callee":"' + b"9" * 5_000_000 + b'"}'
    key = b"k" * 3_000_000
    big = Reject(Rec(0, 1, key, value), Reason(Kind.DECODE_ERROR, "x"), "OverflowError")
    letter = letter_of(big, settings, "topic-id")
    assert letter.size + RECORD_OVERHEAD <= settings.dlq_max_message_bytes
    assert letter.size > 900_000  # as much of the original as fits
    headers = dict(letter.headers)
    assert headers["truncated"] == b"1"
    assert headers["original_length"] == str(len(value)).encode()
    assert headers["original_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["original_key_sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert headers["error"] == b"OverflowError"
    assert value.startswith(letter.value)


# ------------------------------------------------------------------------ metrics
def _series() -> int:
    return sum(len(metric.samples) for metric in REGISTRY.collect())


def _bad_batch(tag: str, n: int) -> tuple[BatchReport, Any, list[Reject]]:
    """n unrated CDRs, each with its own card text and switch name, and n rejects."""
    records = [Rec(0, i, None, _cdr(i, switch=f"{tag}-sw{i}", card=f"{tag}-card{i}x"))
               for i in range(n)]  # fmt: skip
    cdrs, _ = decode(records, lambda _s: UTC)
    resolved = Resolved(
        np.zeros(n, dtype=bool),
        [Reason(Kind.UNKNOWN_CARD, quote(f"{tag}-card{i}x")) for i in range(n)],
        *([""] * n for _ in range(6)),
    )
    rows = fates.rated_rows(
        COMPILED, cdrs, resolved, np.zeros(n, np.int64), np.zeros(n, np.int8),
        late=np.zeros(n, bool), max_price=10**12,
    )  # fmt: skip
    rejects = [
        Reject(r, Reason(Kind.BAD_NUMBER, quote(f"{tag}-{i}")), "", f"{tag}-sw{i}")
        for i, r in enumerate(records)
    ]
    report = BatchReport(records=2 * n, switch_labels={f"{tag}-sw{i}": "other" for i in range(n)})
    report.stage_seconds = {f"{tag}-stage": 0.1, "decode": 0.2}
    return report, rows, rejects


def test_ten_thousand_distinct_bad_values_add_no_series() -> None:
    report, rows, rejects = _bad_batch("warm", 10)  # the same closed-set labels, 10 values
    count(report, rows, 1, rejects)
    observe(report, rows, np.zeros(len(rows), dtype=bool))
    before = _series()
    report, rows, rejects = _bad_batch("many", 10_000)
    count(report, rows, 3, rejects)
    observe(report, rows, np.zeros(len(rows), dtype=bool))
    assert _series() == before
    assert report.outcomes == {("unrated", "unknown card"): 10_000, ("duplicate", ""): 3,
                               ("invalid", "bad number"): 10_000}  # fmt: skip
    assert report.by_switch == {("other", "unrated"): 10_000, ("other", "invalid"): 10_000}


def test_metric_updates_never_raise() -> None:
    metrics.inc(metrics.CONSUMED, -5)  # a counter refuses a negative increment
    metrics.inc(metrics.CONSUMED, float("nan"))
    metrics.inc(metrics.OUTCOMES, 1, "only one label")  # wrong label count
    metrics.set_gauge(metrics.LAG, 1.0)  # missing label
    metrics.observe(metrics.BATCH_SIZE, float("inf"))
    assert metrics.kind_label("unknown card 8123") == metrics.OTHER
    assert metrics.currency_label("EUR\x00") == metrics.OTHER
    assert metrics.switch_label("sw\x00", {"sw"}) == metrics.OTHER


def test_cdr_batch_empty_has_every_column() -> None:
    assert len(CdrBatch.empty()) == 0
    assert CdrBatch.empty().index.dtype == np.int32
