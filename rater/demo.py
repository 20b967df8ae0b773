"""`make demo` / `python -m rater.demo [--count N] [--workers N] [--clean]`: the whole job on
the local stack.

1. the local stack up (Kafka protocol broker, Redis, ClickHouse), this run's topics and database;
2. a buy tariff imported from a CSV deck (every country and mobile prefix), a sell table derived
   from it (+25%, 30/6) for SIP customers and a calling-card table (+40%, 60/60: tip 3 of the
   reseller notice, docs/DESIGN.md section 1);
3. a reseller, SIP customers with normal cards, and "Calling card user batch 1" with a batch of
   disposable cards, all through the account API;
4. N CDRs published by the load generator (some invalid, some resent duplicates), with its
   manifest of reference totals;
5. the workers rate them; then CDRs/s, totals per reseller and customer beside the manifest's,
   balances, outcomes by reason, dead letters, a few rows read back from ClickHouse and the
   reconciliation of every balance.

The demo keeps to itself: its accounts, tariffs and switch settings live in Redis database
DEMO_REDIS_DB of the stack's Redis (not the database `rater run`, `rater reconcile` and
`rater tariff list` use), its CDRs in the ClickHouse database DEMO_DATABASE, its records in
topics named `cdrs-demo-<run>`. Each run first removes what the previous run left (so repeated
runs do not pile up); `--clean` removes it and exits; `rater stack down --purge` deletes the
whole state folder, the demo's data with it. The stack keeps running afterwards for exploring.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from aiokafka.admin import AIOKafkaAdminClient

from rater import clickhouse, kafka
from rater import stack as local_stack
from rater.accounts.api import Accounts
from rater.accounts.model import Card, Customer, CustomerKind
from rater.billing.reconcile import reconcile
from rater.errors import ConfigError, RaterError
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
from rater.redis.connection import RedisLike
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

#: the demo's Redis database: the last of Redis' 16 default databases, away from the 0 that
#: rater uses unless told otherwise
DEMO_REDIS_DB = 15
#: the demo's ClickHouse database (dropped and created again by every run)
DEMO_DATABASE = "demo"
#: topics `cdrs-demo-<run>`, `cdrs-demo-<run>.dlq`, `cdrs-demo-<run>.meta`
TOPIC_PREFIX = "cdrs-demo-"
#: set in the demo's Redis database: a database with keys but without it is not the demo's
#: and is never flushed
MARKER_KEY = "rater:demo"
#: ClickHouse databases of demo runs before DEMO_DATABASE existed (demo_<MMDDHHMM><hex4>)
_OLD_DATABASES = re.compile(r"demo_\d{8}[0-9a-f]{4}")

Echo = Callable[[str], None]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rater.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="CDRs to publish")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--invalid", type=float, default=0.002, help="share of invalid records")
    parser.add_argument("--duplicates", type=float, default=0.005, help="share of resends")
    parser.add_argument(
        "--clean", action="store_true", help="remove what demo runs left on the stack, and exit"
    )
    args = parser.parse_args(argv)
    try:
        return _clean_only(Settings.from_env()) if args.clean else _demo(args)
    except RaterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def demo_settings(base: Settings, tag: str = "") -> Settings:
    """The demo's settings on the stack of `base`: its own Redis database, ClickHouse database
    and topics (this run's `tag`), on the stack's single Redis (never a cluster: a cluster has
    one database only)."""
    url = urlparse(base.redis_url)
    return base.replace(
        redis_url=urlunparse(url._replace(path=f"/{DEMO_REDIS_DB}")),
        redis_cluster_nodes="",
        topic_cdrs=f"{TOPIC_PREFIX}{tag}",
        topic_dlq=f"{TOPIC_PREFIX}{tag}.dlq",
        topic_meta=f"{TOPIC_PREFIX}{tag}.meta",
        consumer_group=f"rater-demo-{tag}",
        clickhouse_database=DEMO_DATABASE,
        log_level="WARNING",
    )


def _clean_only(base: Settings) -> int:
    removed = clean(demo_settings(base), echo=print)
    print("nothing of the demo was left" if not removed else "demo data removed")
    return 0


def clean(settings: Settings, echo: Echo) -> list[str]:
    """Remove every demo run's Redis database, ClickHouse database(s), topics and files;
    returns what was removed. ConfigError when the demo's Redis database holds data that is
    not the demo's (then nothing is removed)."""
    redis = redis_client.connect(settings)
    try:
        size = redis.dbsize()
        if size and not redis.exists(MARKER_KEY):
            raise ConfigError(
                f"Redis database {DEMO_REDIS_DB} ({settings.redis_url}) holds {size} keys that "
                f"the demo did not write (no {MARKER_KEY!r} key); the demo does not touch it"
            )
        removed = []
        if size:
            redis.flushdb()
            removed.append(f"Redis database {DEMO_REDIS_DB} ({size:,} keys)")
    finally:
        redis.close()
    admin = clickhouse.client(settings, database="default", numpy=False)
    try:
        for (name,) in admin.execute("SHOW DATABASES"):
            if name == DEMO_DATABASE or _OLD_DATABASES.fullmatch(name):
                admin.execute(f"DROP DATABASE IF EXISTS {name}")
                removed.append(f"ClickHouse database {name}")
    finally:
        admin.disconnect()
    topics = asyncio.run(_delete_demo_topics(settings))
    if topics:
        removed.append(f"{len(topics)} topics {TOPIC_PREFIX}*")
    files = settings.stack_dir / "demo"
    if files.is_dir():
        shutil.rmtree(files)
        removed.append(f"files in {files}")
    for line in removed:
        echo(f"  removed {line}")
    return removed


async def _delete_demo_topics(settings: Settings) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(TOPIC_PREFIX)]
        if topics:
            await admin.delete_topics(topics)
        return topics
    finally:
        await admin.close()


