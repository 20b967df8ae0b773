"""The typed decode of rater's JSON (msgspec, rater/pipeline/decode.py) against the orjson path:
the same columns, rejects and reasons for any message, and invalid UTF-8 rejected in any field."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater.pipeline import decode as decoding
from rater.pipeline.decode import DecodeRules, decode, fixed_zone_of
from rater.reasons import Kind

START = 1_790_000_000
_RULES = DecodeRules(max_billsec=86_400, latest_end=START + 86_400, skew_s=600)


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def cdr(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cdr_id": "c-1", "switch": "sw1", "account": "cust-1", "caller": "+31201234567",
        "callee": "+4930123456", "start_time": "2026-09-21T14:13:20Z",
        "answer_time": "2026-09-21T14:13:25Z", "end_time": "2026-09-21T14:14:25Z",
        "billsec": 60, "disposition": "ANSWERED",
    }  # fmt: skip
    base.update(changes)
    return base


def both(values: list[bytes], rules: DecodeRules = _RULES) -> tuple[Any, Any]:
    """(typed decode, orjson path alone) of the same records."""
    records = [Rec(i % 3, 10 + i, b"k", v, 1234 + i) for i, v in enumerate(values)]
    tz = fixed_zone_of({}, "Europe/Amsterdam")
    typed = decode(records, tz, rules)
    original = decoding._decode_typed
    decoding._decode_typed = lambda *_args: None  # type: ignore[assignment]
    try:
        plain = decode(records, tz, rules)
    finally:
        decoding._decode_typed = original
    return typed, plain


def assert_same(values: list[bytes], rules: DecodeRules = _RULES) -> None:
    (batch, rejects), (plain_batch, plain_rejects) = both(values, rules)
    for field in fields(batch):
        mine, theirs = getattr(batch, field.name), getattr(plain_batch, field.name)
        assert mine.dtype == theirs.dtype, field.name
        assert mine.tolist() == theirs.tolist(), field.name
        assert all(type(a) is type(b) for a, b in zip(mine.tolist(), theirs.tolist(), strict=True))
    assert [(r.offset, r.reason, r.error, r.switch) for r in rejects] == [
        (r.offset, r.reason, r.error, r.switch) for r in plain_rejects
    ]


def _dumps(value: Any) -> bytes:
    """JSON text of anything: integers beyond 64 bits, Infinity and lone surrogates included."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def test_a_common_message_takes_the_typed_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_orjson(_value: bytes) -> Any:
        raise AssertionError("the orjson path ran")

    monkeypatch.setattr(decoding.orjson, "loads", no_orjson)
    values = [orjson.dumps(cdr()), orjson.dumps(cdr(card="8001", auth_id="a-1", duration=65,
              access_number="+3120", hangup_cause="16", answer_time=None, start_time=START,
              end_time=START * 1000 + 65_000))]  # fmt: skip
    batch, rejects = decode([Rec(0, i, None, v) for i, v in enumerate(values)], fixed_zone_of({}))
    assert (len(batch), rejects) == (2, [])
    assert batch.card.tolist() == ["", "8001"]
    assert batch.end.tolist() == [START + 65, START + 65]


@pytest.mark.parametrize(
    "message",
    [
        cdr(),
        cdr(answer_time="", billsec=0),
        cdr(card=None, auth_id=None, access_number=None, hangup_cause=None, duration=None),
        cdr(extra="a field the format does not name"),
        cdr(billsec=60.0),
        cdr(billsec=True),
        cdr(billsec=-1),
        cdr(billsec=86_401),
        cdr(duration=-1),
        cdr(duration=2**40),
        cdr(start_time=START * 1.0),
        cdr(start_time="2026-09-21 16:13:20"),  # no offset: the switch's zone
        cdr(start_time="2026-09-21T14:13:20.5Z"),
        cdr(end_time=START + 10**9),
        cdr(start_time=2**70),
        cdr(cdr_id=""),
        cdr(cdr_id=None),
        cdr(card=5),
        cdr(auth_id="a b"),
        cdr(answer_time="2026-09-21T15:00:00Z"),
        cdr(caller="caf\u00e9 \u2603 \U0001f600"),  # non-ASCII, valid UTF-8
    ],
)
def test_the_typed_path_decides_like_the_orjson_path(message: dict[str, Any]) -> None:
    assert_same([_dumps(message)])


