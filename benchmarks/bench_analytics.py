"""Analytics: summary views vs the base table, `db check`, and re-rating throughput.

Measured in one run, on a ClickHouse database and a Redis database of its own (dropped and
flushed after):

- the daily report's figures from `daily_summary` beside the same figures summed from
  `rated_cdrs` (x * sign) - what the materialized view buys a report;
- `rater db check` over the whole period beside the base-table aggregate alone (the check's
  floor: it must read every base row once);
- `rater rerate` (kernel pricing, one correction script call and one insert per 2,000 CDRs)
  beside the naive way on a sample: reference pricing, one correction call and one insert per
  CDR.

Rows are generated inside ClickHouse (INSERT ... SELECT FROM system.numbers), so the insert
path is the same one the pipeline's inserts take through the views.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from benchmarks.harness import BenchContext, BenchReport, Measurement, median_time
from rater import clickhouse, reference
from rater.accounts.api import Accounts
from rater.analytics.check import check
from rater.billing.rerate import CHUNK, Rerater, RerateRequest, correction_key
from rater.billing.rows import Row, blank_row, insert_rows
from rater.clickhouse.executor import DriverExecutor
from rater.money import Rounding
from rater.pipeline.debit import Correction, Debiter
from rater.redis import connection as redis_client
from rater.settings import Settings
from rater.tariffs.model import Steps, TariffRow, TariffTable
from rater.tariffs.store import TariffStore

TITLE = "Analytics: summary views, db check, re-rating"
NEEDS_STACK = True

FIRST = date(2026, 10, 1)
DAYS = 30

_GENERATE = """
INSERT INTO rated_cdrs
SELECT
    'bench' AS topic_id, toUInt16(0) AS partition, i AS offset, 'sw1' AS switch,
    concat('b-', toString(i)) AS cdr_id, concat('c', toString(i % 50)) AS account,
    '' AS card, '' AS auth_id, '31201234567' AS caller, '+31612345678' AS callee,
    '' AS access_number,
    toDateTime({start} + intDiv(i * 86400 * {days}, {n}), 'UTC') AS start_time,
    start_time AS answer_time, start_time AS end_time, toUInt32(i % 300) AS duration,
    toUInt32(if(i % 4 = 0, 0, i % 300)) AS billsec, 'ANSWERED' AS disposition,
    '' AS hangup_cause, concat('316', toString(10000000 + i % 9000000)) AS number,
    '316' AS prefix, concat('Destination ', toString(i % 200)) AS destination,
    toUInt32(billsec) AS billable_seconds, toInt64(billsec * 1000) AS price,
    toInt64(billsec * 600) AS cost, toInt64(billsec * 400) AS margin, 'EUR' AS currency,
    'retail@1' AS sell_tariff, 'wholesale@1' AS buy_tariff,
    concat('r', toString(i % 3)) AS reseller, concat('c', toString(i % 50)) AS customer,
    if(billsec = 0, 'unanswered', 'rated') AS outcome, '' AS reason, toUInt8(0) AS blocked,
    toUInt32(0) AS revision, toInt8(1) AS sign, start_time AS rated_at
