"""rated_cdrs rows as dicts: the column list, a blank row, and reading the live version of CDRs.

A CDR's live row is its +1 row with the highest revision, provided the CDR's signs do not sum
to zero (re-rating writes the cancelling copy and the new revision in one insert, so a CDR is
never left with only the cancelling row).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from rater.analytics.summaries import base_days
from rater.clickhouse.executor import Executor, Params
from rater.pipeline.store import COLUMNS as STORE_COLUMNS

#: columns of schemas/clickhouse/001_rated_cdrs.sql, in order (one list: the pipeline's store)
COLUMNS: tuple[str, ...] = STORE_COLUMNS

_EPOCH = datetime(1970, 1, 1)
_INTS = {
    "partition",
    "offset",
    "duration",
    "billsec",
    "billable_seconds",
    "price",
    "cost",
    "margin",
    "blocked",
    "revision",
    "sign",
}
_TIMES = {"start_time", "answer_time", "end_time", "rated_at"}

Row = dict[str, Any]


def blank_row(**values: Any) -> Row:
    """A complete row: zeros, empty strings and the epoch, overridden by `values`."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not rated_cdrs columns: {sorted(unknown)}")
    row: Row = {}
    for name in COLUMNS:
        if name in _INTS:
            row[name] = 0
        elif name in _TIMES:
            row[name] = _EPOCH
        else:
            row[name] = ""
    row["sign"] = 1
    row.update(values)
    return row


def insert_rows(ch: Executor, rows: Sequence[Row]) -> None:
    """One INSERT of complete rows (in COLUMNS order)."""
    ch.insert("rated_cdrs", COLUMNS, [tuple(r[c] for c in COLUMNS) for r in rows])


def select_live(
    ch: Executor,
    first: date,
    last: date,
    *,
    where: str = "",
    params: Params | None = None,
) -> list[Row]:
    """The live row of every CDR started on UTC days first..last matching `where`.

    `where` is an extra condition on rated_cdrs columns (e.g. "customer = %(customer)s").
    """
    cond, day_params = base_days(first, last)
    return _select_live(ch, cond, {**day_params, **(params or {})}, where)


def select_live_between(
    ch: Executor,
    start: datetime,
    end: datetime,
    *,
    where: str = "",
    params: Params | None = None,
) -> list[Row]:
    """The same for calls started in [start, end) (naive datetimes are UTC)."""
    cond = "start_time >= %(t_from)s AND start_time < %(t_to)s"
    return _select_live(ch, cond, {"t_from": start, "t_to": end, **(params or {})}, where)


def _select_live(ch: Executor, cond: str, params: dict[str, Any], where: str) -> list[Row]:
    extra = f" AND ({where})" if where else ""
    # The inner query finds, per CDR, the highest revision and the net sign; the outer one
    # picks that revision's +1 row. Tuple IN works on 18.16 and current releases.
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM rated_cdrs"
        f" WHERE {cond}{extra} AND sign = 1 AND (switch, cdr_id, revision) IN ("
        f"  SELECT switch, cdr_id, max(revision) FROM rated_cdrs WHERE {cond}{extra}"
        "  GROUP BY switch, cdr_id HAVING sum(sign) > 0)"
        " ORDER BY start_time, switch, cdr_id"
    )
    rows = ch.rows(sql, params)
    # A CDR inserted twice at the same revision (it must not be) would show twice: keep one.
    seen: set[tuple[str, str]] = set()
    live: list[Row] = []
    for values in rows:
        row = dict(zip(COLUMNS, values, strict=True))
        ident = (row["switch"], row["cdr_id"])
        if ident in seen:
            continue
        seen.add(ident)
        live.append(row)
    return live
