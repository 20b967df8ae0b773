"""The reseller portal's pages with 10,000 customers and 100,000 cards on one reseller.

A real `rater serve` (one worker) on the stack, a logged-in session, each page asked
REPEATS times over HTTP on loopback (urllib, one connection per request, as a browser's first
visit); median and 95th percentile of the wall time per page, against the target of 200 ms.
Measured beside: one count of the reseller's cards (rater/portal/census.py), which the
overview reads from Redis and recounts in the background, and the first overview with no count
yet (it answers at once and starts the count).

The books: one reseller, 10,000 customers (the hash fields `Customers.create` writes, put in
with a pipeline so the set-up takes seconds, not minutes), 50,000 cards on 500 SIP accounts (100
each) and 50,000 disposable cards in 5 batches of 10,000, both through the account API's
create_cards. Redis database +11 and a ClickHouse database of its own, dropped after.
"""

from __future__ import annotations

import dataclasses
import http.cookiejar
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchContext, BenchReport, Measurement
from rater import clickhouse
from rater.accounts.api import Accounts
from rater.accounts.model import CustomerKind
from rater.portal.census import count
from rater.portal.passwords import set_password
from rater.redis import connection as redis_client
from rater.redis import keys
from rater.settings import Settings
from rater.tariffs.derive import derive
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

TITLE = "Reseller portal pages (10,000 customers, 100,000 cards)"
NEEDS_STACK = True

TARGET_MS = 200.0
RESELLER = "bench"
PASSWORD = "bench-portal-password"
RATER = Path(sys.executable).with_name("rater")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def run(ctx: BenchContext) -> BenchReport:
    customers = 500 if ctx.quick else 10_000
    sip_with_cards, per_sip = (20, 50) if ctx.quick else (500, 100)
    batches, per_batch = (2, 1_000) if ctx.quick else (5, 10_000)
    repeats = 5 if ctx.quick else 30
    settings = _isolated(ctx.settings)
    client = redis_client.connect(settings, socket_timeout=120)
    client.flushdb()
    clickhouse.migrate(settings)
    cards = sip_with_cards * per_sip + batches * per_batch
    report = BenchReport(
        title=TITLE,
        params={"customers": customers, "cards": cards, "requests per page": repeats},
    )
    try:
        started = time.perf_counter()
        _books(
            settings,
            client,
            customers=customers,
            sip_with_cards=sip_with_cards,
            per_sip=per_sip,
            batches=batches,
            per_batch=per_batch,
        )
        report.notes.append(f"Set-up: {time.perf_counter() - started:.0f} s.")
        accounts = Accounts(settings, client)
        listed = accounts.list_customers(RESELLER)
        reseller = accounts.get_reseller(RESELLER)
        counted = [count(client, RESELLER, listed, reseller.ani_threshold) for _ in range(3)]
        census_s = statistics.median(c.seconds for c in counted)
        with _Serve(settings) as base:
            opener = _login(base)
            client.delete(keys.portal_census(RESELLER))
            first = _timed(opener, base + "/")
            _wait_census(client)
            pages = {
                "overview": "/",
                "customers": "/customers",
                "customers, page 100": "/customers?page=100",
                "customers, search": "/customers?q=c0999",
                f"customer with {per_sip} cards": "/customers/bench-c00001",
                f"card-batch customer with {per_batch:,} cards": "/customers/bench-batch1",
                "tariffs": "/tariffs",
                "tariff, searched": "/tariffs/view?name=bench-cards&q=%2B31612345678",
                "reports (30 days)": "/reports",
            }
            for name, path in pages.items():
                _timed(opener, base + path)  # warm: templates compiled, connections open
                times = sorted(_timed(opener, base + path) for _ in range(repeats))
                median = statistics.median(times)
                p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                report.measurements.append(
                    Measurement(
                        f"{name}: median (p95 {p95:.0f} ms)",
                        median,
                        "ms",
                        target=f"< {TARGET_MS:.0f} ms",
                        higher_is_better=False,
                    )
                )
        report.measurements.append(
            Measurement(
                "overview with no card count yet (answers, counts in the background)",
                first,
                "ms",
                target=f"< {TARGET_MS:.0f} ms",
                higher_is_better=False,
            )
        )
        report.measurements.append(
            Measurement(
                f"counting {cards:,} cards (background; pipelines of 2,000)",
                census_s,
                "s",
                higher_is_better=False,
            )
        )
        report.notes.append(
            "Balances, credit and coverage are read live on every page (10,000 customer "
            "hashes in one pipeline); card totals and the tip 1 alert come from the latest "
            "count, at most RATER_PORTAL_CENSUS_S (30 s) old plus one count."
        )
    finally:
        client.flushdb()
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()
    return report


