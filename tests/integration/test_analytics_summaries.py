"""Summary views on ClickHouse 18.16 (the stack's server) and a current release (chDB):
views equal base-table aggregates (cancelling rows included), check finds differences,
rebuild-summaries repairs a corrupted day."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from analytics_support import (
    cdr,
    executor,
    expected_cards,
    expected_daily,
    random_rows,
    summary_contents,
)

from rater.analytics.check import check
from rater.analytics.summaries import CARDS, DAILY
from rater.billing.rebuild import rebuild_day
from rater.billing.rows import insert_rows
from rater.clickhouse.executor import Executor

pytestmark = pytest.mark.integration
__all__ = ["executor"]  # the fixture, imported for pytest


def test_views_equal_reference_aggregates_with_cancelling_rows(executor: Executor) -> None:
    rows = random_rows(seed=7, count=400)
    # several inserts, like the pipeline's batches; cancel rows may land in a later batch
    for start in range(0, len(rows), 150):
        insert_rows(executor, rows[start : start + 150])
    assert summary_contents(executor, "daily_summary", DAILY.key_names, DAILY.value_names) == (
        expected_daily(rows)
    )
    assert summary_contents(executor, "card_summary", CARDS.key_names, CARDS.value_names) == (
        expected_cards(rows)
    )
    assert check(executor) == []


def test_cancelled_cdr_disappears_from_the_summary(executor: Executor) -> None:
    when = datetime(2026, 11, 2, 10, 0)
    old = cdr(1, when=when, price=500_000, cost=300_000)
    insert_rows(executor, [old])
    insert_rows(
        executor, [{**old, "sign": -1}, {**old, "revision": 1, "price": 400_000, "margin": 100_000}]
    )
    got = summary_contents(
        executor, "daily_summary", DAILY.key_names, ("calls", "revenue", "margin_amount")
    )
    assert got == {
        (date(2026, 11, 2), "r1", "c1", "Netherlands Mobile", "EUR"): {
            "calls": 1,
            "revenue": 400_000,
            "margin_amount": 100_000,
        }
    }


def test_check_lists_differences_and_rebuild_repairs_the_day(executor: Executor) -> None:
    rows = random_rows(seed=11, count=200)
    insert_rows(executor, rows)
    assert check(executor) == []
    # a summary row the base table does not explain (as if a view ran twice) and a deficit
    # (as if a view failed on 18.16 after its base rows were stored)
    executor.insert(
        "daily_summary",
        ("day", "reseller", "customer", "destination", "currency", "calls", "revenue"),
        [(date(2026, 11, 2), "r1", "c1", "Germany", "EUR", 3, 123)],
    )
    executor.insert(
        "card_summary",
        ("day", "reseller", "customer", "card", "currency", "calls", "revenue"),
        [(date(2026, 11, 2), "r9", "c9", "800000000099", "EUR", -1, 0)],
    )
    found = check(executor)
    assert {d.table for d in found} == {"daily_summary", "card_summary"}
    daily = next(d for d in found if d.table == "daily_summary")
    assert daily.key["customer"] == "c1"
    assert daily.key["destination"] == "Germany"
    base_calls, summary_calls = daily.columns["calls"]
    assert summary_calls - base_calls == 3
    assert "daily_summary" in str(daily)
    # other days are not affected
    assert check(executor, date(2026, 11, 1), date(2026, 11, 1)) == []

    fixed = rebuild_day(executor, date(2026, 11, 2))
    assert {(f.table, f.groups_fixed) for f in fixed} == {("daily_summary", 1), ("card_summary", 1)}
    assert check(executor) == []
    assert summary_contents(executor, "daily_summary", DAILY.key_names, DAILY.value_names) == (
        expected_daily(rows)
    )
    # a second rebuild finds nothing to do
    assert all(f.groups_fixed == 0 for f in rebuild_day(executor, date(2026, 11, 2)))


def test_rebuild_restores_rows_stored_while_a_view_was_missing(executor: Executor) -> None:
    when = datetime(2026, 11, 3, 8, 0)
    insert_rows(executor, [cdr(1, when=when, card="800000000012")])
    # base rows stored without their summary rows (the 18.16 failure mode)
    executor.command("TRUNCATE TABLE daily_summary")
    executor.command("TRUNCATE TABLE card_summary")
    insert_rows(executor, [cdr(2, when=when, billsec=0)])
    assert len(check(executor)) == 2
    rebuild_day(executor, date(2026, 11, 3))
    assert check(executor) == []
    got = summary_contents(executor, "daily_summary", DAILY.key_names, ("calls", "answered"))
    assert got == {
        (date(2026, 11, 3), "r1", "c1", "Netherlands Mobile", "EUR"): {"calls": 2, "answered": 1}
    }
