-- Every change to a balance, with its reason: top-ups, credit, adjustments, batch funding,
-- and (through materialized views on rated_cdrs) call debits and re-rate differences.
-- amount is signed micro-units: positive adds to the balance.
CREATE TABLE IF NOT EXISTS ledger
(
    entry_id String,
    ts DateTime,
    level String,
    reseller String,
    customer String,
    card String,
    kind String,
    amount Int64,
    currency String,
    reason String,
    ref String,
    actor String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (level, reseller, customer, card, ts, entry_id);