def _demo(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    tag = time.strftime("%m%d%H%M") + uuid.uuid4().hex[:4]
    settings = demo_settings(base, tag).replace(workers=args.workers)
    configure_logging(settings)
    _title("1. the local stack, and the demo's own Redis database, ClickHouse database, topics")
    # the services, the shared topics and database (what `rater stack up` does)
    local_stack.up(base.replace(redis_cluster_nodes=""), echo=lambda line: print("  " + line))
    clean(settings, echo=print)  # what the previous run left
    redis = redis_client.connect(settings)
    redis.set(MARKER_KEY, "the demo's database (rater/demo.py); `python -m rater.demo --clean`")
    asyncio.run(kafka.ensure_topics(settings))
    clickhouse.migrate(settings)
    print(f"  Redis database {DEMO_REDIS_DB}, ClickHouse database {DEMO_DATABASE}, topic "
          f"{settings.topic_cdrs}")  # fmt: skip
    accounts = Accounts(settings, redis, actor="demo")

    _title("2. tariffs: import a buy deck, derive sell tables")
    store = TariffStore(redis, settings)
    buy_name, retail_name, cards_name = "demo-buy", "demo-retail", "demo-cards"
    deck = _write_deck(settings, buy_name)
    started = time.perf_counter()
    buy = store.save(read_tariff(deck, name=buy_name, decimals=6))
    print(f"  imported {deck.name}: {len(buy.rows):,} prefixes as {buy.key} "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    reseller_id = f"demo{tag}"  # the sell tables are the demo reseller's own
    retail = store.save(
        derive(buy, name=retail_name, markup=Decimal(25), steps=Steps(30, 6)), owner=reseller_id
    )
    cards_table = store.save(
        derive(buy, name=cards_name, markup=Decimal(40), steps=Steps(60, 60)), owner=reseller_id
    )
    print(f"  derived {retail.key} (+25% markup, 30/6) and {cards_table.key} (+40%, 60/60)")

    _title("3. accounts: a reseller, SIP customers, cards")
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
    # the live progress line on a terminal; elsewhere (a log, CI) the summary below says it all
    summaries = run_workers(settings, args.workers, until_idle_s=5.0, progress=sys.stderr.isatty())
    ok = _report(settings, redis, manifest, summaries, reseller_id)
    return 0 if ok else 1


def negative_balances_note(customers: Sequence[Customer], cards: Sequence[Card]) -> str:
    """Why balances ended below zero ("" when none did)."""
    below = sum(1 for c in customers if c.balance < 0)
    cards_below = sum(1 for card in cards if card.balance < 0)
    if not below and not cards_below:
        return ""
    return (
        f"{below} of {len(customers)} customers and {cards_below} of {len(cards)} cards ended "
        "below zero. The load generator publishes CDRs of calls nobody authorized: a switch "
        "asks `rater authorize` before a call and is refused once the money is gone, and these "
        "calls were never asked about. A call that happened is debited all the same "
        "(docs/DESIGN.md section 4), so the balance goes below zero and the account is blocked "
        "for new calls."
    )


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
    redis: RedisLike,
    manifest: Manifest,
    summaries: list[WorkerSummary],
    reseller_id: str,
) -> bool:
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
    customers = accounts.list_customers(reseller_id)
    for customer in customers[:8]:
        print(
            f"  customer {customer.customer_id:<24} {customer.balance_str:>16} EUR  "
            f"{customer.status}"
        )
    print("  ...")
    cards = [card for c in customers for card in accounts.list_cards(c.customer_id)]
    note = negative_balances_note(customers, cards)
    if note:
        print(f"  {note}")

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
          f"Redis database {DEMO_REDIS_DB}, ClickHouse database {settings.clickhouse_database}, "
          f"topic {settings.topic_cdrs}. `rater reconcile`, `rater tariff list` and `rater run` "
          f"do not see it; the next run replaces it; `python -m rater.demo --clean` removes "
          f"it.")  # fmt: skip
    return ok


if __name__ == "__main__":
    sys.exit(main())
