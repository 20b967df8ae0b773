"""`rater rate`: offline rating of a JSONL file; both engines must write the same bytes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from rater.cli import rate as rate_module
from rater.cli.rate import rate
from rater.money import from_micro

TARIFF = """prefix,destination,rate,connect_fee,steps,first_rate,effective_from
44,UK,0.10,,60/60,,
447,UK mobile,0.25,0.01,30/6,,
4477,UK mobile premium,0.3333,,,,2026-12-01
31,Netherlands,0.02,,,0.05,
316,Netherlands mobile,0.071,0.0015,60/1,,
1,NANP,0.009,,6/6,,
"""


@pytest.fixture
def tariff(tmp_path: Path) -> Path:
    path = tmp_path / "retail.csv"
    path.write_text(TARIFF)
    return path


def _cdr(cdr_id: str, callee: str, billsec: int, start: object = 1_764_151_200) -> bytes:
    return orjson.dumps(
        {
            "cdr_id": cdr_id,
            "switch": "sw1",
            "account": "c1",
            "caller": "1000",
            "callee": callee,
            "start_time": start,
            "end_time": 1_900_000_000,
            "billsec": billsec,
            "disposition": "ANSWERED" if billsec else "NO ANSWER",
        }
    )


def _run(tariff: Path, lines: list[bytes], *args: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(
        rate, ["--tariff", str(tariff), *args], input=b"\n".join(lines) + b"\n"
    )
    assert result.exit_code == 0, result.output
    return [orjson.loads(line) for line in result.stdout_bytes.splitlines()]


def test_rates_worked_examples_in_order(tariff: Path) -> None:
    out = _run(
        tariff,
        [
            _cdr("uk", "+442071234567", 61, "2026-11-26T10:00:00+01:00"),
            _cdr("mob", "00447700900123", 31, 1_764_151_200_000),  # epoch milliseconds
            _cdr("nl", "0201234567", 10),  # national, with --country 31
            _cdr("zero", "+442071234567", 0),
        ],
        "--country",
        "31",
    )
    assert out == [
        {
            "cdr_id": "uk", "number": "442071234567", "tariff": "retail@1", "prefix": "44",
            "destination": "UK", "billable_seconds": 120, "price": "0.2000",
        },
        {
            "cdr_id": "mob", "number": "447700900123", "tariff": "retail@1", "prefix": "447",
            "destination": "UK mobile", "billable_seconds": 36, "price": "0.1600",
        },
        {
            # first second at 0.05/min, nine at 0.02/min: 0.003833... rounded up
            "cdr_id": "nl", "number": "31201234567", "tariff": "retail@1", "prefix": "31",
            "destination": "Netherlands", "billable_seconds": 10, "price": "0.0039",
        },
        {
            "cdr_id": "zero", "number": "442071234567", "tariff": "retail@1", "prefix": "44",
            "destination": "UK", "billable_seconds": 0, "price": "0.0000",
        },
    ]  # fmt: skip


def test_row_dates_apply_at_the_cdr_start(tariff: Path) -> None:
    before = _cdr("before", "+447712345678", 60, "2026-11-30T23:59:59Z")
    after = _cdr("after", "+447712345678", 60, "2026-12-01T00:00:00Z")
    out = _run(tariff, [before, after])
    assert [o["prefix"] for o in out] == ["447", "4477"]
    assert [o["price"] for o in out] == ["0.2600", "0.3333"]  # 447 has a 0.01 connect fee


def test_errors_name_line_field_and_reason(tariff: Path) -> None:
    out = _run(
        tariff,
        [
            b"not json",
            orjson.dumps({"cdr_id": "nobill", "callee": "+44"}),
            _cdr("letters", "+44abc", 5),
            _cdr("nomatch", "+8613800138000", 5),
            _cdr("ok", "+12125550100", 7),
        ],
        "--decimals", "6", "--rounding", "down",
    )  # fmt: skip
    assert out[0]["cdr_id"] is None
    assert str(out[0]["error"]).startswith("line 1: bad json: ")
    assert out[1] == {"cdr_id": "nobill", "error": "line 2: missing field: switch"}
    assert out[2]["cdr_id"] == "letters"
    assert "line 3: callee: " in str(out[2]["error"])
    assert "letters" in str(out[2]["error"])
    assert out[3] == {
        "cdr_id": "nomatch",
        "error": "line 4: callee: no prefix of 8613800138000 in tariff retail@1",
    }
    assert out[4]["price"] == "0.001800"  # 6/6: 7 s bill 12 s at 0.009/min


def test_steps_option_is_the_default_for_rows_without_steps(tariff: Path) -> None:
    out = _run(tariff, [_cdr("nl", "+31201234567", 61)], "--steps", "60/60", "--decimals", "2")
    # 60/60: 120 s; first 60 s at 0.05/min, the next 60 at 0.02/min = 0.07
    assert (out[0]["billable_seconds"], out[0]["price"]) == (120, "0.07")


def test_engines_write_identical_output(tariff: Path) -> None:
    rng = random.Random(7)
    callees = ["+44", "0044", "+447", "+4477", "+31", "0", "+316", "+1", "+86", "44", "+3a"]
    lines = []
    for i in range(400):
        callee = rng.choice(callees) + "".join(rng.choice("0123456789") for _ in range(9))
        billsec = rng.choice([0, 1, 5, 6, 7, 30, 31, 59, 60, 61, rng.randrange(10_000)])
        start = rng.choice(["2026-11-30T23:59:59Z", "2026-12-01T00:00:00Z", 1_700_000_000])
        lines.append(_cdr(f"c{i}", callee, billsec, start))
        if i % 50 == 0:
            lines.append(b'{"cdr_id": "broken"')
    for rounding in ("up", "half-up", "down"):
        args = ["--country", "44", "--rounding", rounding, "--decimals", str(rng.randrange(7))]
        kernel = _run(tariff, lines, *args, "--engine", "kernel")
        assert kernel == _run(tariff, lines, *args, "--engine", "reference")
        assert len(kernel) == len(lines)
        assert sum("price" in o for o in kernel) > 200  # most CDRs rate


def test_files_in_and_out(tariff: Path, tmp_path: Path) -> None:
    source = tmp_path / "cdrs.jsonl"
    target = tmp_path / "rated.jsonl"
    source.write_bytes(_cdr("x", "+442071234567", 1) + b"\n")
    args = ["--tariff", str(tariff), "--input", str(source), "--output", str(target)]
    result = CliRunner().invoke(rate, args)
    assert result.exit_code == 0, result.output
    assert orjson.loads(target.read_bytes())["price"] == "0.1000"


# ------------------------------------------------------------------ blocks and --jobs
def _mixed_lines(count: int) -> list[bytes]:
    rng = random.Random(11)
    callees = ["+44", "0044", "+447", "+31", "+316", "+1", "+86", "+3a", "12"]
    lines: list[bytes] = []
    for i in range(count):
        callee = rng.choice(callees) + "".join(rng.choice("0123456789") for _ in range(9))
        billsec = rng.choice([0, 1, 7, 61, rng.randrange(10_000)])
        lines.append(_cdr(f"c{i}\u00e9" if i % 7 == 0 else f'c"{i}' if i % 13 == 0 else f"c{i}",
                          callee, billsec))  # fmt: skip
        if i % 37 == 0:
            lines.append(b"")  # an empty line is an error line, never skipped
        if i % 41 == 0:
            lines.append(b'{"cdr_id": "broken"')
    return lines


def _raw_run(tariff: Path, data: bytes, *args: str) -> bytes:
    result = CliRunner().invoke(rate, ["--tariff", str(tariff), *args], input=data)
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


@pytest.mark.parametrize("block_bytes", [1, 97, 4096, 1 << 22])
def test_blocks_and_jobs_write_the_same_bytes_as_one_pass(
    tariff: Path, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _mixed_lines(600)
    data = b"\n".join(lines) + b"\n"
    whole = _raw_run(tariff, data, "--country", "44")
    monkeypatch.setattr(rate_module, "BLOCK_BYTES", block_bytes)
    assert _raw_run(tariff, data, "--country", "44") == whole
    assert _raw_run(tariff, data, "--country", "44", "--jobs", "2") == whole
    assert _raw_run(tariff, data, "--country", "44", "--engine", "reference") == whole
    out = [orjson.loads(line) for line in whole.splitlines()]
    assert len(out) == len(lines)
    # line numbers count every line of the file, across blocks and jobs
    for number, (line, rated) in enumerate(zip(lines, out, strict=True), start=1):
        if "error" in rated:
            assert str(rated["error"]).startswith(f"line {number}: ")
        else:
            assert orjson.loads(line)["cdr_id"] == rated["cdr_id"]


def test_crlf_and_a_last_line_without_newline(tariff: Path) -> None:
    lines = [_cdr("a", "+442071234567", 61), _cdr("b", "+31201234567", 5)]
    plain = _raw_run(tariff, b"\n".join(lines) + b"\n")
    assert _raw_run(tariff, b"\r\n".join(lines) + b"\r\n") == plain
    assert _raw_run(tariff, b"\n".join(lines)) == plain
    assert _raw_run(tariff, b"\n".join(lines), "--jobs", "2") == plain
    assert _raw_run(tariff, b"") == b""


@given(
    st.lists(st.integers(-(10**15), 10**15), max_size=50),
    st.integers(0, 6),
    st.booleans(),
)
def test_prices_text_equals_from_micro(prices: list[int], decimals: int, on_grid: bool) -> None:
    unit = 10 ** (6 - decimals)
    values = [p - p % unit for p in prices] if on_grid else prices
    text = rate_module.prices_text(np.asarray(values, dtype=np.int64), decimals)
    assert text == [from_micro(p, decimals) for p in values]
