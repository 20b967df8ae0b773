-- Every CDR the pipeline stores: rated, unanswered and unrated ones (docs/DESIGN.md section 4).
-- Money is Int64 micro-units (1 EUR = 1,000,000). Works on ClickHouse 18.16 and current releases.
-- CollapsingMergeTree on `sign`: a re-rate writes a cancelling copy of the old row (sign -1) and a
-- new row (sign +1); readers sum `x * sign`, so totals stay right before and after merges.
-- (topic_id, partition, offset) is the message identity that makes storing idempotent.
CREATE TABLE IF NOT EXISTS rated_cdrs
(
    topic_id String,
    partition UInt16,
    offset UInt64,
    switch String,
    cdr_id String,
    account String,
    card String,
    auth_id String,
    caller String,
    callee String,
    access_number String,
    start_time DateTime,
    answer_time DateTime,
    end_time DateTime,
    duration UInt32,
    billsec UInt32,
    disposition String,
    hangup_cause String,
    number String,
    prefix String,
    destination String,
    billable_seconds UInt32,
    price Int64,
    cost Int64,
    margin Int64,
    currency String,
    sell_tariff String,
    buy_tariff String,
    reseller String,
    customer String,
    outcome String,
    reason String,
    blocked UInt8,
    revision UInt32,
    sign Int8,
    rated_at DateTime
)
ENGINE = CollapsingMergeTree(sign)
PARTITION BY toYYYYMM(start_time)
ORDER BY (reseller, customer, start_time, switch, cdr_id, revision);
