"""Call debits reach the ledger as one entry per account and insert (schemas/clickhouse/
080_ledger_calls_grouped.sql), and a replay that groups the records differently neither doubles
nor drops an amount: a worker is killed between the insert and the commit, and another replays
the rest in batches of another size (docs/DESIGN.md section 3, "Replays")."""

from __future__ import annotations

import itertools
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pipeline_world import RESELLER, make_world, own_topics, publish, spawn, totals, workload

from rater.billing.reconcile import reconcile
from rater.redis.connection import RedisLike
from rater.settings import Settings

pytestmark = pytest.mark.integration


def _wait(process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180.0) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(log.read_text(errors="replace")[-3000:]) from None


def _ledger(ch: Any) -> dict[tuple[str, str], int]:
    rows = ch.execute(
        "SELECT level, multiIf(level = 'reseller', reseller, level = 'customer', customer, card)"
        " AS account_id, sum(amount) FROM ledger WHERE kind = 'call' GROUP BY level, account_id"
    )
    return {(str(level), str(account)): int(total) for level, account, total in rows}


def test_a_replay_in_other_batches_neither_doubles_nor_drops_a_ledger_amount(
    kafka_topics: Settings, redis: RedisLike, ch: Any, tmp_path: Path
) -> None:
    log = tmp_path / "workers.log"
    settings = own_topics(kafka_topics, "ledger-agg").replace(
        session_timeout_ms=3000, heartbeat_interval_ms=500
    )
    for table in ("rated_cdrs", "ledger", "daily_summary", "card_summary"):
        ch.execute(f"TRUNCATE TABLE {table}")  # this test owns the totals
    redis.flushdb()
    world = make_world(settings, redis)
    load = workload(world, 900, seed=5, prefix="agg")
    publish(settings, load.messages)

    # batches of 60 in inserts of about 120 rows; killed after the insert holding the third
    # batch, before its offsets are committed
    first = spawn(settings, "--batch", "60", log=log, fault_point="after_store",
                  fault_after_batches="3", insert_rows="120")  # fmt: skip
    assert _wait(first, log) == -signal.SIGKILL
    stored_before_replay = totals(ch)["count"]
    assert 0 < stored_before_replay < load.unique
    # the replay reads the uncommitted batches again in batches of 170: other groupings
    final = spawn(settings, "--batch", "170", "--until-idle", "8", log=log, insert_rows="400")
    assert _wait(final, log) == 0, log.read_text(errors="replace")[-3000:]

    sums = totals(ch)
    assert sums["count"] == sums["distinct"] == load.unique
    assert sums["price"] == sum(load.price.values())
    ledger = _ledger(ch)
    expected = {("customer", c): -p for c, p in load.price.items() if p}
    expected |= {("card", c): -p for c, p in load.card_price.items() if p}
    expected |= {("reseller", RESELLER): -load.cost[RESELLER]}
    assert {k: v for k, v in ledger.items() if v} == expected
    revenue = ch.execute("SELECT sum(revenue) FROM daily_summary")[0][0]
    assert revenue == sum(load.price.values())
    card_revenue = dict(ch.execute("SELECT card, sum(revenue) FROM card_summary GROUP BY card"))
    assert {k: v for k, v in card_revenue.items() if v} == {
        k: v for k, v in load.card_price.items() if v
    }
    assert [c for c in reconcile(settings, redis) if not c.ok] == []

    # one entry per account and insert, not one per call: far fewer entries than rated calls
    entries, rated = ch.execute(
        "SELECT (SELECT count() FROM ledger WHERE kind = 'call'),"
        " (SELECT count() FROM rated_cdrs WHERE outcome = 'rated' AND price != 0)"
    )[0]
    assert rated > 300
    assert entries < rated / 2
    # each entry names the identity range it covers; one account's ranges never overlap
    ranges = ch.execute(
        "SELECT DISTINCT ref, level, customer, card, reseller FROM ledger WHERE kind = 'call'"
    )
    spans: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for ref, *account in ranges:
        topic_partition, span = ref.rsplit(":", 1)
        lo, hi = (int(x) for x in span.split("-"))
        spans.setdefault((topic_partition, *account), []).append((lo, hi))
    for pieces in spans.values():
        pieces.sort()
        assert all(a[1] < b[0] for a, b in itertools.pairwise(pieces)), pieces
