"""No record stops decode (docs/DESIGN.md section 4): odd digits, huge values, arbitrary bytes and
arbitrary JSON become rejects with a short reason; the checks of settings and time; one parse per
record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rater.pipeline import decode as decoding
from rater.pipeline.decode import DecodeRules, decode, fixed_zone_of
from rater.reasons import Kind, Reason
from rater.switches.numbers import normalise_many
from rater.tariffs.model import SwitchSettings

START = 1_790_000_000


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
        "callee": "+4930123456", "start_time": START, "answer_time": START + 5,
        "end_time": START + 65, "billsec": 60, "disposition": "ANSWERED",
    }  # fmt: skip
    base.update(changes)
    return base


def run(*values: bytes, rules: DecodeRules | None = None) -> tuple[Any, list[Any]]:
    records = [Rec(0, i, b"k", v) for i, v in enumerate(values)]
    if rules is None:
        return decode(records, fixed_zone_of({}))
    return decode(records, fixed_zone_of({}), rules)


@pytest.mark.parametrize(
    "start",
    [
        "١٧٩٠٠٠٠٠٠٠",  # Arabic-Indic digits: int() reads them, a CDR time must not
        "²³",  # superscripts: str.isdigit() says yes, int() raises ValueError
        "1" * 400,  # int / 1000 raises OverflowError
        "1" * 5000,  # int() refuses more than 4300 digits (ValueError)
        "2026-09-21T14:1²:20Z",  # the fast path's int() of the minutes
        "2026-09-21T14:13:2²Z",
        "２０２６-09-21T14:13:20Z",
        "9" * 30 + ".5",
    ],
)
def test_odd_digits_in_a_time_are_a_reject_not_an_exception(start: str) -> None:
    batch, rejects = run(orjson.dumps(cdr(start_time=start)))
    assert len(batch) == 0
    assert [r.reason.kind for r in rejects] in ([Kind.BAD_TIME], [Kind.OUT_OF_RANGE])
    assert len(rejects[0].reason.text) < 400


def test_a_reason_quotes_a_few_characters_of_a_huge_value() -> None:
    huge = "x" * 3_000_000
    _, rejects = run(orjson.dumps(cdr(start_time=huge)))
    assert len(rejects[0].reason.text) < 300
    assert "3,000,000 characters" in rejects[0].reason.text
    _, _, reasons = normalise_many([huge, "+" + "9" * 2_000_000], SwitchSettings())
    assert all(r is not None and len(r) < 300 for r in reasons)


def test_each_record_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    loads = orjson.loads

    def counting(value: bytes) -> Any:
        nonlocal calls
        calls += 1
        return loads(value)

    monkeypatch.setattr(decoding.orjson, "loads", counting)
    values = [orjson.dumps(cdr(start_time="2026-09-21 14:13:20")),  # the checked path
              orjson.dumps(cdr(billsec=-1)), orjson.dumps(cdr())]  # fmt: skip
    batch, rejects = run(*values)
    # the common message is decoded by msgspec alone; the other two once each by orjson
    assert (len(batch), len(rejects), calls) == (2, 1, 2)


def test_a_reject_carries_its_record_and_switch() -> None:
    value = orjson.dumps(cdr(billsec=-1, switch="sw9"))
    _, rejects = run(value)
    reject = rejects[0]
    assert reject.record.value == value
    assert (reject.value, reject.key, reject.offset, reject.switch) == (value, b"k", 0, "sw9")
    assert reject.reason == Reason(Kind.NEGATIVE, "billsec -1")


@pytest.mark.parametrize(
    ("auth_id", "valid"),
    [
        ("a1b2-c3d4", True),
        ("x" * 64, True),
        ("", True),
        ("x" * 65, False),
        ("a\nb", False),  # the debit script's separator
        ("a b", False),
        ("caf\u00e9", False),
        ("\x00", False),
        ("tab\there", False),
        ("a:b", False),  # key names
        ("{r:x}", False),  # hash tags
    ],
)
def test_auth_ids_are_printable_ascii_without_separators(auth_id: str, valid: bool) -> None:
    batch, rejects = run(orjson.dumps(cdr(auth_id=auth_id)))
    assert len(batch) == int(valid)
    if not valid:
        assert rejects[0].reason.kind == Kind.BAD_AUTH_ID


def test_billsec_above_the_setting_and_an_end_in_the_future_are_invalid() -> None:
    rules = DecodeRules(max_billsec=3600, latest_end=START + 4000, skew_s=600)
    # epoch start times take the fast path; a time without an offset takes the checked path
    for start in (START, "2026-09-21 14:13:20"):
        ok, long, future = (
            orjson.dumps(cdr(start_time=start, billsec=3600, end_time=START + 3605)),
            orjson.dumps(cdr(start_time=start, billsec=3601, end_time=START + 3606)),
            orjson.dumps(cdr(start_time=start, end_time=START + 4001, billsec=60)),
        )
        batch, rejects = run(ok, long, future, rules=rules)
        assert {r.offset: r.reason.kind for r in rejects} == {
            1: Kind.BILLSEC_ABOVE_MAX, 2: Kind.FUTURE,
        }  # fmt: skip
        assert batch.offset.tolist() == [0]
        assert "3601 > 3600" in rejects[0].reason.detail
        assert "601 s after now (allowed: 600 s)" in rejects[1].reason.detail


# ------------------------------------------------------------------------ property tests
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ("cdr_id", "switch", "account", "caller", "callee", "start_time", "answer_time",
           "end_time", "duration", "billsec", "disposition", "card", "auth_id",
           "access_number", "hangup_cause")  # fmt: skip
_RULES = DecodeRules(max_billsec=86_400, latest_end=START + 86_400, skew_s=600)


def _dumps(value: Any) -> bytes:
    """JSON text of anything hypothesis makes: integers beyond 64 bits, Infinity (not JSON),
    lone surrogates (not UTF-8) included, as a switch with a bad exporter could send."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_never_raise(values: list[bytes]) -> None:
    batch, rejects = run(*values, rules=_RULES)
    assert len(batch) + len(rejects) == len(values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=6), max_size=6), _json)
def test_arbitrary_json_never_raises(changes: list[dict[str, Any]], whole: Any) -> None:
    values = [_dumps(cdr(**change)) for change in changes]
    values.append(_dumps(whole))
    batch, rejects = run(*values, rules=_RULES)
    assert len(batch) + len(rejects) == len(values)
    assert sorted([*batch.offset.tolist(), *(r.offset for r in rejects)]) == list(
        range(len(values))
    )
    for reject in rejects:
        assert len(reject.reason.text) < 1000
