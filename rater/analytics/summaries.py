"""The summary tables, described once: what each key and value is computed from in rated_cdrs.

The migrations (schemas/clickhouse/040_*.sql, 041_*.sql) create the tables and materialized
views; `check` and `rebuild` build their SQL from these descriptions, and the tests prove that
what a view wrote equals what these expressions compute from the base table (so the two cannot
drift apart unnoticed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from rater.clickhouse.executor import Params


@dataclass(frozen=True)
class Column:
    """One summary column and the expression over rated_cdrs that produces it."""

    name: str
    expression: str
    doc: str


@dataclass(frozen=True)
class Summary:
    """A SummingMergeTree table fed by a materialized view on rated_cdrs."""

    table: str
    view: str
    keys: tuple[Column, ...]
    values: tuple[Column, ...]
    #: extra condition on rated_cdrs rows (the view's WHERE), or ""
    where: str
    doc: str

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.keys)

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.values)

    def base_aggregate_sql(self, day_condition: str) -> str:
        """SELECT keys, v_<value>... FROM rated_cdrs: what the summary must hold for those days.

        Values are aliased v_<name>: 18.16 substitutes an alias equal to a column name inside
        its own expression, so no alias here may be a rated_cdrs column.
        """
        keys = ", ".join(
            c.expression if c.expression == c.name else f"{c.expression} AS {c.name}"
            for c in self.keys
        )
        values = ", ".join(f"{c.expression} AS v_{c.name}" for c in self.values)
        where = f"({day_condition})" + (f" AND ({self.where})" if self.where else "")
        return (
            f"SELECT {keys}, {values} FROM rated_cdrs WHERE {where} "
            f"GROUP BY {', '.join(self.key_names)}"
        )

    def summary_aggregate_sql(self, day_condition: str, *, negate: bool = False) -> str:
        """SELECT keys, v_<value>... summed from the summary table (merged or not)."""
        minus = "-" if negate else ""
        values = ", ".join(f"{minus}toInt64(sum({n})) AS v_{n}" for n in self.value_names)
        return (
            f"SELECT {', '.join(self.key_names)}, {values} FROM {self.table} "
            f"WHERE {day_condition} GROUP BY {', '.join(self.key_names)}"
        )


def _sum(expression: str) -> str:
    return f"toInt64(sum({expression}))"


DAY = Column("day", "toDate(start_time, 'UTC')", "UTC calendar day of the call's start time")
RESELLER = Column("reseller", "reseller", "reseller id")
CUSTOMER = Column("customer", "customer", "customer (SIP account) id")
CURRENCY = Column("currency", "currency", "ISO 4217 code of the money columns")
CALLS = Column("calls", _sum("sign"), "CDRs (answered or not, rated or not)")
ANSWERED = Column("answered", _sum("if(billsec > 0, sign, 0)"), "calls with billsec > 0")
TALK = Column("talk_seconds", _sum("billsec * sign"), "answered seconds, billsec (for ACD)")
BILLED = Column(
    "billed_seconds", _sum("billable_seconds * sign"), "seconds billed after steps (minutes x 60)"
)
REVENUE = Column("revenue", _sum("price * sign"), "sell price charged, micro-units")

DAILY = Summary(
    table="daily_summary",
    view="daily_summary_mv",
    keys=(
        DAY,
        RESELLER,
        CUSTOMER,
        Column("destination", "destination", "destination name of the matched prefix"),
        CURRENCY,
    ),
    values=(
        CALLS,
        ANSWERED,
        Column("unrated", _sum("if(outcome = 'unrated', sign, 0)"), "CDRs stored unrated"),
        Column("blocked_calls", _sum("blocked * sign"), "calls debited on a blocked account"),
        TALK,
        BILLED,
        REVENUE,
        Column("buy_cost", _sum("cost * sign"), "reseller's buy cost, micro-units"),
        Column("margin_amount", _sum("margin * sign"), "revenue - buy_cost, micro-units"),
    ),
    where="",
    doc="per UTC day, reseller, customer, destination and currency",
)

CARDS = Summary(
    table="card_summary",
    view="card_summary_mv",
    keys=(DAY, RESELLER, CUSTOMER, Column("card", "card", "calling-card number"), CURRENCY),
    values=(CALLS, ANSWERED, TALK, BILLED, REVENUE),
    where="card != ''",
    doc="per UTC day and calling card (rows with a card only)",
)

SUMMARIES: tuple[Summary, ...] = (DAILY, CARDS)


def by_table(name: str) -> Summary:
    for summary in SUMMARIES:
        if summary.table == name:
            return summary
    raise KeyError(name)


# ---------------------------------------------------------------------------- day conditions
def base_days(first: date, last: date) -> tuple[str, Params]:
    """Condition on rated_cdrs.start_time for the UTC days first..last (inclusive).

    A range on the raw column (not toDate(...)) lets ClickHouse prune partitions.
    """
    start = datetime.combine(first, time())
    end = datetime.combine(last + timedelta(days=1), time())
    return "start_time >= %(t_from)s AND start_time < %(t_to)s", {"t_from": start, "t_to": end}


def summary_days(first: date, last: date) -> tuple[str, Params]:
    """Condition on a summary's `day` for first..last (inclusive)."""
    return "day >= %(d_from)s AND day <= %(d_to)s", {"d_from": first, "d_to": last}
