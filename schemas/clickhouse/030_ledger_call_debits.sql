-- Call debits in the ledger beside top-ups, credit and adjustments (one view per level).
-- A rated CDR debits the customer and its card (if any) by the sell price and the reseller by
-- the buy cost; amounts are signed like the ledger: -x * sign, so a re-rate's cancelling row
-- (sign -1) gives the money back and its new row takes the new amount.
-- Only `rated` rows move money (unanswered, unrated: zero); zero amounts make no entry.
-- entry_id is the message identity plus revision and sign: rated_cdrs is written idempotently
-- by (topic_id, partition, offset), so each entry appears once.
-- Works on ClickHouse 18.16 (TO-table views) and current releases.
CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_calls_customer TO ledger AS
SELECT
    concat('call:', topic_id, ':', toString(partition), ':', toString(offset), ':',
           toString(revision), ':', toString(sign)) AS entry_id,
    rated_at AS ts,
    'customer' AS level,
    reseller,
    customer,
    card,
    'call' AS kind,
    -price * sign AS amount,
    currency,
    concat('call to ', destination) AS reason,
    concat(switch, '/', cdr_id) AS ref,
    'rater' AS actor
FROM rated_cdrs
WHERE outcome = 'rated' AND price != 0;

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_calls_card TO ledger AS
SELECT
    concat('call:', topic_id, ':', toString(partition), ':', toString(offset), ':',
           toString(revision), ':', toString(sign)) AS entry_id,
    rated_at AS ts,
    'card' AS level,
    reseller,
    customer,
    card,
    'call' AS kind,
    -price * sign AS amount,
    currency,
    concat('call to ', destination) AS reason,
    concat(switch, '/', cdr_id) AS ref,
    'rater' AS actor
FROM rated_cdrs
WHERE outcome = 'rated' AND price != 0 AND card != '';

CREATE MATERIALIZED VIEW IF NOT EXISTS ledger_calls_reseller TO ledger AS
SELECT
    concat('call:', topic_id, ':', toString(partition), ':', toString(offset), ':',
           toString(revision), ':', toString(sign)) AS entry_id,
    rated_at AS ts,
    'reseller' AS level,
    reseller,
    customer,
    card,
    'call' AS kind,
    -cost * sign AS amount,
    currency,
    concat('call to ', destination) AS reason,
    concat(switch, '/', cdr_id) AS ref,
    'rater' AS actor
FROM rated_cdrs
WHERE outcome = 'rated' AND cost != 0;
