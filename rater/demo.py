"""`make demo` / `python -m rater.demo [--count N] [--workers N]`: the whole job on the stack.

1. the local stack up (Kafka protocol broker, Redis, ClickHouse), this run's topics and database;
2. a buy tariff imported from a CSV deck (every country and mobile prefix), a sell table derived
   from it (+25%, 30/6) for SIP customers and a calling-card table (+40%, 60/60: the seed's tip 3);
3. a reseller, SIP customers with normal cards, and "Calling card user batch 1" with a batch of
   disposable cards, all through the account API;
4. N CDRs published by the load generator (some invalid, some resent duplicates), with its
   manifest of reference totals;
5. the workers rate them; then CDRs/s, totals per reseller and customer beside the manifest's,
   balances, outcomes by reason, dead letters, a few rows read back from ClickHouse and the
   reconciliation of every balance.

Each run has its own topics, ClickHouse database and account ids (printed at the end) so the
numbers are this run's only; the stack keeps running afterwards for exploring.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rater import clickhouse
from rater import stack as local_stack
from rater.accounts.api import Accounts
from rater.accounts.model import CustomerKind
from rater.billing.reconcile import reconcile
from rater.loadgen.generate import GenerationOptions
from rater.loadgen.manifest import Manifest
from rater.loadgen.prefixes import wholesale_table
from rater.loadgen.runner import LoadgenOptions
from rater.loadgen.runner import run as loadgen_run
from rater.loadgen.scenario import scenario_from_accounts
from rater.logs import configure_logging
from rater.money import from_micro
from rater.pipeline import deadletter as dead_letters
from rater.pipeline.worker import WorkerSummary, run_workers
from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.tariffs.derive import derive
from rater.tariffs.export import write_tariff
from rater.tariffs.importers import read_tariff
from rater.tariffs.model import Steps
from rater.tariffs.store import TariffStore

SIP_CUSTOMERS = 20
SIP_BALANCE = Decimal(5000)
NORMAL_CARDS_PER_HOLDER = 5
CARD_HOLDERS = 4
DISPOSABLE_CARDS = 200


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rater.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="CDRs to publish")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--invalid", type=float, default=0.002, help="share of invalid records")
    parser.add_argument("--duplicates", type=float, default=0.005, help="share of resends")
    args = parser.parse_args(argv)
    base = Settings.from_env()
    tag = time.strftime("%m%d%H%M") + uuid.uuid4().hex[:4]
    settings = base.replace(
        topic_cdrs=f"cdrs-demo-{tag}",
        topic_dlq=f"cdrs-demo-{tag}.dlq",
        topic_meta=f"cdrs-demo-{tag}.meta",
        consumer_group=f"rater-demo-{tag}",
        clickhouse_database=f"demo_{tag}",
        workers=args.workers,
        log_level="WARNING",
    )
    configure_logging(settings)
    _title("1. the local stack")
    local_stack.up(settings, echo=lambda line: print("  " + line))
    redis = redis_client.connect(settings)
    accounts = Accounts(settings, redis, actor="demo")

    _title("2. tariffs: import a buy deck, derive sell tables")
    store = TariffStore(redis, settings)
    buy_name, retail_name, cards_name = f"{tag}-buy", f"{tag}-retail", f"{tag}-cards"
    deck = _write_deck(settings, buy_name)
    started = time.perf_counter()
    buy = store.save(read_tariff(deck, name=buy_name, decimals=6))
    print(f"  imported {deck.name}: {len(buy.rows):,} prefixes as {buy.key} "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    retail = store.save(derive(buy, name=retail_name, markup=Decimal(25), steps=Steps(30, 6)))
    cards_table = store.save(derive(buy, name=cards_name, markup=Decimal(40), steps=Steps(60, 60)))
    print(f"  derived {retail.key} (+25% markup, 30/6) and {cards_table.key} (+40%, 60/60)")

    _title("3. accounts: a reseller, SIP customers, cards")
    reseller_id = f"demo{tag}"
    credit = SIP_CUSTOMERS * SIP_BALANCE + DISPOSABLE_CARDS * 10 + 1000
    accounts.create_reseller(reseller_id, "Demo Telecom", credit=str(credit), buy_tariff=buy_name)
    customers = [f"{reseller_id}-c{i + 1:02d}" for i in range(SIP_CUSTOMERS)]
    for i, customer in enumerate(customers):
        accounts.create_customer(customer, f"SIP customer {i + 1}", reseller_id=reseller_id,
                                 tariff=retail_name, balance=str(SIP_BALANCE))  # fmt: skip
    for holder in customers[:CARD_HOLDERS]:
        accounts.create_cards(holder, count=NORMAL_CARDS_PER_HOLDER, value="20")
    batch_customer = f"{reseller_id}-batch1"
    accounts.create_customer(batch_customer, "Calling card user batch 1", reseller_id=reseller_id,
                             tariff=cards_name, kind=CustomerKind.CARD_BATCH)  # fmt: skip
    batch = accounts.create_cards(
        batch_customer, count=DISPOSABLE_CARDS, value="10", disposable=True
    )
    print(f"  reseller {reseller_id} (credit {credit} EUR), {SIP_CUSTOMERS} SIP customers of "
          f"{SIP_BALANCE} EUR, {CARD_HOLDERS * NORMAL_CARDS_PER_HOLDER} normal cards, "
          f"{len(batch.cards)} disposable 10 EUR cards on {batch_customer}")  # fmt: skip

    _title(f"4. the load generator publishes {args.count:,} CDRs")
    scenario = scenario_from_accounts(settings, name=f"demo-{tag}", reseller_ids=[reseller_id],
                                      accounts=accounts)  # fmt: skip
    manifest_path = settings.stack_dir / "demo" / f"manifest-{tag}.json"
    options = LoadgenOptions(
        count=args.count,
        generation=GenerationOptions(
            invalid_fraction=args.invalid, duplicate_fraction=args.duplicates
        ),
        manifest_path=manifest_path,
        progress=sys.stderr.isatty(),
    )
    manifest = loadgen_run(settings, options, scenario)
    print(f"  published {manifest.published:,}: valid {manifest.valid:,}, duplicates "
          f"{manifest.duplicates:,}, invalid {manifest.invalid_total:,}")  # fmt: skip
    print(f"  manifest: {manifest_path}")

    _title(f"5. {args.workers} workers rate them")
    summaries = run_workers(settings, args.workers, until_idle_s=5.0)
    _report(settings, redis, manifest, summaries, reseller_id)
    return 0


def _write_deck(settings: Settings, name: str) -> Path:
    """A wholesale deck as a canonical CSV file (what a carrier would send)."""
    path = settings.stack_dir / "demo" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_tariff(wholesale_table(name), path)
    return path


def _title(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _report(
    settings: Settings,
    redis: Any,
    manifest: Manifest,
    summaries: list[WorkerSummary],
    reseller_id: str,
) -> None:
    records = sum(s.records for s in summaries)
    span = max(s.last_at for s in summaries) - min(s.first_at for s in summaries if s.first_at)
    print(f"  {records:,} records in {span:.1f} s: {records / span:,.0f} CDRs/s end to end "
          f"(decode, rate, debit, store, commit)")  # fmt: skip
    stages: dict[str, float] = {}
    for summary in summaries:
        for stage, spent in summary.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + spent
    busy = sum(stages.values()) or 1.0
    print("  time per stage: " + ", ".join(f"{k} {v / busy:.0%}" for k, v in stages.items()))

    ch = clickhouse.client(settings, numpy=False)
    _title("totals per reseller and customer: ClickHouse sum(x * sign) beside the manifest")
    ok = True
    rows = {
        r: (p, c)
        for r, p, c in ch.execute(
            "SELECT reseller, sum(price * sign), sum(cost * sign) FROM rated_cdrs "
            "WHERE outcome = 'rated' GROUP BY reseller"
        )
    }
    for rid, totals in sorted(manifest.resellers.items()):
        price, cost = rows.get(rid, (0, 0))
        same = price == totals.price_micro and cost == totals.cost_micro
        ok &= same
        print(f"  reseller {rid:<24} price {from_micro(price):>16} (manifest "
              f"{from_micro(totals.price_micro)})  cost {from_micro(cost):>16} (manifest "
              f"{from_micro(totals.cost_micro)})  {'OK' if same else 'DIFFERENT'}")  # fmt: skip
    by_customer = dict(
        ch.execute(
            "SELECT customer, sum(price * sign) FROM rated_cdrs WHERE outcome = 'rated' "
            "GROUP BY customer"
        )
    )
    for cid, totals in sorted(manifest.customers.items()):
        price = int(by_customer.get(cid, 0))
        same = price == totals.price_micro
        ok &= same
        print(f"  customer {cid:<24} price {from_micro(price):>16} (manifest "
              f"{from_micro(totals.price_micro)})  {'OK' if same else 'DIFFERENT'}")  # fmt: skip
    card_rows = dict(
        ch.execute(
            "SELECT card, sum(price * sign) FROM rated_cdrs WHERE outcome = 'rated' AND card != '' "
            "GROUP BY card"
        )
    )
    cards_same = sum(int(card_rows.get(k, 0)) == t.price_micro for k, t in manifest.cards.items())
    ok &= cards_same == len(manifest.cards)
    print(f"  cards: {cards_same} of {len(manifest.cards)} card totals equal the manifest's")

    _title("balances (Redis)")
    accounts = Accounts(settings, redis)
    reseller = accounts.get_reseller(reseller_id)
    print(f"  reseller {reseller_id}: credit {reseller.credit_str} EUR ({reseller.status})")
    for customer in accounts.list_customers(reseller_id)[:8]:
        print(
            f"  customer {customer.customer_id:<24} {customer.balance_str:>16} EUR  "
            f"{customer.status}"
        )
    print("  ...")

    _title("outcomes by reason")
    counted: dict[tuple[str, str], int] = {}
    for summary in summaries:
        for key, count in summary.outcomes.items():
            counted[key] = counted.get(key, 0) + count
    for (outcome, reason), count in sorted(counted.items(), key=lambda kv: -kv[1]):
        print(f"  {outcome + (f' ({reason})' if reason else ''):<56} {count:>10,}")
    stored = dict(ch.execute("SELECT outcome, count() FROM rated_cdrs GROUP BY outcome"))
    expect = {
        "rated": manifest.rated,
        "unanswered": manifest.unanswered,
        "unrated": manifest.unrated,
    }
    for outcome, count in expect.items():
        same = int(stored.get(outcome, 0)) == count
        ok &= same
        print(f"  stored {outcome:<12} {int(stored.get(outcome, 0)):>10,} (manifest {count:,}) "
              f"{'OK' if same else 'DIFFERENT'}")  # fmt: skip
    duplicates = counted.get(("duplicate", ""), 0)
    letters = asyncio.run(dead_letters.read_all(settings))
    ok &= duplicates == manifest.duplicates and len(letters) == manifest.invalid_total
    print(f"  duplicates counted {duplicates:,} (manifest {manifest.duplicates:,}); dead letters "
          f"{len(letters):,} (manifest invalid {manifest.invalid_total:,})")  # fmt: skip

    _title("a few rated rows from ClickHouse")
    for row in ch.execute(
        "SELECT cdr_id, customer, card, number, destination, billsec, billable_seconds, "
        "price, cost, sell_tariff FROM rated_cdrs WHERE outcome = 'rated' AND billsec > 0 "
        "ORDER BY cdr_id LIMIT 5"
    ):
        cdr_id, customer, card, number, dest, billsec, billable, price, cost, tariff = row
        print(f"  {cdr_id} {customer} {card or '-':>12} {number:>15} {dest[:22]:<22} "
              f"{billsec:>5}s->{billable:>5}s price {from_micro(price, 4)} cost "
              f"{from_micro(cost, 4)} {tariff}")  # fmt: skip
    ch.disconnect()

    _title("reconciliation: every Redis balance against ClickHouse")
    checks = reconcile(settings, redis, resellers=[reseller_id])
    bad = [c for c in checks if not c.ok]
    ok &= not bad
    print(f"  {len(checks)} accounts checked, {len(bad)} with a difference")
    for check in bad[:10]:
        print("  " + "  ".join(check.row()))
    print(f"\n{'ALL TOTALS EQUAL THE MANIFEST' if ok else 'SOME TOTALS DIFFER'}; this run's data: "
          f"database {settings.clickhouse_database}, topic {settings.topic_cdrs}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
