-- A copy of every saved tariff version, for analysts' joins with rated_cdrs (sell_tariff and
-- buy_tariff there are 'name@version'). Redis is the live store the raters read; these tables
-- are written by TariffStore.save and never read by the pipeline.
-- Money is Int64 micro-units (1 EUR = 1,000,000); rates are per minute. Works on 18.16 and chDB.
-- A version's rows are inserted before its tariff_versions row: join through tariff_versions
-- so rows of a save that failed half-way are never seen.
CREATE TABLE IF NOT EXISTS tariff_versions
(
    name String,
    version UInt32,
    currency String,
    decimals UInt8,
    rounding String,
    steps String,
    -- NULL: in force from the beginning of time (the first version)
    effective_from Nullable(DateTime),
    created_at DateTime,
    source String,
    row_count UInt32
)
ENGINE = MergeTree
ORDER BY (name, version);

CREATE TABLE IF NOT EXISTS tariff_rows
(
    name String,
    version UInt32,
    prefix String,
    destination String,
    rate Int64,
    connect_fee Int64,
    -- the first step's per-minute rate; equals rate when the deck has no separate one
    first_rate Int64,
    -- the row's billing steps, or the table's when the row has none
    steps_minimum UInt32,
    steps_increment UInt32,
    -- NULL: from the version's own effective time ("ASAP")
    effective_from Nullable(DateTime),
    -- NULL: open; else the code is closed from then on
    effective_to Nullable(DateTime),
    line UInt32
)
ENGINE = MergeTree
ORDER BY (name, version, prefix);