def _isolated(base: Settings) -> Settings:
    db = (base.redis_db + 11) % 16
    return base.replace(
        redis_url=base.redis_url.rsplit("/", 1)[0] + f"/{db}",
        clickhouse_database=f"bench_portal_{uuid.uuid4().hex[:8]}",
        log_level="WARNING",
    )


def _books(
    settings: Settings, client: Any, *, customers: int, sip_with_cards: int, per_sip: int,
    batches: int, per_batch: int,
) -> None:  # fmt: skip
    redis = client
    store = TariffStore(redis, settings, clickhouse=False)
    rows = tuple(
        TariffRow(f"{cc}{n}", f"Destination {cc}{n}", 10_000 + n * 37)
        for cc in ("31", "32", "33", "44", "49")
        for n in range(200)
    )
    buy = store.save(TariffTable(name="bench-buy", steps=Steps(1, 1), rows=rows))
    accounts = Accounts(settings, redis, actor="bench")
    accounts.create_reseller(RESELLER, "Bench reseller", credit="100000000", buy_tariff=buy.name)
    store.save(
        derive(buy, name="bench-cards", markup=Decimal(40), steps=Steps(60, 60)), owner=RESELLER
    )
    set_password(redis, RESELLER, PASSWORD)
    pipe = redis.pipeline(transaction=False)
    now = int(time.time())
    for i in range(1, customers - batches + 1):
        cid = f"{RESELLER}-c{i:05d}"
        pipe.set(keys.account_index(cid), RESELLER)
        pipe.hset(
            keys.customer(RESELLER, cid),
            mapping={
                "name": f"Customer {i}",
                "res": RESELLER,
                "bal": (i % 97) * 1_000_000 - 3_000_000,
                "tariff": "bench-cards",
                "kind": "normal",
                "st": "active",
                "blk": 0,
                "created": now,
            },
        )
        pipe.sadd(keys.customers_of(RESELLER), cid)
        if i % 2_000 == 0:
            pipe.execute()
    pipe.execute()
    accounts.store.bump()
    for i in range(1, sip_with_cards + 1):
        accounts.create_cards(f"{RESELLER}-c{i:05d}", count=per_sip, value="2")
    for b in range(1, batches + 1):
        cid = f"{RESELLER}-batch{b}"
        accounts.create_customer(cid, f"Calling card user batch {b}", reseller_id=RESELLER,
                                 tariff="bench-cards", kind=CustomerKind.CARD_BATCH)  # fmt: skip
        accounts.create_cards(cid, count=per_batch, value="5", disposable=True)


class _Serve:
    """`rater serve` with one worker on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RATER_")}
        for field in dataclasses.fields(self.settings):
            env[f"RATER_{field.name.upper()}"] = str(getattr(self.settings, field.name))
        self.process = subprocess.Popen(
            [str(RATER), "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}/portal"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/login", timeout=2).read()
                return base
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("rater serve did not answer") from None
                time.sleep(0.2)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(30)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _login(base: str) -> urllib.request.OpenerDirector:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(base + "/login").read().decode()
    found = _CSRF.search(form)
    assert found is not None
    body = urllib.parse.urlencode(
        {"csrf": found.group(1), "reseller": RESELLER, "password": PASSWORD}
    ).encode()
    page = opener.open(base + "/login", data=body).read().decode()
    if "Log out" not in page:
        raise RuntimeError("the bench reseller could not log in")
    return opener


def _timed(opener: urllib.request.OpenerDirector, url: str) -> float:
    started = time.perf_counter()
    with opener.open(url, timeout=60) as answer:
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{url}: {answer.status}")
    return (time.perf_counter() - started) * 1000


def _wait_census(client: Any) -> None:
    deadline = time.monotonic() + 120
    while not client.exists(keys.portal_census(RESELLER)):
        if time.monotonic() > deadline:
            raise RuntimeError("the card count did not finish")
        time.sleep(0.2)
