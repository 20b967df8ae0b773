"""Prometheus metrics of the workers (served on settings.metrics_port + worker index).

Names follow Prometheus conventions: counters end in _total, durations are seconds, money is
micro-units (an integer counter, never a float amount of euros).

Label values come only from closed sets, so the number of series cannot grow with the data:
outcomes (rater/pipeline/fates.py), reason kinds (rater/reasons.py), switch names the switch
registry knows, ISO 4217-shaped currency codes, the pipeline's stage names. Anything else is
counted under "other". Updates go through `inc` / `set_gauge` / `observe`, which never raise:
a metric must not stop a batch.
"""

from __future__ import annotations

import math
import re

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from rater.logs import get_logger
from rater.reasons import Kind

log = get_logger(__name__)

#: the label of every value outside its closed set
OTHER = "other"

CONSUMED = Counter("rater_records_consumed_total", "Kafka records read from the cdrs topic.")
OUTCOMES = Counter(
    "rater_cdrs_total",
    "CDRs by fate (docs/DESIGN.md section 4): rated, unanswered, unrated, duplicate, invalid, "
    "other leg; "
    "reason: the reason's kind (rater/reasons.py).",
    ["outcome", "reason"],
)
SWITCH_CDRS = Counter(
    "rater_switch_cdrs_total",
    "CDRs by switch (names the switch registry knows; others: 'other') and fate.",
    ["switch", "outcome"],
)
DEBITED = Counter(
    "rater_debited_micro_total",
    "Amounts debited, micro-units: customer and card at the sell price, reseller at the cost.",
    ["level", "currency"],
)
DEAD_LETTERED = Counter("rater_dead_lettered_total", "Records published to the dead-letter topic.")
LATE = Counter(
    "rater_late_cdrs_total",
    "CDRs that ended before now minus the de-duplication window (docs/DESIGN.md section 4): "
    "stored unrated 'late', or counted as duplicates when ClickHouse holds them.",
)
ISOLATED = Counter(
    "rater_isolated_records_total",
    "Records that made a batch-level stage fail on their own (found by halving the batch).",
    ["stage"],
)
LAG = Gauge(
    "rater_partition_lag", "High watermark minus position, per assigned partition.", ["partition"]
)
BATCH_SECONDS = Histogram(
    "rater_batch_seconds",
    "Wall time of one batch, decode to commit.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
BATCH_SIZE = Histogram(
    "rater_batch_records", "Records per batch.", buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000)
)
LATENCY = Histogram(
    "rater_publish_to_stored_seconds",
    "From the record's producer timestamp to its commit (CDR stored, debited, offset committed).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
STAGE_SECONDS = Counter(
    "rater_stage_seconds_total", "Time spent per pipeline stage (shares of a batch).", ["stage"]
)
RETRIES = Counter("rater_retries_total", "Retries after a retriable service error.", ["service"])
REBALANCES = Counter("rater_rebalances_total", "Partition assignments and revocations.", ["event"])

# ------------------------------------------------------------------------ closed label sets
_OUTCOMES = frozenset({"rated", "unanswered", "unrated", "duplicate", "invalid", "other leg"})
_KINDS = frozenset(kind.value for kind in Kind)
#: stages a batch is timed in (rater/pipeline/flow.py and the worker)
STAGES = frozenset(
    {"fetch", "decode", "late", "lookup", "rate", "debit", "store", "dead_letter", "commit"}
)
_CURRENCY = re.compile(r"[A-Z]{3}")


def outcome_label(value: str) -> str:
    return value if value in _OUTCOMES else OTHER


def kind_label(value: str) -> str:
    """A reason kind, or "" for none (rated and unanswered CDRs)."""
    return value if value == "" or value in _KINDS else OTHER


def stage_label(value: str) -> str:
    return value if value in STAGES else OTHER


def currency_label(value: str) -> str:
    return value if _CURRENCY.fullmatch(value) else OTHER


def switch_label(value: str, known: frozenset[str] | set[str]) -> str:
    """A switch name the registry knows, else "other"."""
    return value if value in known else OTHER


# ------------------------------------------------------------------------ safe updates
def inc(counter: Counter, amount: float = 1, *labels: str) -> None:
    """Add `amount` (>= 0) to a counter; never raises (a bad update is logged and dropped)."""
    try:
        if not math.isfinite(amount) or amount < 0:
            log.warning("metric increment refused", metric=_name(counter), amount=amount)
            return
        if amount:
            (counter.labels(*labels) if labels else counter).inc(amount)
    except Exception as error:
        log.warning("metric update failed", metric=_name(counter), error=repr(error)[:200])


def set_gauge(gauge: Gauge, value: float, *labels: str) -> None:
    """Set a gauge; never raises."""
    try:
        (gauge.labels(*labels) if labels else gauge).set(value)
    except Exception as error:
        log.warning("metric update failed", metric=_name(gauge), error=repr(error)[:200])


def observe(histogram: Histogram, value: float) -> None:
    """Observe a value; never raises (non-finite values are dropped)."""
    try:
        if math.isfinite(value):
            histogram.observe(value)
    except Exception as error:
        log.warning("metric update failed", metric=_name(histogram), error=repr(error)[:200])


def _name(metric: object) -> str:
    return str(getattr(metric, "_name", type(metric).__name__))


def serve(port: int) -> bool:
    """Start the /metrics HTTP endpoint; False (logged) when the port is taken."""
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as error:
        log.warning("metrics port unavailable", port=port, error=str(error))
        return False
    log.info("metrics", url=f"http://127.0.0.1:{port}/metrics")
    return True
