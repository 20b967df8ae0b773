"""The pipeline's pure parts: each CDR's fate before and after the debit, and the counting.

Prices are checked against rater.reference (plain Decimal), over a grid and with hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rater import reference
from rater.accounts.lookup import Resolved
from rater.pipeline.debit import DebitResult, Outcome
from rater.pipeline.decode import CdrBatch, Reject, decode, fixed_zone_of
from rater.pipeline.fates import (
    DUPLICATE,
    INVALID,
    RATED,
    UNANSWERED,
    UNRATED,
    BatchReport,
    apply_outcomes,
    count,
    rated_rows,
)
from rater.pipeline.store import RatedRows
from rater.reasons import Kind, Reason
from rater.switches.numbers import normalise_many
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import Steps, SwitchSettings, TariffRow, TariffTable

START = 1_790_000_000
SELL = TariffTable(name="sell", steps=Steps(60, 60), decimals=4, rows=(
    TariffRow("49", "Germany", 14_000), TariffRow("4930", "Berlin", 11_200, connect_fee=50_000),
))  # fmt: skip
BUY = TariffTable(name="buy", steps=Steps(1, 1), decimals=6, rows=(
    TariffRow("49", "Germany", 10_000), TariffRow("4930", "Berlin", 8_000),
    TariffRow("44", "United Kingdom", 9_000),
))  # fmt: skip
COMPILED = compile_tables({"sell": [SELL], "buy": [BUY]})


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def _batch(calls: list[tuple[str, int, str, str]]):  # type: ignore[no-untyped-def]
    """(callee, billsec, account, card) -> decoded batch, numbers, resolved accounts."""
    records = [
        Rec(0, i, None, orjson.dumps({
            "cdr_id": f"c{i}", "switch": "sw", "account": account, "caller": "+31201234567",
            "callee": callee, "start_time": START, "end_time": START + billsec + 5,
            "billsec": billsec, "disposition": "ANSWERED" if billsec else "NO ANSWER",
            "card": card,
        }))
        for i, (callee, billsec, account, card) in enumerate(calls)
    ]  # fmt: skip
    cdrs, rejects = decode(records, fixed_zone_of({}))
    assert rejects == []
    digits, lengths, reasons = normalise_many(cdrs.callee.tolist(), SwitchSettings())
    assert reasons == [None] * len(calls)
    known = [account == "cust" for _, _, account, _ in calls]
    n = len(calls)
    resolved = Resolved(
        known=np.asarray(known),
        reason=[None if k else Reason(Kind.UNKNOWN_ACCOUNT, "'x'") for k in known],
        customer_id=["cust" if k else "" for k in known],
        card_number=[c if k else "" for (_, _, _, c), k in zip(calls, known, strict=True)],
        reseller_id=["res" if k else "" for k in known],
        sell_tariff=["sell" if k else "" for k in known],
        buy_tariff=["buy" if k else "" for k in known],
        currency=["EUR"] * n,
    )
    return cdrs, digits, lengths, resolved


def _rate(
    compiled: object,
    cdrs: CdrBatch,
    resolved: Resolved,
    digits: np.ndarray,  # type: ignore[type-arg]
    lengths: np.ndarray,  # type: ignore[type-arg]
    *,
    late: list[bool] | None = None,
    max_price: int = 10**12,
) -> RatedRows:
    flags = np.asarray(late if late is not None else [False] * len(cdrs), dtype=bool)
    return rated_rows(COMPILED, cdrs, resolved, digits, lengths, late=flags, max_price=max_price)


def _texts(rows: RatedRows) -> list[str]:
    return [r.text if r is not None else "" for r in rows.reason.tolist()]


def _expected(table: TariffTable, callee: str, billsec: int) -> int:
    at = datetime.fromtimestamp(START, UTC)
    rated = reference.rate([table], callee.lstrip("+"), billsec, at)
    return rated.price_micro if rated else 0


def test_each_fate_before_the_debit() -> None:
    calls = [
        ("+493012345678", 125, "cust", ""),  # rated, Berlin
        ("+493012345678", 0, "cust", ""),  # unanswered
        ("+4412345678", 30, "cust", ""),  # buy match, no sell match
        ("+3312345678", 30, "cust", ""),  # no match at all
        ("+4989123456", 30, "x", ""),  # unknown account
        ("+4989123456", 61, "cust", "812345678901"),  # rated on a card
    ]
    cdrs, digits, lengths, resolved = _batch(calls)
    rows = _rate(COMPILED, cdrs, resolved, digits, lengths)
    assert rows.outcome.tolist() == [RATED, UNANSWERED, UNRATED, UNRATED, UNRATED, RATED]
    assert _texts(rows) == [
        "", "", "no sell match: sell", "no sell match: sell", "unknown account: 'x'", ""
    ]  # fmt: skip
    assert rows.price.tolist()[1:5] == [0, 0, 0, 0]
    assert rows.cost.tolist()[1:5] == [0, 0, 0, 0]
    assert rows.price[0] == _expected(SELL, "+493012345678", 125)
    assert rows.cost[0] == _expected(BUY, "+493012345678", 125)
    assert rows.prefix[0] == "4930"
    assert rows.destination[0] == "Berlin"
    assert rows.billable[0] == 180
    assert rows.sell_tariff[0] == "sell@1"
    assert rows.buy_tariff[0] == "buy@1"
    assert rows.number[0] == "493012345678"
    assert rows.card.tolist()[5] == "812345678901"
    assert rows.customer.tolist()[4] == ""
    assert rows.reseller.tolist()[4] == ""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["+493012345678", "+4989123456", "+4412345678", "+3312345678"]),
            st.integers(0, 7200),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_prices_equal_the_reference(calls: list[tuple[str, int]]) -> None:
    cdrs, digits, lengths, resolved = _batch([(c, b, "cust", "") for c, b in calls])
    rows = _rate(COMPILED, cdrs, resolved, digits, lengths)
    for i, (callee, billsec) in enumerate(calls):
        sell, buy = _expected(SELL, callee, billsec), _expected(BUY, callee, billsec)
        if billsec and sell and buy:
            assert rows.outcome[i] == RATED
            assert (rows.price[i], rows.cost[i]) == (sell, buy)
        else:
            assert (rows.price[i], rows.cost[i]) == (0, 0)


def test_debit_outcomes_drop_duplicates_and_unknown_accounts_become_unrated() -> None:
    cdrs, digits, lengths, resolved = _batch([("+493012345678", 60, "cust", "")] * 4)
    rows = _rate(COMPILED, cdrs, resolved, digits, lengths)
    result = DebitResult(
        outcome=np.array(
            [Outcome.APPLIED, Outcome.DUPLICATE, Outcome.UNKNOWN_ACCOUNT, Outcome.APPLIED],
            dtype=np.int8,
        ),
        blocked=np.array([False, False, False, True]),
        replayed=np.array([False, False, False, True]),
    )
    kept, duplicates, replayed = apply_outcomes(rows, result, window_s=86_400)
    assert duplicates == 1
    assert kept.cdrs.cdr_id.tolist() == ["c0", "c2", "c3"]
    assert kept.outcome.tolist() == [RATED, UNRATED, RATED]
    assert kept.reason.tolist()[1].kind == Kind.UNKNOWN_ACCOUNT
    assert kept.price.tolist()[1] == 0
    assert kept.blocked.tolist() == [False, False, True]
    assert replayed.tolist() == [False, False, True]


def test_counting_groups_reasons_without_record_values() -> None:
    cdrs, digits, lengths, resolved = _batch(
        [
            ("+493012345678", 60, "cust", ""),
            ("+4989123456", 1, "x", ""),
            ("+4989123456", 0, "y", ""),
        ]
    )
    rows = _rate(COMPILED, cdrs, resolved, digits, lengths)
    report = BatchReport(records=3)
    record = Rec(0, 9, None, b"{")
    rejects = [Reject(record, Reason(Kind.BAD_JSON, "unexpected end of data: line 1 column 2"))]
    count(report, rows, 2, rejects)
    assert report.outcomes == {
        (RATED, ""): 1,
        (UNRATED, "unknown account"): 2,
        (DUPLICATE, ""): 2,
        (INVALID, "bad json"): 1,
    }
