-- Re-sent CDRs whose rating fields (account, card, callee, billsec, start or end time) differ
-- from the first copy's (docs/DESIGN.md section 4): not charged, not in rated_cdrs, kept here
-- for an operator (`rater conflicts list`). One row per conflicting message; its identity
-- (topic_id, partition, offset) makes storing idempotent. The copy that was charged is the
-- rated_cdrs row of the same (switch, cdr_id); first_partition and first_offset name its message.
-- Plain MergeTree: rows are never updated. Works on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS cdr_conflicts
(
    topic_id String,
    partition UInt16,
    offset UInt64,
    switch String,
    cdr_id String,
    account String,
    card String,
    caller String,
    callee String,
    start_time DateTime,
    answer_time DateTime,
    end_time DateTime,
    duration UInt32,
    billsec UInt32,
    disposition String,
    first_partition UInt16,
    first_offset UInt64,
    detected_at DateTime
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(detected_at)
ORDER BY (switch, cdr_id, topic_id, partition, offset);
