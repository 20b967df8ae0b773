"""Prometheus metrics of the workers (served on settings.metrics_port + worker index).

Names follow Prometheus conventions: counters end in _total, durations are seconds, money is
micro-units (an integer counter, never a float amount of euros).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from rater.logs import get_logger

log = get_logger(__name__)

CONSUMED = Counter("rater_records_consumed_total", "Kafka records read from the cdrs topic.")
OUTCOMES = Counter(
    "rater_cdrs_total",
    "CDRs by fate (docs/DESIGN.md section 4): rated, unanswered, unrated, duplicate, invalid.",
    ["outcome", "reason"],
)
DEBITED = Counter(
    "rater_debited_micro_total",
    "Amounts debited, micro-units: customer and card at the sell price, reseller at the cost.",
    ["level", "currency"],
)
DEAD_LETTERED = Counter("rater_dead_lettered_total", "Records published to the dead-letter topic.")
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


def serve(port: int) -> bool:
    """Start the /metrics HTTP endpoint; False (logged) when the port is taken."""
    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as error:
        log.warning("metrics port unavailable", port=port, error=str(error))
        return False
    log.info("metrics", url=f"http://127.0.0.1:{port}/metrics")
    return True
