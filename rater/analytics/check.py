"""`rater db check`: compare every summary table with the base table, group by group, and list
every CDR whose rows do not net to one live copy.

The comparison runs inside ClickHouse (one UNION ALL of the base aggregate and the summary's
sums, grouped by the summary key), so only groups that differ travel back. A group missing on
one side shows as zeros on that side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from rater.analytics.summaries import SUMMARIES, Summary, base_days, summary_days
from rater.clickhouse.executor import Executor, Params


@dataclass(frozen=True)
class Difference:
    """One summary group whose sums differ from the base table."""

    table: str
    key: dict[str, Any]
    #: column -> (from rated_cdrs, from the summary), only for columns that differ
    columns: dict[str, tuple[int, int]]

    def __str__(self) -> str:
        key = " ".join(f"{k}={v}" for k, v in self.key.items())
        cols = ", ".join(f"{c}: base {b} summary {s}" for c, (b, s) in self.columns.items())
        return f"{self.table} [{key}] {cols}"


def compare_sql(summary: Summary, first: date, last: date) -> tuple[str, Params]:
    """The query listing differing groups of one summary for days first..last."""
    base_cond, base_params = base_days(first, last)
    sum_cond, sum_params = summary_days(first, last)
    keys = ", ".join(summary.key_names)
    base_cols = ", ".join(
        f"toInt64(sum(if(src = 1, v_{v}, 0))) AS b_{v}" for v in summary.value_names
    )
    sum_cols = ", ".join(
        f"toInt64(sum(if(src = 2, v_{v}, 0))) AS s_{v}" for v in summary.value_names
    )
    v_names = ", ".join(f"v_{v}" for v in summary.value_names)
    differs = " OR ".join(f"b_{v} != s_{v}" for v in summary.value_names)
    sql = (
        f"SELECT {keys}, {base_cols}, {sum_cols} FROM ("
        f" SELECT toUInt8(1) AS src, {keys}, {v_names}"
        f" FROM ({summary.base_aggregate_sql(base_cond)})"
        " UNION ALL"
        f" SELECT toUInt8(2) AS src, {keys}, {v_names}"
        f" FROM ({summary.summary_aggregate_sql(sum_cond)})"
        f") GROUP BY {keys} HAVING {differs} ORDER BY {keys}"
    )
    return sql, {**base_params, **sum_params}


def check_summary(ch: Executor, summary: Summary, first: date, last: date) -> list[Difference]:
    sql, params = compare_sql(summary, first, last)
    n_keys = len(summary.keys)
    n_values = len(summary.values)
    found: list[Difference] = []
    for row in ch.rows(sql, params):
        key = dict(zip(summary.key_names, row[:n_keys], strict=True))
        base = row[n_keys : n_keys + n_values]
        summed = row[n_keys + n_values :]
        columns = {
            name: (int(b), int(s))
            for name, b, s in zip(summary.value_names, base, summed, strict=True)
            if b != s
        }
        found.append(Difference(summary.table, key, columns))
    return found


def day_span(ch: Executor) -> tuple[date, date] | None:
    """First and last UTC day holding any CDR (None for an empty table)."""
    rows = ch.rows(
        "SELECT toDate(min(start_time), 'UTC'), toDate(max(start_time), 'UTC'), count() "
        "FROM rated_cdrs"
    )
    if not rows or int(rows[0][2]) == 0:
        return None
    return rows[0][0], rows[0][1]


def summary_span(ch: Executor) -> tuple[date, date] | None:
    """First and last day present in any summary table."""
    spans = []
    for summary in SUMMARIES:
        rows = ch.rows(f"SELECT min(day), max(day), count() FROM {summary.table}")
        if rows and int(rows[0][2]) > 0:
            spans.append((rows[0][0], rows[0][1]))
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans)


def check(ch: Executor, first: date | None = None, last: date | None = None) -> list[Difference]:
    """Every difference between every summary and rated_cdrs for first..last (default: all days
    in either the base table or the summaries)."""
    if first is None or last is None:
        spans = [s for s in (day_span(ch), summary_span(ch)) if s is not None]
        if not spans:
            return []
        first = first or min(s[0] for s in spans)
        last = last or max(s[1] for s in spans)
    found: list[Difference] = []
    for summary in SUMMARIES:
        found.extend(check_summary(ch, summary, first, last))
    return found


@dataclass(frozen=True)
class Unbalanced:
    """A CDR whose rows' signs do not sum to 1: stored twice (charged twice), or cancelled
    without a new revision."""

    switch: str
    cdr_id: str
    net: int
    copies: int
    """distinct message identities (topic_id, partition, offset) holding the CDR."""

    def __str__(self) -> str:
        return (
            f"rated_cdrs [switch={self.switch} cdr_id={self.cdr_id}] net sign {self.net} "
            f"over {self.copies} stored cop{'y' if self.copies == 1 else 'ies'}"
        )


def unbalanced(ch: Executor, limit: int = 1000) -> list[Unbalanced]:
    """CDRs whose signs sum to anything but 1 (at most `limit`, the first by switch and id).

    Each stored copy is its own sort key (migration 050), so merges never hide a second copy.
    """
    rows = ch.rows(
        "SELECT switch, cdr_id, toInt64(sum(sign)) AS net_sign,"
        " uniqExact(topic_id, partition, offset) AS copies"
        " FROM rated_cdrs GROUP BY switch, cdr_id HAVING net_sign != 1"
        " ORDER BY switch, cdr_id LIMIT %(limit)s",
        {"limit": limit},
    )
    return [Unbalanced(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]
