"""Short numbers (extensions, service and emergency codes: fewer than 6 digits, dialled without
'+') are matched as given, and only by a tariff row of exactly that number (docs/DESIGN.md
section 4): a tariff can price them or rate them at zero; anything else is no route.

A longest-prefix match would price extension 1002 at the rate of prefix 1 (North America);
exact matching keeps a short code out of the E.164 prefixes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from rater import reference
from rater.cli.rate import rate
from rater.errors import NormalisationError
from rater.pipeline.rate import rate_batch
from rater.switches.numbers import normalise_many, normalise_number
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import SwitchSettings, TariffRow, TariffTable

NL = SwitchSettings(name="ams", country_code="31", trunk_prefix="0")
NANP = SwitchSettings(name="a2b", country_code="1", trunk_prefix="1")
BARE = SwitchSettings(name="bare")


@pytest.mark.parametrize("switch", [NL, NANP, BARE])
@pytest.mark.parametrize("raw", ["112", "1002", "19", "5", "99999", "sip:1002@pbx.example"])
def test_short_numbers_are_kept_as_dialled(raw: str, switch: SwitchSettings) -> None:
    expected = raw.removeprefix("sip:").split("@")[0]
    assert normalise_number(raw, switch) == expected
    assert reference.normalise(raw, switch) == expected
    values, lengths, reasons = normalise_many([raw], switch)
    assert (str(values[0]), int(lengths[0]), reasons[0]) == (expected, len(expected), None)


@pytest.mark.parametrize("raw", ["+112", "000", "0800", "00112"])
def test_short_numbers_with_plus_or_a_leading_zero_are_still_rejected(raw: str) -> None:
    """'+' says E.164, which has at least 6 digits; tariff prefixes never start with 0."""
    with pytest.raises(NormalisationError):
        normalise_number(raw, NL)
    with pytest.raises(NormalisationError):
        reference.normalise(raw, NL)


TARIFF = TariffTable(
    name="retail",
    rows=(
        TariffRow("1", "NANP", 10_000),
        TariffRow("112", "Emergency", 0),
        TariffRow("1002", "Extension 1002", 1_000),
        TariffRow("31", "Netherlands", 20_000),
    ),
)
AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "prefix"),
    [("112", "112"), ("1002", "1002"), ("1003", None), ("11", None), ("1", "1"),
     ("10021", None), ("15082159142", "1"), ("3120", None)],
)  # fmt: skip
def test_short_numbers_match_only_their_own_row(number: str, prefix: str | None) -> None:
    row = reference.match(TARIFF, number, AT)
    assert (row.prefix if row else None) == prefix
    compiled = compile_tables({"retail": [TARIFF]})
    result = rate_batch(
        compiled, np.zeros(1, np.int32), np.full(1, -1, np.int32),
        np.array([int(number)], np.int64), np.array([len(number)], np.int8),
        np.array([int(AT.timestamp())], np.int64), np.array([60], np.int32),
    )  # fmt: skip
    row_id = int(result.sell_row[0])
    assert (str(compiled.row_prefix[row_id]) if row_id >= 0 else None) == prefix


CSV = """prefix,destination,rate
1,NANP,0.01
112,Emergency,0
1002,Extension 1002,0.001
"""


@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_rate_prices_short_numbers_and_names_no_route(tmp_path: Path, engine: str) -> None:
    tariff = tmp_path / "retail.csv"
    tariff.write_text(CSV)
    lines = [
        orjson.dumps({
            "cdr_id": callee, "switch": "s", "account": "a", "caller": "1001", "callee": callee,
            "start_time": 1_764_151_200, "end_time": 1_764_151_300, "billsec": 60,
            "disposition": "ANSWERED",
        })
        for callee in ("112", "1002", "1003")
    ]  # fmt: skip
    result = CliRunner().invoke(
        rate, ["--tariff", str(tariff), "--engine", engine, "--country", "31"],
        input=b"\n".join(lines) + b"\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = [orjson.loads(line) for line in result.stdout_bytes.splitlines()]
    assert (out[0]["prefix"], out[0]["price"]) == ("112", "0.0000")
    assert (out[1]["prefix"], out[1]["price"]) == ("1002", "0.0010")
    assert "no route to 1003" in out[2]["error"]
