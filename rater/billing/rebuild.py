"""`rater db rebuild-summaries --day D`: make a day's summaries equal the base table again.

Instead of deleting the day and re-aggregating (ALTER ... DELETE is an asynchronous mutation on
18.16, and DROP PARTITION would take a whole month), rebuild inserts the *difference*: for each
summary group, (aggregate of rated_cdrs) - (current summary sums). A SummingMergeTree adds it to
what is there, so afterwards every group sums to the base table's value. This is one INSERT ...
SELECT per summary, works the same on 18.16 and current releases, and running it again finds
nothing to insert.

Run it for a day that is no longer receiving CDRs (or stop the workers): an insert racing with
the rebuild can be counted twice, which `rater db check` would then report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from rater.analytics.check import check_summary
from rater.analytics.summaries import SUMMARIES, Summary, base_days, summary_days
from rater.clickhouse.executor import Executor, Params
from rater.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class Rebuilt:
    """What a rebuild of one summary for one day changed."""

    table: str
    day: date
    groups_fixed: int


def delta_sql(summary: Summary, day: date) -> tuple[str, Params]:
    """INSERT ... SELECT of the corrections that bring one summary's day to the base totals."""
    base_cond, base_params = base_days(day, day)
    sum_cond, sum_params = summary_days(day, day)
    keys = ", ".join(summary.key_names)
    values = ", ".join(summary.value_names)
    v_names = ", ".join(f"v_{v}" for v in summary.value_names)
    sums = ", ".join(f"toInt64(sum(v_{v})) AS d_{v}" for v in summary.value_names)
    nonzero = " OR ".join(f"d_{v} != 0" for v in summary.value_names)
    sql = (
        f"INSERT INTO {summary.table} ({keys}, {values}) "
        f"SELECT {keys}, {sums} FROM ("
        f" SELECT {keys}, {v_names} FROM ({summary.base_aggregate_sql(base_cond)})"
        " UNION ALL"
        f" SELECT {keys}, {v_names} FROM ({summary.summary_aggregate_sql(sum_cond, negate=True)})"
        f") GROUP BY {keys} HAVING {nonzero}"
    )
    return sql, {**base_params, **sum_params}


def rebuild_day(ch: Executor, day: date) -> list[Rebuilt]:
    """Rebuild every summary for one UTC day from rated_cdrs; returns what was fixed."""
    done: list[Rebuilt] = []
    for summary in SUMMARIES:
        before = check_summary(ch, summary, day, day)
        if before:
            sql, params = delta_sql(summary, day)
            ch.command(sql, params)
        done.append(Rebuilt(summary.table, day, len(before)))
        log.debug("summary rebuilt", table=summary.table, day=day.isoformat(), groups=len(before))
    return done