FROM (SELECT number AS i FROM system.numbers LIMIT {n})
"""

_DAILY_SUMMARY = (
    "SELECT day, sum(calls), sum(answered), sum(talk_seconds), sum(billed_seconds),"
    " sum(revenue), sum(buy_cost), sum(margin_amount) FROM daily_summary"
    " WHERE reseller = 'r1' AND day BETWEEN %(a)s AND %(b)s GROUP BY day ORDER BY day"
)
_DAILY_BASE = (
    "SELECT toDate(start_time, 'UTC') AS d, sum(sign), sum(if(billsec > 0, sign, 0)),"
    " sum(billsec * sign), sum(billable_seconds * sign), sum(price * sign), sum(cost * sign),"
    " sum(margin * sign) FROM rated_cdrs WHERE reseller = 'r1'"
    " AND start_time >= toDateTime(%(a)s, 'UTC') AND start_time < toDateTime(%(b)s + 1, 'UTC')"
    " GROUP BY d ORDER BY d"
)


def _own(settings: Settings) -> Settings:
    return settings.replace(
        clickhouse_database=f"bench_analytics_{uuid.uuid4().hex[:8]}",
        redis_url=_redis_db(settings.redis_url, settings.redis_db + 11),
    )


def _redis_db(url: str, db: int) -> str:
    base = url.rsplit("/", 1)[0] if url.count("/") >= 3 else url
    return f"{base}/{db}"


def run(ctx: BenchContext) -> BenchReport:
    settings = _own(ctx.settings)
    clickhouse.migrate(settings)
    redis = redis_client.connect(settings)
    redis.flushdb()
    try:
        return _measure(settings, redis, ctx.quick)
    finally:
        redis.flushdb()
        admin = clickhouse.client(settings, database="default", numpy=False)
        admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        admin.disconnect()


def _measure(settings: Settings, redis: object, quick: bool) -> BenchReport:
    n = 20_000 if quick else 500_000
    rerate_n = 500 if quick else 20_000
    naive_n = 15 if quick else 200
    ex = DriverExecutor.from_settings(settings)
    report = BenchReport(TITLE, params={"rows": n, "days": DAYS, "rerated": rerate_n})

    started = time.perf_counter()
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    ex.command(_GENERATE.format(n=n, days=DAYS, start=start))  # no params: the SQL has '%'
    load_s = time.perf_counter() - started
    report.measurements.append(
        Measurement("insert through both views", n / load_s, "rows/s")
    )  # fmt: skip

    last = FIRST + timedelta(days=DAYS - 1)
    params = {"a": FIRST, "b": last}
    summary_s = median_time(lambda: ex.rows(_DAILY_SUMMARY, params))
    base_s = median_time(lambda: ex.rows(_DAILY_BASE, params))
    assert [tuple(map(int, r[1:])) for r in ex.rows(_DAILY_SUMMARY, params)] == [
        tuple(map(int, r[1:])) for r in ex.rows(_DAILY_BASE, params)
    ]
    report.measurements.append(
        Measurement("daily report from daily_summary", summary_s * 1000, "ms",
                    "same figures from rated_cdrs", base_s * 1000, higher_is_better=False)
    )  # fmt: skip

    base_cond = (
        "start_time >= toDateTime(%(a)s, 'UTC') AND start_time < toDateTime(%(b)s + 1, 'UTC')"
    )
    check_s = median_time(lambda: check(ex, FIRST, last), repeats=3)
    floor_s = median_time(
        lambda: ex.rows(
            "SELECT toDate(start_time, 'UTC') AS d, reseller, customer, destination, currency,"
            f" sum(sign), sum(price * sign) FROM rated_cdrs WHERE {base_cond}"
            " GROUP BY d, reseller, customer, destination, currency FORMAT Null",
            params,
        ),
        repeats=3,
    )
    assert check(ex, FIRST, last) == []
    report.measurements.append(
        Measurement("db check, 30 days, both summaries", check_s, "s",
                    "base-table aggregate alone", floor_s, higher_is_better=False)
    )  # fmt: skip

    rerate_rate, naive_rate = _rerate(settings, redis, ex, rerate_n, naive_n)
    report.measurements.append(
        Measurement("rerate (kernel, batched corrections and inserts)", rerate_rate, "CDRs/s",
                    "per CDR: reference price, one correction, one insert", naive_rate)
    )  # fmt: skip
    report.notes.append(
        f"{n:,} generated CDRs over {DAYS} days, 3 resellers, 50 customers, 200 destinations; "
        f"the re-rate changes every price of {rerate_n:,} CDRs of one day (the naive baseline "
        f"runs on {naive_n} of them). The check compares every group of both summaries with "
        "rated_cdrs inside ClickHouse (one UNION ALL query per summary)."
    )
    return report


def _rerate(
    settings: Settings, redis: object, ex: DriverExecutor, n: int, naive_n: int
) -> tuple[float, float]:
    """Re-rate n fresh CDRs of one day with a doubled tariff; the naive way on naive_n more."""
    store = TariffStore(redis, settings, clickhouse=False)  # type: ignore[arg-type]
    rows = (TariffRow("31", "Netherlands", 20_000), TariffRow("316", "NL Mobile", 60_000))
    table = TariffTable("rr_retail", decimals=4, rounding=Rounding.UP, steps=Steps(1, 1), rows=rows)
    v1 = store.save(table, owner="rr")  # the reseller's own sell table
    store.save(replace(table, rows=tuple(replace(r, rate=r.rate * 2) for r in rows)),
               effective_from=datetime(2026, 1, 1, tzinfo=UTC), owner="rr")  # fmt: skip
    store.save(replace(table, name="rr_wholesale"))
    accounts = Accounts(settings, redis)  # type: ignore[arg-type]
    accounts.create_reseller("rr", "Bench", credit="1000000", buy_tariff="rr_wholesale")
    accounts.create_customer("rrc", "Bench", reseller_id="rr", tariff="rr_retail", balance="1000")
    day = date(2026, 11, 15)
    when = datetime(2026, 11, 15, 8)
    fresh: list[Row] = []
    for i in range(n + naive_n):
        number = f"316{10_000_000 + i}"
        rated = reference.rate([v1], number, 30 + i % 600, when)
        assert rated is not None
        fresh.append(
            {
                **select_template(),
                "offset": 10_000_000 + i, "cdr_id": f"rr-{i}", "number": number,
                "start_time": when + timedelta(seconds=i % 3600), "billsec": 30 + i % 600,
                "billable_seconds": rated.billable_seconds, "price": rated.price_micro,
                "cost": rated.price_micro, "reseller": "rr", "customer": "rrc",
                "account": "rrc", "sell_tariff": rated.table,
            }
        )  # fmt: skip
    for start in range(0, len(fresh), CHUNK):
        insert_rows(ex, fresh[start : start + CHUNK])
    naive, batched = fresh[:naive_n], fresh[naive_n:]

    # naive: everything per CDR
    debiter = Debiter(redis, settings=settings)  # type: ignore[arg-type]
    versions = store.versions("rr_retail")
    started = time.perf_counter()
    for old in naive:
        rated = reference.rate(
            versions, old["number"], old["billsec"], old["start_time"].replace(tzinfo=UTC)
        )
        assert rated is not None
        key = correction_key(old["switch"], old["cdr_id"], 1)
        debiter.apply_corrections(
            [Correction(key, "rr", "rrc", "", rated.price_micro - old["price"], 0)]
        )
        price = rated.price_micro
        new = {**old, "price": price, "margin": price - old["cost"], "revision": 1}
        insert_rows(ex, [{**old, "sign": -1}, new])
    naive_rate = naive_n / (time.perf_counter() - started)

    rerater = Rerater(settings, redis, ex)  # type: ignore[arg-type]
    # warm-up: numba kernels compile (or load from their cache) on first use in a process
    rerater.run(RerateRequest(day, day, customer="rrc", tariff="rr_retail", dry_run=True))
    started = time.perf_counter()
    summary = rerater.run(RerateRequest(day, day, customer="rrc", tariff="rr_retail"))
    batched_rate = len(batched) / (time.perf_counter() - started)
    assert summary.changed == len(batched), summary
    return batched_rate, naive_rate


def select_template() -> Row:
    return blank_row(topic_id="bench", switch="sw1", currency="EUR", outcome="rated",
                     destination="NL Mobile", prefix="316",
                     buy_tariff="rr_wholesale@1")  # fmt: skip
