"""Shared pieces of the analytics tests: executors on both ClickHouse back-ends and known data.

`executor` is parametrised: "server" is the ClickHouse the stack runs (18.16 locally), on the
session's migrated database; "chdb" is a current ClickHouse release in-process (chDB), migrated
with rated_cdrs and the analytics migrations. Each test gets an empty rated_cdrs and summaries.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rater.billing.rows import Row, blank_row
from rater.clickhouse import migrations
from rater.clickhouse.executor import ChdbExecutor, DriverExecutor, Executor
from rater.settings import Settings

#: migrations the analytics code needs: the base table, the ledger and its call views, its own
CHDB_MIGRATIONS = (1, 2, 30, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 80)
TABLES = ("rated_cdrs", "daily_summary", "card_summary", "rerate_audit", "ledger")


def chdb_executor(path: Path) -> ChdbExecutor:
    ex = ChdbExecutor(str(path), database="rater")
    for migration in migrations():
        if migration.number in CHDB_MIGRATIONS:
            ex.migrate(migration.statements())
    return ex


@pytest.fixture(params=["server", "chdb"])
def executor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Executor]:
    if request.param == "server":
        settings: Settings = request.getfixturevalue("settings")
        ex: Executor = DriverExecutor.from_settings(settings)
        for table in TABLES:
            ex.command(f"TRUNCATE TABLE IF EXISTS {table}")
        yield ex
        for table in TABLES:
            ex.command(f"TRUNCATE TABLE IF EXISTS {table}")
        return
    yield chdb_executor(tmp_path / "chdb")


# ---------------------------------------------------------------------------- known data
DAY1 = date(2026, 11, 2)


def cdr(
    n: int,
    *,
    when: datetime,
    reseller: str = "r1",
    customer: str = "c1",
    destination: str = "Netherlands Mobile",
    billsec: int = 60,
    price: int = 100_000,
    cost: int = 60_000,
    card: str = "",
    outcome: str = "rated",
    revision: int = 0,
    sign: int = 1,
    blocked: int = 0,
    switch: str = "sw1",
    billable: int | None = None,
    **extra: Any,
) -> Row:
    """A stored CDR row with sensible defaults (billable = billsec, 1/1 steps)."""
    if billsec == 0 or outcome == "unrated":
        price = cost = 0
    billable_s = billsec if billable is None else billable
    values: dict[str, Any] = {
        "topic_id": "topic-1",
        "partition": 0,
        "offset": n,
        "switch": switch,
        "cdr_id": f"cdr-{n}",
        "account": customer,
        "card": card,
        "caller": "31201234567",
        "callee": "+31612345678",
        "start_time": when,
        "answer_time": when if billsec else datetime(1970, 1, 1),
        "end_time": when + timedelta(seconds=billsec),
        "duration": billsec,
        "billsec": billsec,
        "disposition": "ANSWERED" if billsec else "NO ANSWER",
        "number": "31612345678",
        "prefix": "316" if outcome != "unrated" else "",
        "destination": destination if outcome != "unrated" else "",
        "billable_seconds": 0 if outcome == "unrated" else billable_s,
        "price": price,
        "cost": cost,
        "margin": price - cost,
        "currency": "EUR",
        "sell_tariff": "retail@1" if outcome != "unrated" else "",
        "buy_tariff": "wholesale@1" if outcome != "unrated" else "",
        "reseller": reseller,
        "customer": customer,
        "outcome": outcome if billsec or outcome == "unrated" else "unanswered",
        "reason": "no sell match" if outcome == "unrated" else "",
        "blocked": blocked,
        "revision": revision,
        "sign": sign,
        "rated_at": when,
    }
    values.update(extra)
    return blank_row(**values)


def random_rows(seed: int, count: int) -> list[Row]:
    """Mixed CDRs over three days, with some re-rated (cancel + new revision) ones."""
    rnd = random.Random(seed)
    rows: list[Row] = []
    for n in range(count):
        when = datetime(2026, 11, 1, 0, 0) + timedelta(seconds=rnd.randrange(3 * 86_400))
        billsec = rnd.choice([0, 0, 7, 45, 60, 61, 300, 1234])
        row = cdr(
            n,
            when=when,
            reseller=rnd.choice(["r1", "r2"]),
            customer=rnd.choice(["c1", "c2", "c3"]),
            destination=rnd.choice(["Netherlands Mobile", "Germany", "UK Fixed"]),
            billsec=billsec,
            price=rnd.randrange(0, 2_000_000),
            cost=rnd.randrange(0, 1_500_000),
            card=rnd.choice(["", "", "800000000012", "800000000020"]),
            outcome=rnd.choice(["rated"] * 6 + ["unrated"]),
            blocked=rnd.choice([0, 0, 0, 1]),
        )
        rows.append(row)
        if rnd.random() < 0.2:  # re-rated: cancel the old row, add revision 1 with a new price
            rows.append({**row, "sign": -1})
            new_price = rnd.randrange(0, 2_000_000) if billsec else 0
            rows.append(
                {**row, "revision": 1, "price": new_price, "margin": new_price - row["cost"]}
            )
    return rows


def expected_daily(rows: list[Row]) -> dict[tuple[Any, ...], dict[str, int]]:
    """Plain-Python reference of daily_summary: sums times sign, zero groups dropped."""
    out: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        key = (
            r["start_time"].date(),
            r["reseller"],
            r["customer"],
            r["destination"],
            r["currency"],
        )
        s = r["sign"]
        acc = out[key]
        acc["calls"] += s
        acc["answered"] += s if r["billsec"] > 0 else 0
        acc["unrated"] += s if r["outcome"] == "unrated" else 0
        acc["blocked_calls"] += r["blocked"] * s
        acc["talk_seconds"] += r["billsec"] * s
        acc["billed_seconds"] += r["billable_seconds"] * s
        acc["revenue"] += r["price"] * s
        acc["buy_cost"] += r["cost"] * s
        acc["margin_amount"] += r["margin"] * s
    return {k: dict(v) for k, v in out.items() if any(v.values())}


def expected_cards(rows: list[Row]) -> dict[tuple[Any, ...], dict[str, int]]:
    out: dict[tuple[Any, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if not r["card"]:
            continue
        key = (r["start_time"].date(), r["reseller"], r["customer"], r["card"], r["currency"])
        s = r["sign"]
        acc = out[key]
        acc["calls"] += s
        acc["answered"] += s if r["billsec"] > 0 else 0
        acc["talk_seconds"] += r["billsec"] * s
        acc["billed_seconds"] += r["billable_seconds"] * s
        acc["revenue"] += r["price"] * s
    return {k: dict(v) for k, v in out.items() if any(v.values())}


def summary_contents(
    ex: Executor, table: str, keys: tuple[str, ...], values: tuple[str, ...]
) -> dict[tuple[Any, ...], dict[str, int]]:
    """A summary table's sums per key (merged or not), zero groups dropped."""
    sums = ", ".join(f"toInt64(sum({v}))" for v in values)
    got = {}
    for row in ex.rows(f"SELECT {', '.join(keys)}, {sums} FROM {table} GROUP BY {', '.join(keys)}"):
        vals = dict(zip(values, (int(v) for v in row[len(keys) :]), strict=True))
        if any(vals.values()):
            got[tuple(row[: len(keys)])] = vals
    return got
