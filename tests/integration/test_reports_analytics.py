"""Reports on known data, on both ClickHouse back-ends; files (CSV, XLSX) read back; the cards
report joins live balances from Redis; the CLI prints the same figures."""

from __future__ import annotations

import csv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from analytics_support import cdr, executor
from click.testing import CliRunner
from openpyxl import load_workbook

from rater.analytics.reports import Reports, Scope, cards_in_scope
from rater.analytics.tables import money_text, to_text, write_csv, write_xlsx
from rater.billing.rows import Row, insert_rows
from rater.clickhouse.executor import DriverExecutor, Executor
from rater.errors import ConfigError
from rater.settings import Settings

pytestmark = pytest.mark.integration
__all__ = ["executor"]

NOV1 = datetime(2026, 11, 1, 9, 0)
NOV2 = datetime(2026, 11, 2, 18, 30)
CARD = "800000000012"


def known_rows() -> list[Row]:
    rerated = cdr(6, when=NOV2, billsec=90, price=200_000, cost=90_000)
    return [
        cdr(1, when=NOV1, billsec=60, price=100_000, cost=60_000),
        cdr(2, when=NOV1, billsec=0),
        cdr(
            3,
            when=NOV1,
            customer="c2",
            destination="Germany",
            billsec=125,
            billable=180,
            price=300_000,
            cost=120_000,
        ),
        cdr(4, when=NOV2, billsec=30, price=50_000, cost=30_000, card=CARD),
        cdr(
            5,
            when=NOV2,
            reseller="r2",
            customer="c3",
            destination="UK Fixed",
            billsec=10,
            price=7_000,
            cost=2_000,
        ),
        rerated,
        {**rerated, "sign": -1},
        {**rerated, "revision": 1, "price": 150_000, "margin": 60_000},
        cdr(7, when=NOV2, outcome="unrated", billsec=20),
    ]


def test_daily_report(executor: Executor) -> None:
    insert_rows(executor, known_rows())
    report = Reports(executor).daily(Scope(date(2026, 11, 1), date(2026, 11, 30), reseller="r1"))
    got = report.as_dicts()
    assert [r["day"] for r in got] == ["2026-11-01", "2026-11-02"]
    nov1, nov2 = got
    assert (nov1["calls"], nov1["answered"]) == (3, 2)
    assert nov1["asr_percent"] == Decimal("66.7")
    assert nov1["acd_seconds"] == Decimal("92.5")  # (60 + 125) / 2
    assert nov1["billed_minutes"] == Decimal("4.00")  # 60 + 180 seconds
    assert (nov1["revenue"], nov1["cost"], nov1["margin"]) == (400_000, 180_000, 220_000)
    assert nov1["margin_percent"] == Decimal("55.0")
    # the re-rated CDR counts once, at its new price; the unrated one is a call without money
    assert (nov2["calls"], nov2["answered"]) == (3, 3)
    assert (nov2["revenue"], nov2["cost"]) == (200_000, 120_000)
    assert report.totals is not None
    assert report.totals[2:4] == (6, 5)
    text = to_text(report)
    assert "66.7%" in text
    assert "1:33" in text  # ACD 92.5 s rounds half-up to 1:33
    assert "0.60" in text  # total revenue 0.40 + 0.20


def test_destinations_and_margin_reports(executor: Executor) -> None:
    insert_rows(executor, known_rows())
    scope = Scope(date(2026, 11, 1), date(2026, 11, 2))
    dest = {r["destination"]: r for r in Reports(executor).destinations(scope).as_dicts()}
    assert list(dest) == ["Netherlands Mobile", "Germany", "UK Fixed", "(unrated)"]
    assert dest["Netherlands Mobile"]["revenue"] == 300_000
    assert dest["Netherlands Mobile"]["calls"] == 4
    assert dest["Germany"]["billed_minutes"] == Decimal("3.00")
    assert dest["(unrated)"]["asr_percent"] == Decimal("100.0")

    margin = Reports(executor).margin(scope).as_dicts()
    assert [(r["reseller"], r["customer"], r["margin"]) for r in margin] == [
        ("r1", "c2", 180_000),
        ("r1", "c1", 120_000),
        ("r2", "c3", 5_000),
    ]
    only_c1 = Reports(executor).margin(Scope(scope.first, scope.last, customer="c1")).as_dicts()
    assert [r["customer"] for r in only_c1] == ["c1"]


