"""Ten questions a reseller's analyst asks, as ClickHouse SQL that runs on 18.16 and current
releases. No alias equals a column of the table read (18.16 would substitute it inside the
aggregate: `sum(calls) AS calls` fails there). docs/ANALYSTS.md shows each query verbatim (a
test keeps them identical) and the tests check every one against known answers on both.

Parameters: %(reseller)s (a reseller id), %(from)s and %(to)s (UTC days, inclusive), and
%(limit)s where a query says so. `rater report query NAME` runs one of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    name: str
    question: str
    sql: str
    #: how to read the result (units, signs)
    notes: str = ""


QUERIES: tuple[Query, ...] = (
    Query(
        "revenue-per-day",
        "What did we sell, buy and earn each day?",
        """\
SELECT
    day,
    sum(calls) AS calls_total,
    sum(answered) AS answered_total,
    sum(revenue) / 1e6 AS revenue_total,
    sum(buy_cost) / 1e6 AS cost_total,
    sum(margin_amount) / 1e6 AS margin_total
FROM daily_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s
GROUP BY day
HAVING calls_total != 0
ORDER BY day""",
        "Money in currency units (the summary holds micro-units: divide by 1e6 for display "
        "only; sum the integers when exact totals matter).",
    ),
    Query(
        "top-destinations-by-margin",
        "Which destinations earn us the most this month?",
        """\
SELECT
    destination,
    sum(answered) AS answered_total,
    sum(billed_seconds) / 60 AS billed_minutes,
    sum(margin_amount) AS margin_micro
FROM daily_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s AND destination != ''
GROUP BY destination
ORDER BY margin_micro DESC, destination
LIMIT %(limit)s""",
    ),
    Query(
        "asr-acd-by-destination",
        "How well do calls to each destination connect (ASR), and how long do they last (ACD)?",
        """\
SELECT
    destination,
    sum(calls) AS calls_total,
    round(100 * sum(answered) / sum(calls), 1) AS asr_percent,
    if(sum(answered) = 0, 0, round(sum(talk_seconds) / sum(answered), 1)) AS acd_seconds
FROM daily_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s AND destination != ''
GROUP BY destination
HAVING calls_total > 0
ORDER BY calls_total DESC, destination""",
        "ASR counts every stored attempt; ACD is over answered calls only.",
    ),
    Query(
        "margin-per-customer",
        "Which customers bring the margin, and at what margin rate?",
        """\
SELECT
    customer,
    sum(revenue) AS revenue_micro,
    sum(buy_cost) AS cost_micro,
    sum(margin_amount) AS margin_micro,
    if(sum(revenue) = 0, 0, round(100 * sum(margin_amount) / sum(revenue), 1)) AS margin_percent
FROM daily_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s
GROUP BY customer
HAVING revenue_micro != 0 OR cost_micro != 0
ORDER BY margin_micro DESC, customer""",
    ),
    Query(
        "cards-nearly-empty",
        "Which calling cards are nearly empty (below the ANI threshold of 1.00)?",
        """\
SELECT
    card,
    any(customer) AS owner,
    sum(amount) AS balance_micro
FROM ledger
WHERE reseller = %(reseller)s AND level = 'card'
GROUP BY card
HAVING balance_micro < 1000000
ORDER BY balance_micro, card""",
        "A card's balance is the sum of its ledger entries (issue, top-ups, call debits and "
        "re-rate corrections through the call rows); Redis holds the live value, which the "
        "ledger follows within seconds. `rater report cards` shows the live one.",
    ),
    Query(
        "unrated-by-reason",
        "Which CDRs could not be rated, and why (what should we fix)?",
        """\
SELECT
    reason,
    sum(sign) AS cdrs,
    min(start_time) AS first_seen,
    max(start_time) AS last_seen
FROM rated_cdrs
WHERE outcome = 'unrated' AND (reseller = %(reseller)s OR reseller = '')
    AND start_time >= toDateTime(%(from)s, 'UTC') AND start_time < toDateTime(%(to)s + 1, 'UTC')
GROUP BY reason
HAVING cdrs > 0
ORDER BY cdrs DESC, reason""",
        "Unknown accounts have no reseller yet (''), so they are listed for every reseller. "
        "Once fixed, `rater rerate --unrated` rates them; their rows then cancel out here.",
    ),
    Query(
        "busy-hours",
        "At which hours of the day (UTC) do answered calls happen?",
        """\
SELECT
    toHour(start_time, 'UTC') AS hour,
    sum(sign) AS answered_calls,
    sum(billsec * sign) AS talk_seconds
FROM rated_cdrs
WHERE reseller = %(reseller)s AND billsec > 0
    AND start_time >= toDateTime(%(from)s, 'UTC') AND start_time < toDateTime(%(to)s + 1, 'UTC')
GROUP BY hour
HAVING answered_calls > 0
ORDER BY hour""",
    ),
    Query(
        "card-usage",
        "How much did each calling card spend in the period?",
        """\
SELECT
    card,
    sum(calls) AS calls_total,
    sum(billed_seconds) / 60 AS billed_minutes,
    sum(revenue) AS spent_micro
FROM card_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s
GROUP BY card
HAVING calls_total != 0
ORDER BY spent_micro DESC, card""",
    ),
    Query(
        "destinations-below-cost",
        "Where do we sell below cost (negative margin)?",
        """\
SELECT
    destination,
    sum(answered) AS answered_total,
    sum(revenue) AS revenue_micro,
    sum(buy_cost) AS cost_micro,
    sum(margin_amount) AS margin_micro
FROM daily_summary
WHERE reseller = %(reseller)s AND day BETWEEN %(from)s AND %(to)s
GROUP BY destination
HAVING margin_micro < 0
ORDER BY margin_micro, destination""",
    ),
    Query(
        "rerate-impact",
        "What did each re-rate run change, and by how much?",
        """\
SELECT
    run_id,
    min(run_at) AS started,
    any(actor) AS who,
    any(reason) AS why,
    count() AS cdrs,
    sum(new_price - old_price) AS revenue_change_micro,
    sum(new_cost - old_cost) AS cost_change_micro
FROM rerate_audit
WHERE reseller = %(reseller)s
    AND start_time >= toDateTime(%(from)s, 'UTC') AND start_time < toDateTime(%(to)s + 1, 'UTC')
GROUP BY run_id
ORDER BY started, run_id""",
        "One row per run; each CDR appears once per run that changed it.",
    ),
)


def by_name(name: str) -> Query:
    for query in QUERIES:
        if query.name == name:
            return query
    known = ", ".join(q.name for q in QUERIES)
    raise KeyError(f"no example query {name!r} (known: {known})")
