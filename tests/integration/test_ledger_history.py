"""A customer's balance history (rater/analytics/reports.py) over the ledger's call entries:
per-call entries written before migration 080 and grouped ones after it, on ClickHouse 18.16
and a current release (chDB)."""

from __future__ import annotations

from datetime import datetime

import pytest
from analytics_support import executor

from rater.analytics.reports import Reports
from rater.clickhouse.executor import Executor

pytestmark = pytest.mark.integration

__all__ = ["executor"]

COLUMNS = ("entry_id", "ts", "level", "reseller", "customer", "card", "kind", "amount",
           "currency", "reason", "ref", "actor")  # fmt: skip


def _entry(entry_id: str, ts: datetime, kind: str, amount: int, reason: str) -> tuple[object, ...]:
    return (entry_id, ts, "customer", "r1", "c1", "", kind, amount, "EUR", reason, "x", "rater")


def test_history_counts_calls_of_grouped_and_per_call_entries(executor: Executor) -> None:
    day = datetime(2026, 11, 2, 10)
    executor.insert("ledger", COLUMNS, [
        _entry("call:t:0:1:0:1", day, "call", -100, "call to UK"),  # 030's per-call entry
        _entry("calls:t:0:2-90", day.replace(hour=11), "call", -4_000, "41 calls"),
        _entry("calls:t:1:3-70", day.replace(hour=12), "call", -2_000, "17 calls"),
        _entry("topup-1", day.replace(hour=9), "topup", 50_000, "card sale"),
    ])  # fmt: skip
    report = Reports(executor).history("r1", "c1")
    lines = [(row[1], row[3], row[4]) for row in report.rows]
    assert lines == [
        ("call", -6_100, "calls of 2026-11-02: 59"),
        ("topup", 50_000, "card sale"),
    ]
