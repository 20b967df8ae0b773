"""The ten example queries of docs/ANALYSTS.md against known answers, on ClickHouse 18.16 (the
stack's server) and a current release (chDB)."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from analytics_support import cdr, executor
from click.testing import CliRunner

from rater.analytics.queries import QUERIES, by_name
from rater.billing.audit import AuditRow, write_audit
from rater.billing.rows import Row, insert_rows
from rater.cli.main import cli
from rater.clickhouse.executor import DriverExecutor, Executor, Param
from rater.settings import Settings

pytestmark = pytest.mark.integration
__all__ = ["executor"]

K1, K2, K3 = "800000000012", "800000000020", "800000000038"
PARAMS: dict[str, Param] = {
    "reseller": "r1",
    "from": date(2026, 11, 1),
    "to": date(2026, 11, 30),
    "limit": 2,
}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute)


def known_rows() -> list[Row]:
    rerated = cdr(6, when=at(2, 9), billsec=90, price=200_000, cost=90_000)
    return [
        cdr(1, when=at(1, 9), billsec=60, price=100_000, cost=60_000),
        cdr(2, when=at(1, 9, 30), billsec=0),
        cdr(3, when=at(1, 14), customer="c2", destination="Germany", billsec=125, billable=180,
            price=300_000, cost=120_000),
        cdr(4, when=at(2, 18, 30), billsec=30, price=50_000, cost=30_000, card=K1),
        cdr(5, when=at(2, 18, 40), customer="c2", destination="UK Fixed", billsec=100,
            price=10_000, cost=40_000),
        rerated,
        {**rerated, "sign": -1},
        {**rerated, "revision": 1, "price": 150_000, "margin": 60_000},
        cdr(7, when=at(2, 10), reseller="", customer="", outcome="unrated", billsec=20,
            reason="unknown account 'c9'"),
        cdr(8, when=at(2, 11), outcome="unrated", billsec=30),
        cdr(11, when=at(1, 20), billsec=120, price=500_000, cost=200_000, card=K2),
        # noise: another reseller, and a day outside the period
        cdr(9, when=at(2, 12), reseller="r2", customer="c3", billsec=60, price=70_000,
            cost=10_000, card=K3),
        cdr(10, when=datetime(2026, 10, 31, 23, 59), billsec=60, price=999_000, cost=1_000),
    ]  # fmt: skip


def ledger_rows() -> list[tuple[Any, ...]]:
    issued = datetime(2026, 10, 1)
    return [
        (f"i-{card}", issued, "card", res, cust, card, "card_issue", value, "EUR", "new", "b1", "t")
        for card, res, cust, value in (
            (K1, "r1", "c1", 5_000_000),
            (K2, "r1", "c1", 1_000_000),
            (K3, "r2", "c3", 70_000),
        )
    ]  # fmt: skip


def audit_rows() -> list[AuditRow]:
    def row(run: str, reseller: str, n: int, old: int, new: int, cost_old: int, cost_new: int,  # noqa: PLR0917
            when: datetime) -> AuditRow:  # fmt: skip
        return AuditRow(
            run_id=run, run_at=when, actor="ana", reason=f"fix {run}", mode="tariff",
            switch="sw1", cdr_id=f"cdr-{n}", start_time=at(2, 9), reseller=reseller,
            customer="c1", card="", currency="EUR", old_revision=0, new_revision=1,
            old_outcome="rated", new_outcome="rated", old_destination="NL", new_destination="NL",
            old_sell_tariff="retail@1", new_sell_tariff="retail@2", old_buy_tariff="w@1",
            new_buy_tariff="w@1", old_price=old, new_price=new, old_cost=cost_old,
            new_cost=cost_new, correction_key=f"k{n}",
        )  # fmt: skip

    return [
        row("run-a", "r1", 6, 200_000, 150_000, 90_000, 90_000, datetime(2026, 11, 3, 8)),
        row("run-a", "r1", 12, 100_000, 130_000, 50_000, 40_000, datetime(2026, 11, 3, 8)),
        row("run-b", "r1", 13, 10_000, 20_000, 5_000, 5_000, datetime(2026, 11, 4, 8)),
        row("run-c", "r2", 14, 10_000, 0, 0, 0, datetime(2026, 11, 4, 9)),
    ]


EXPECTED: dict[str, list[tuple[Any, ...]]] = {
    "revenue-per-day": [
        (date(2026, 11, 1), 4, 3, 900_000 / 1e6, 380_000 / 1e6, 520_000 / 1e6),
        (date(2026, 11, 2), 4, 4, 210_000 / 1e6, 160_000 / 1e6, 50_000 / 1e6),
    ],
    "top-destinations-by-margin": [
        ("Netherlands Mobile", 4, 5.0, 420_000),
        ("Germany", 1, 3.0, 180_000),
    ],
    "asr-acd-by-destination": [
        ("Netherlands Mobile", 5, 80.0, 75.0),
        ("Germany", 1, 100.0, 125.0),
        ("UK Fixed", 1, 100.0, 100.0),
    ],
    "margin-per-customer": [
        ("c1", 800_000, 380_000, 420_000, 52.5),
        ("c2", 310_000, 160_000, 150_000, 48.4),
    ],
    "cards-nearly-empty": [(K2, "c1", 500_000)],
    "unrated-by-reason": [
        ("no sell match", 1, at(2, 11), at(2, 11)),
        ("unknown account 'c9'", 1, at(2, 10), at(2, 10)),
    ],
    "busy-hours": [(9, 2, 150), (11, 1, 30), (14, 1, 125), (18, 2, 130), (20, 1, 120)],
    "card-usage": [(K2, 1, 2.0, 500_000), (K1, 1, 0.5, 50_000)],
    "destinations-below-cost": [("UK Fixed", 1, 10_000, 40_000, -30_000)],
    "rerate-impact": [
        ("run-a", datetime(2026, 11, 3, 8), "ana", "fix run-a", 2, -20_000, -10_000),
        ("run-b", datetime(2026, 11, 4, 8), "ana", "fix run-b", 1, 10_000, 0),
    ],
}


def test_every_query_has_a_known_answer() -> None:
    assert [q.name for q in QUERIES] == list(EXPECTED)
    assert len(QUERIES) == 10


def test_example_queries_give_the_known_answers(executor: Executor) -> None:
    insert_rows(executor, known_rows())
    executor.insert(
        "ledger",
        ("entry_id", "ts", "level", "reseller", "customer", "card", "kind", "amount", "currency",
         "reason", "ref", "actor"),
        ledger_rows(),
    )  # fmt: skip
    write_audit(executor, audit_rows())
    for query in QUERIES:
        got = [tuple(row) for row in executor.rows(query.sql, PARAMS)]
        assert got == EXPECTED[query.name], query.name


def test_unknown_query_name() -> None:
    with pytest.raises(KeyError, match="revenue-per-day"):
        by_name("nope")


def test_report_query_command(settings: Settings, tmp_path: Path) -> None:
    ex = DriverExecutor.from_settings(settings)
    for name in ("rated_cdrs", "daily_summary", "card_summary", "rerate_audit", "ledger"):
        ex.command(f"TRUNCATE TABLE {name}")
    insert_rows(ex, known_rows())
    env = {
        "RATER_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "RATER_CLICKHOUSE_PORT": str(settings.clickhouse_port),
    }
    runner = CliRunner()
    listed = runner.invoke(cli, ["report", "query"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "top-destinations-by-margin" in listed.output
    out = tmp_path / "top.csv"
    args = ["report", "query", "top-destinations-by-margin", "--reseller", "r1",
            "--from", "2026-11-01", "--to", "2026-11-30", "--limit", "1",
            "-o", str(out)]  # fmt: skip
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(newline="")))
    assert rows == [
        {
            "destination": "Netherlands Mobile",
            "answered_total": "4",
            "billed_minutes": "5",
            "margin_micro": "0.42",
        }
    ]
    shown = runner.invoke(cli, args[:-2], env=env)
    assert "Netherlands Mobile" in shown.output
    assert "0.42" in shown.output
    bad = runner.invoke(cli, ["report", "query", "nope", "--reseller", "r1"], env=env)
    assert bad.exit_code != 0
    assert "known:" in bad.output