def _raw(message: dict[str, Any], field: str, text: bytes) -> bytes:
    """The message with `text` as the raw bytes between the quotes of `field`'s value."""
    marker = "\u2603MARK\u2603"
    return orjson.dumps({**message, field: marker}).replace(marker.encode(), text)


_STRINGS = ("cdr_id", "switch", "account", "caller", "callee", "disposition", "card", "auth_id",
            "access_number", "hangup_cause", "start_time", "answer_time", "end_time",
            "unknown")  # fmt: skip


@pytest.mark.parametrize("field", _STRINGS)
@pytest.mark.parametrize(
    "text",
    [b"\xff", b"a\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\\ud800", b"\\udc00x", b"\xf4\x90\x80\x80"],
)
def test_invalid_utf8_in_any_field_is_rejected(field: str, text: bytes) -> None:
    value = _raw(cdr(), field, text)
    (batch, rejects), _ = both([value])
    assert len(batch) == 0
    assert rejects[0].reason.kind == Kind.BAD_JSON
    assert_same([value])


@pytest.mark.parametrize(
    "value",
    [
        _raw(cdr(), "unknown", b"x").replace(b'"x"', b"1e999"),  # Infinity: orjson refuses
        _raw(cdr(), "unknown", b"x").replace(b'"x"', b"-1e400"),
        _raw(cdr(), "unknown", b"x").replace(b'"x"', b"[" * 2000 + b"]" * 2000),
        orjson.dumps(cdr()).replace(b"{", b'{"\xff":1,', 1),  # a key that is not UTF-8
        orjson.dumps(cdr()).replace(b'"billsec":60', b'"billsec":60,"billsec":-1'),
        orjson.dumps(cdr()).replace(b'"billsec":60', b'"billsec":-1,"billsec":60'),
        orjson.dumps(cdr()) + b" trailing",
        b"\xef\xbb\xbf" + orjson.dumps(cdr()),
        orjson.dumps([cdr(), cdr()]),
        b"",
        b"null",
    ],
)
def test_what_msgspec_would_skip_is_decided_by_the_orjson_path(value: bytes) -> None:
    assert_same([value])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ("cdr_id", "switch", "account", "caller", "callee", "start_time", "answer_time",
           "end_time", "duration", "billsec", "disposition", "card", "auth_id",
           "access_number", "hangup_cause", "other")  # fmt: skip
_values = (
    st.integers(START - 10, START + 200_000) | st.integers(-(2**70), 2**70)
    | st.sampled_from(["", "2026-09-21T14:13:20Z", "2026-09-21T16:13:20+02:00", "x"]) | _json
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(_FIELDS), _values, max_size=5), max_size=6))
def test_any_message_decodes_as_on_the_orjson_path(changes: list[dict[str, Any]]) -> None:
    values = [_dumps(cdr(**change)) for change in changes]
    assert_same(values)
    assert_same(values, DecodeRules())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=5), st.integers(0, 300))
def test_any_bytes_in_a_message_decode_as_on_the_orjson_path(junk: list[bytes], where: int) -> None:
    base = orjson.dumps(cdr())
    values = [base[:where] + piece + base[where:] for piece in junk]
    assert_same(values)


def test_columns_keep_their_dtypes() -> None:
    (batch, _), _ = both([orjson.dumps(cdr())])
    assert batch.start.dtype == np.int64
    assert batch.billsec.dtype == np.int32


# ------------------------------------------------------------------ the minute cache of times
_iso_parts = st.tuples(
    st.integers(1969, 2107),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.sampled_from(["00", "07", "59", "60", "5", "5 ", " 5", "+5", "٣٤", "²³", "0x"]),
    st.sampled_from(["Z", "+00:00", "+02:00", "-05:30", "+24:00", "+02:60", "", "z", "+0200"]),
    st.sampled_from(["T", " ", "t", "_"]),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_iso_parts, min_size=1, max_size=20))
def test_the_minute_cache_reads_times_as_the_full_parse(parts: list[tuple[Any, ...]]) -> None:
    texts = [
        f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{sec}{off}"
        for y, mo, d, h, mi, sec, off, sep in parts
    ]
    # the same strings twice: the second pass reads them from the cache
    for text in texts + texts[::-1]:
        assert decoding._fast_time(text) == decoding._parse_fast_time(text), text


def test_the_minute_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "_MINUTES_MAX", 3)
    decoding._MINUTES.clear()
    for minute in range(10):
        text = f"2026-09-21T14:{minute:02d}:30Z"
        assert decoding._fast_time(text) == decoding._parse_fast_time(text)
        assert len(decoding._MINUTES) <= 3
