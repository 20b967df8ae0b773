-- One row per CDR changed by `rater rerate`: which run, who, when, why, and the old and new
-- price, cost, tariff versions and revisions. Never updated or deleted (plain MergeTree).
-- correction_key is the key under which the balance difference was applied exactly once
-- ("rerate:<switch>:<cdr_id>:<new_revision>").
CREATE TABLE IF NOT EXISTS rerate_audit
(
    run_id String,
    run_at DateTime,
    actor String,
    reason String,
    mode String,
    switch String,
    cdr_id String,
    start_time DateTime,
    reseller String,
    customer String,
    card String,
    currency String,
    old_revision UInt32,
    new_revision UInt32,
    old_outcome String,
    new_outcome String,
    old_destination String,
    new_destination String,
    old_sell_tariff String,
    new_sell_tariff String,
    old_buy_tariff String,
    new_buy_tariff String,
    old_price Int64,
    new_price Int64,
    old_cost Int64,
    new_cost Int64,
    correction_key String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (run_at, run_id, switch, cdr_id, new_revision);
