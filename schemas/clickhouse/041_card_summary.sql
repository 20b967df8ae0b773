-- Daily (UTC) usage per calling card: calls made with the card and what they cost its customer
-- (sell price, `revenue`). Only rows with a card. Same rules as daily_summary: sums times `sign`,
-- SummingMergeTree target fed by a materialized view, rebuilt and checked by `rater db`.
CREATE TABLE IF NOT EXISTS card_summary
(
    day Date,
    reseller String,
    customer String,
    card String,
    currency String,
    calls Int64,
    answered Int64,
    talk_seconds Int64,
    billed_seconds Int64,
    revenue Int64
)
ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(day)
ORDER BY (day, reseller, customer, card, currency);

CREATE MATERIALIZED VIEW IF NOT EXISTS card_summary_mv TO card_summary AS
SELECT
    toDate(start_time, 'UTC') AS day,
    reseller,
    customer,
    card,
    currency,
    toInt64(sum(sign)) AS calls,
    toInt64(sum(if(billsec > 0, sign, 0))) AS answered,
    toInt64(sum(billsec * sign)) AS talk_seconds,
    toInt64(sum(billable_seconds * sign)) AS billed_seconds,
    toInt64(sum(price * sign)) AS revenue
FROM rated_cdrs
WHERE card != ''
GROUP BY day, reseller, customer, card, currency;
