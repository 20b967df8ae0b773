-- The highest offset ClickHouse holds per (topic identity, partition, reseller): what a worker
-- compares with Redis' watermarks to find debits Redis lost (rater/billing/recovery.py;
-- docs/DESIGN.md section 3, "Redis data loss"). Asking rated_cdrs directly scans every row of a
-- partition (the table is ordered for analysts); this table holds one aggregate per key.
-- maxState is idempotent: the copy below may overlap rows the view also counts, and re-running
-- this migration changes nothing. Works on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS stored_offsets
(
    topic_id String,
    partition UInt16,
    reseller String,
    high AggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree()
ORDER BY (topic_id, partition, reseller);

CREATE MATERIALIZED VIEW IF NOT EXISTS stored_offsets_mv TO stored_offsets AS
SELECT topic_id, partition, reseller, maxState(offset) AS high
FROM rated_cdrs
GROUP BY topic_id, partition, reseller;

INSERT INTO stored_offsets
SELECT topic_id, partition, reseller, maxState(offset) AS high
FROM rated_cdrs
GROUP BY topic_id, partition, reseller;