def test_report_files_read_back(executor: Executor, tmp_path: Path) -> None:
    insert_rows(executor, known_rows())
    report = Reports(executor).margin(Scope(date(2026, 11, 1), date(2026, 11, 2), reseller="r1"))
    write_csv(report, tmp_path / "m.csv")
    with (tmp_path / "m.csv").open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert [
        (r["customer"], r["revenue"], r["cost"], r["margin"], r["margin_percent"]) for r in lines
    ] == [
        ("c2", "0.30", "0.12", "0.18", "60.0"),
        ("c1", "0.30", "0.18", "0.12", "40.0"),
    ]
    write_xlsx(report, tmp_path / "m.xlsx")
    sheet = load_workbook(tmp_path / "m.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("reseller", "customer", "currency")
    header = list(rows[0])
    first = dict(zip(header, rows[1], strict=True))
    assert first["customer"] == "c2"
    assert Decimal(str(first["revenue"])) == Decimal("0.3")
    assert Decimal(str(first["margin"])) == Decimal("0.18")
    assert first["calls"] == 1


def test_money_text_is_exact() -> None:
    assert money_text(0) == "0.00"
    assert money_text(12_500_000) == "12.50"
    assert money_text(12_300) == "0.0123"
    assert money_text(1) == "0.000001"
    assert money_text(-1_000_000) == "-1.00"


def test_cards_report_joins_redis_balances(
    settings: Settings, redis: object, tmp_path: Path
) -> None:
    from rater.accounts.api import Accounts

    ex = DriverExecutor.from_settings(settings)
    for table in ("rated_cdrs", "daily_summary", "card_summary"):
        ex.command(f"TRUNCATE TABLE {table}")
    accounts = Accounts(settings, redis)  # type: ignore[arg-type]
    accounts.create_reseller("rep1", "Reseller One", credit="100", buy_tariff="wholesale")
    accounts.create_customer(
        "cust1", "Customer One", reseller_id="rep1", tariff="retail", balance="50"
    )
    batch = accounts.create_cards("cust1", count=2, value="5", batch_id="b1")
    used, idle = sorted(c.number for c in batch.cards)
    insert_rows(
        ex,
        [
            cdr(
                1,
                when=NOV1,
                reseller="rep1",
                customer="cust1",
                card=used,
                billsec=60,
                price=400_000,
            ),
            cdr(2, when=NOV2, reseller="rep1", customer="cust1", card=used, billsec=0),
        ],
    )
    scope = Scope(date(2026, 11, 1), date(2026, 11, 30), reseller="rep1")
    cards, currency = cards_in_scope(accounts, scope)
    report = Reports(ex).cards(scope, cards, currency)
    by_card = {r["card"]: r for r in report.as_dicts()}
    assert set(by_card) == {used, idle}
    assert by_card[used]["calls"] == 2
    assert by_card[used]["answered"] == 1
    assert by_card[used]["spent"] == 400_000
    assert by_card[used]["balance"] == 5_000_000  # nothing debited it: no pipeline here
    assert by_card[idle]["calls"] == 0
    assert by_card[idle]["currency"] == "EUR"

    from rater.cli.main import cli

    env = {
        "RATER_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "RATER_REDIS_URL": settings.redis_url,
        "RATER_CLICKHOUSE_PORT": str(settings.clickhouse_port),
    }
    out = tmp_path / "cards.csv"
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "cards",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--reseller",
            "rep1",
            "-o",
            str(out),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(out.open(newline="")))
    assert {(r["card"], r["balance"], r["spent"]) for r in lines} == {
        (used, "5.00", "0.40"),
        (idle, "5.00", "0.00"),
    }
    result = CliRunner().invoke(
        cli, ["report", "daily", "--from", "2026-11-01", "--to", "2026-11-02"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "2026-11-01" in result.output
    assert "0.40" in result.output


def test_reports_in_a_resellers_time_zone(executor: Executor) -> None:
    late = datetime(2026, 11, 1, 23, 30)  # 00:30 on 2 November in Amsterdam (UTC+1)
    insert_rows(executor, [
        cdr(1, when=late, billsec=60, price=100_000, card=CARD),
        cdr(2, when=datetime(2026, 11, 1, 12, 0), billsec=30, price=50_000),
    ])  # fmt: skip
    reports = Reports(executor)
    utc = reports.daily(Scope(date(2026, 11, 1), date(2026, 11, 2))).as_dicts()
    assert [(r["day"], r["calls"]) for r in utc] == [("2026-11-01", 2)]
    ams = Scope(date(2026, 11, 1), date(2026, 11, 2), timezone="Europe/Amsterdam")
    local = reports.daily(ams).as_dicts()
    assert [(r["day"], r["calls"], r["revenue"]) for r in local] == [
        ("2026-11-01", 1, 50_000),
        ("2026-11-02", 1, 100_000),
    ]
    # the first Amsterdam day starts at 23:00 UTC the day before
    only_first = Scope(date(2026, 11, 1), date(2026, 11, 1), timezone="Europe/Amsterdam")
    assert [r["calls"] for r in reports.margin(only_first).as_dicts()] == [1]
    assert reports.card_usage(ams)[CARD][3:] == (1, 1, 60, 100_000)
    assert "(Europe/Amsterdam)" in reports.daily(ams).title
    with pytest.raises(ConfigError):
        Scope(date(2026, 11, 1), date(2026, 11, 1), timezone="Mars/Olympus")
