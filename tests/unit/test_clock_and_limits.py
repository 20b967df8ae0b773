"""The one clock (rater/clock.py), the limits of docs/DESIGN.md section 4 as settings, and the
fate of late CDRs after the debit."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import orjson
import pytest

from rater.accounts.lookup import Resolved
from rater.clock import Clock, parse_instant
from rater.errors import ConfigError
from rater.pipeline.debit import DebitResult, Outcome
from rater.pipeline.decode import decode, fixed_zone_of
from rater.pipeline.fates import RATED, UNRATED, apply_outcomes, rated_rows
from rater.reasons import Kind
from rater.settings import Settings
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import Steps, TariffRow, TariffTable

START = 1_790_000_000
DAY = 86_400


def test_the_clock_starts_where_the_setting_says_and_runs() -> None:
    clock = Clock.of(Settings(clock_start="2026-09-21T14:13:20Z"))
    assert START <= clock.now_s() < START + 60
    assert Clock.of(Settings(clock_start=str(START))).time() == pytest.approx(clock.time(), abs=5)
    system = Clock.of(Settings())
    assert abs(system.time() - time.time()) < 1
    assert clock.now().year == 2026


@pytest.mark.parametrize("text", ["yesterday", "2026-09-21T14:13:20", "-5"])
def test_a_bad_clock_start_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="RATER_CLOCK_START"):
        Settings(clock_start=text)
    with pytest.raises(ConfigError):
        parse_instant(text)


def test_the_price_maximum_keeps_a_batch_sum_exact_in_lua() -> None:
    Settings(batch_max_records=9000, max_price_micro=10**12)  # 9.0e15 <= 2^53
    with pytest.raises(ConfigError, match="2\\^53"):
        Settings(batch_max_records=10_000, max_price_micro=10**12)
    with pytest.raises(ConfigError):
        Settings(max_billsec=0)
    with pytest.raises(ConfigError):
        Settings(dlq_max_message_bytes=100)


# ------------------------------------------------------------------------ late, after the debit
@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


COMPILED = compile_tables(
    {"t": [TariffTable(name="t", steps=Steps(1, 1), rows=(TariffRow("49", "DE", 60_000),))]}
)


def _late_rows(published_ms: list[int]):  # type: ignore[no-untyped-def]
    records = [
        Rec(0, i, None, orjson.dumps({
            "cdr_id": f"c{i}", "switch": "sw", "account": "cust", "caller": "1",
            "callee": "+4989123456", "start_time": START, "end_time": START + 65,
            "billsec": 60, "disposition": "ANSWERED",
        }), ts)
        for i, ts in enumerate(published_ms)
    ]  # fmt: skip
    cdrs, _ = decode(records, fixed_zone_of({}))
    n = len(records)
    resolved = Resolved(np.ones(n, dtype=bool), [None] * n, ["cust"] * n, [""] * n,
                        ["res"] * n, ["t"] * n, ["t"] * n, ["EUR"] * n)  # fmt: skip
    return rated_rows(
        COMPILED, cdrs, resolved, np.full(n, 4989123456, np.int64), np.full(n, 10, np.int8),
        late=np.ones(n, dtype=bool), max_price=10**12,
    )  # fmt: skip


def test_late_cdrs_are_unrated_unless_a_debit_of_an_earlier_pass_charged_them() -> None:
    on_time_publish = (START + 600) * 1000  # published soon after the call
    late_publish = (START + 2 * DAY) * 1000  # published when the CDR was already late
    rows = _late_rows([on_time_publish, on_time_publish, late_publish, on_time_publish])
    assert rows.price.tolist() == [60_000] * 4  # priced, for the case below
    result = DebitResult(
        outcome=np.array(
            [Outcome.APPLIED, Outcome.APPLIED, Outcome.APPLIED, Outcome.REPLAY_EXPIRED],
            dtype=np.int8,
        ),
        blocked=np.zeros(4, dtype=bool),
        replayed=np.array([False, True, True, True]),
    )
    kept, _, _ = apply_outcomes(rows, result, window_s=DAY)
    # 0: fresh and late; 1: a replay of a debit made before it was late (a kill between debit
    # and store): it keeps the values it was charged with; 2: late already when published, so
    # every pass saw it late; 3: no record left: late
    assert kept.outcome.tolist() == [UNRATED, RATED, UNRATED, UNRATED]
    assert kept.price.tolist() == [0, 60_000, 0, 0]
    assert [r.kind if r else None for r in kept.reason.tolist()] == [
        Kind.LATE, None, Kind.LATE, Kind.LATE,
    ]  # fmt: skip
    assert kept.reason[0].text == "late: ended 2026-09-21T14:14:25Z"
