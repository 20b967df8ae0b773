-- rated_cdrs keyed by message identity: two stored copies of one CDR stay two rows.
--
-- Until now the sort key was (reseller, customer, start_time, switch, cdr_id, revision). A CDR
-- stored twice (a re-send the stream should have caught) had two +1 rows under one key, and
-- CollapsingMergeTree keeps only the last +1 row of a key when parts merge: the double charge
-- vanished from every sum while Redis kept it. With (topic_id, partition, offset) in the key,
-- two copies are two keys and never collapse; a re-rate's cancelling row (sign -1) still meets
-- the row it cancels, because re-rating writes both with the CDR's original message identity
-- and revision. `rater db check` lists every (switch, cdr_id) whose signs do not sum to 1.
--
-- ClickHouse cannot change a sort key in place, so the table is rebuilt:
--   1. the materialized views reading rated_cdrs are dropped, so the copy below feeds none of
--      them (the ledger and the summaries already hold every old row once);
--   2. the old table is renamed (the migration runner skips a RENAME whose target exists, so
--      an interrupted run can be started again);
--   3. the new table is created and the old rows copied, each row once: rows whose identity
--      (topic_id, partition, offset, revision, sign) is already there are not copied again;
--   4. the views are created again, exactly as 030, 040 and 041 made them;
--   5. the old table is dropped.
-- Stop the workers before migrating: a row inserted between steps 1 and 4 would miss the views.
-- Works on ClickHouse 18.16 and current releases.
DROP TABLE IF EXISTS ledger_calls;
DROP TABLE IF EXISTS daily_summary_mv;
DROP TABLE IF EXISTS card_summary_mv;

RENAME TABLE rated_cdrs TO rated_cdrs_until_050;

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
ORDER BY (reseller, customer, start_time, switch, cdr_id, topic_id, partition, offset, revision);

INSERT INTO rated_cdrs
SELECT * FROM rated_cdrs_until_050
WHERE (topic_id, partition, offset, revision, sign) NOT IN
    (SELECT topic_id, partition, offset, revision, sign FROM rated_cdrs);

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_calls TO ledger AS
SELECT
    concat('call:', topic_id, ':', toString(partition), ':', toString(offset), ':',
           toString(revision), ':', toString(sign)) AS entry_id,
    rated_at AS ts,
    entry.1 AS level,
    reseller,
    customer,
    card,
    'call' AS kind,
    entry.2 AS amount,
    currency,
    concat('call to ', destination) AS reason,
    concat(switch, '/', cdr_id) AS ref,
    'rater' AS actor
FROM rated_cdrs
ARRAY JOIN arrayFilter(e -> e.2 != 0, [('customer', -price * sign),
    ('card', if(card != '', -price * sign, toInt64(0))), ('reseller', -cost * sign)]) AS entry
WHERE outcome = 'rated';

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

DROP TABLE IF EXISTS rated_cdrs_until_050;
