-- Daily (UTC) totals per reseller, customer, destination and currency, fed by a materialized
-- view from every row inserted into rated_cdrs. Every value is a sum multiplied by `sign`, so a
-- re-rate's cancelling row (sign -1) removes the old row's contribution and the new row adds its
-- own. SummingMergeTree adds rows with the same key on merge; readers still sum (merges are
-- eventual) and divide at query time: ASR = answered / calls, ACD = talk_seconds / answered,
-- billed minutes = billed_seconds / 60, margin_amount = revenue - buy_cost.
-- Value columns are named apart from rated_cdrs' columns on purpose: 18.16 substitutes an alias
-- equal to a column name inside its own expression (sum(billsec) AS billsec fails), and it
-- cannot run a view whose SELECT has a subquery.
-- On ClickHouse 18.16 a failing view leaves the base rows inserted: `rater db check` finds the
-- difference and `rater db rebuild-summaries --day D` repairs a day from rated_cdrs.
-- Portable to 18.16 and current releases: no LowCardinality, DateTime64, Map, TTL or CODEC.
CREATE TABLE IF NOT EXISTS daily_summary
(
    day Date,
    reseller String,
    customer String,
    destination String,
    currency String,
    calls Int64,
    answered Int64,
    unrated Int64,
    blocked_calls Int64,
    talk_seconds Int64,
    billed_seconds Int64,
    revenue Int64,
    buy_cost Int64,
    margin_amount Int64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, reseller, customer, destination, currency);

CREATE MATERIALIZED VIEW IF NOT EXISTS daily_summary_mv TO daily_summary AS
SELECT
    toDate(start_time, 'UTC') AS day,
    reseller,
    customer,
    destination,
    currency,
    toInt64(sum(sign)) AS calls,
    toInt64(sum(if(billsec > 0, sign, 0))) AS answered,
    toInt64(sum(if(outcome = 'unrated', sign, 0))) AS unrated,
    toInt64(sum(blocked * sign)) AS blocked_calls,
    toInt64(sum(billsec * sign)) AS talk_seconds,
    toInt64(sum(billable_seconds * sign)) AS billed_seconds,
    toInt64(sum(price * sign)) AS revenue,
    toInt64(sum(cost * sign)) AS buy_cost,
    toInt64(sum(margin * sign)) AS margin_amount
FROM rated_cdrs
GROUP BY day, reseller, customer, destination, currency;
