"""The reports behind `rater report`: daily, destinations, margin and cards.

All but `cards` read only the summary tables (small, pre-aggregated); `cards` joins card
balances from Redis (the live values) with usage from card_summary. Every sum is a sum of the
summary's signed sums, so re-rated CDRs count once, at their latest price.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rater.accounts.api import Accounts
from rater.accounts.model import Card
from rater.analytics.summaries import summary_days
from rater.analytics.tables import Col, Kind, Report, minutes, ratio
from rater.clickhouse.executor import Executor, Param, literal
from rater.errors import ConfigError


@dataclass(frozen=True)
class Scope:
    """The days and accounts a report covers."""

    first: date
    last: date
    reseller: str | None = None
    customer: str | None = None
    #: days are calendar days in this zone; other than UTC, reports read rated_cdrs itself
    #: (the summaries are per UTC day)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_+\-/]{1,64}", self.timezone):
            raise ConfigError(
                f"time zone {self.timezone!r} is not a zone name like Europe/Amsterdam"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"unknown time zone {self.timezone!r}") from None

    @property
    def utc(self) -> bool:
        return self.timezone in ("UTC", "Etc/UTC")

    def where(self) -> tuple[str, dict[str, Param]]:
        if self.utc:
            cond, params = summary_days(self.first, self.last)
        else:
            zone = ZoneInfo(self.timezone)
            start = datetime.combine(self.first, time(), zone)
            end = datetime.combine(self.last + timedelta(days=1), time(), zone)
            cond = "start_time >= %(t_from)s AND start_time < %(t_to)s"
            params = {"t_from": start, "t_to": end}
        parts = [cond]
        values: dict[str, Param] = dict(params)
        if self.reseller:
            parts.append("reseller = %(reseller)s")
            values["reseller"] = self.reseller
        if self.customer:
            parts.append("customer = %(customer)s")
            values["customer"] = self.customer
        return " AND ".join(parts), values

    def describe(self) -> str:
        who = []
        if self.reseller:
            who.append(f"reseller {self.reseller}")
        if self.customer:
            who.append(f"customer {self.customer}")
        return f"{self.first.isoformat()} .. {self.last.isoformat()} ({self.timezone})" + (
            f", {', '.join(who)}" if who else ""
        )


_TRAFFIC = (
    "toInt64(sum(calls)) AS n_calls, toInt64(sum(answered)) AS n_answered, "
    "toInt64(sum(talk_seconds)) AS n_talk, toInt64(sum(billed_seconds)) AS n_billed, "
    "toInt64(sum(revenue)) AS n_revenue, toInt64(sum(buy_cost)) AS n_cost, "
    "toInt64(sum(margin_amount)) AS n_margin"
)

# the same sums from the base table (x * sign), for days in a reseller's own time zone
_TRAFFIC_BASE = (
    "toInt64(sum(sign)) AS n_calls, toInt64(sum(if(billsec > 0, sign, 0))) AS n_answered, "
    "toInt64(sum(billsec * sign)) AS n_talk, toInt64(sum(billable_seconds * sign)) AS n_billed, "
    "toInt64(sum(price * sign)) AS n_revenue, toInt64(sum(cost * sign)) AS n_cost, "
    "toInt64(sum(margin * sign)) AS n_margin"
)

_TRAFFIC_COLS = (
    Col("calls", "Calls", Kind.COUNT),
    Col("answered", "Answered", Kind.COUNT),
    Col("asr_percent", "ASR", Kind.PERCENT),
    Col("acd_seconds", "ACD", Kind.SECONDS),
    Col("billed_minutes", "Billed min", Kind.MINUTES),
    Col("revenue", "Revenue", Kind.MONEY),
    Col("cost", "Cost", Kind.MONEY),
    Col("margin", "Margin", Kind.MONEY),
    Col("margin_percent", "Margin %", Kind.PERCENT),
)


def _traffic(values: Iterable[Any]) -> tuple[Any, ...]:
    """calls, answered, talk, billed, revenue, cost, margin -> the traffic columns."""
    calls, answered, talk, billed, revenue, cost, margin = (int(v) for v in values)
    return (
        calls,
        answered,
        ratio(answered, calls, 100),
        ratio(talk, answered),
        minutes(billed),
        revenue,
        cost,
        margin,
        ratio(margin, revenue, 100),
    )


class Reports:
    """Report builders on one ClickHouse connection."""

    def __init__(self, ch: Executor) -> None:
        self.ch = ch

    def _grouped(self, scope: Scope, group: str, order: str) -> list[tuple[Any, ...]]:
        cond, params = scope.where()
        source, sums, select = "daily_summary", _TRAFFIC, group
        if not scope.utc:
            source, sums = "rated_cdrs", _TRAFFIC_BASE
            zone = literal(scope.timezone)
            select = group.replace("day", f"toDate(start_time, {zone}) AS day")
        return self.ch.rows(
            f"SELECT {select}, {sums} FROM {source} WHERE {cond} "
            f"GROUP BY {group} HAVING n_calls != 0 OR n_revenue != 0 OR n_cost != 0 "
            f"ORDER BY {order}",
            params,
        )

    def _report(
        self, title: str, labels: tuple[Col, ...], raw: list[tuple[Any, ...]], scope: Scope
    ) -> Report:
        n = len(labels)
        rows = [tuple(r[:n]) + _traffic(r[n:]) for r in raw]
        currency_at = next(i for i, c in enumerate(labels) if c.key == "currency")
        totals = None
        if raw and len({r[currency_at] for r in raw}) == 1:
            sums = [sum(int(r[n + i]) for r in raw) for i in range(7)]
            labels_total: list[Any] = ["Total"] + [None] * (n - 1)
            labels_total[currency_at] = raw[0][currency_at]
            totals = tuple(labels_total) + _traffic(sums)
        return Report(f"{title}: {scope.describe()}", labels + _TRAFFIC_COLS, rows, totals)

    def daily(self, scope: Scope) -> Report:
        """One line per day (and currency), in the scope's time zone."""
        labels = (Col("day", "Day", Kind.TEXT), Col("currency", "Cur", Kind.TEXT))
        raw = self._grouped(scope, "day, currency", "day, currency")
        raw = [(r[0].isoformat(), *r[1:]) for r in raw]
        return self._report("Daily traffic", labels, raw, scope)

    def destinations(self, scope: Scope) -> Report:
        """One line per destination, highest revenue first."""
        labels = (Col("destination", "Destination", Kind.TEXT), Col("currency", "Cur", Kind.TEXT))
        raw = self._grouped(
            scope, "destination, currency", "n_revenue DESC, n_calls DESC, destination"
        )
        raw = [(r[0] or "(unrated)", *r[1:]) for r in raw]
        return self._report("Destinations", labels, raw, scope)

    def margin(self, scope: Scope) -> Report:
        """One line per reseller and customer, highest margin first."""
        labels = (
            Col("reseller", "Reseller", Kind.TEXT),
            Col("customer", "Customer", Kind.TEXT),
            Col("currency", "Cur", Kind.TEXT),
        )
        raw = self._grouped(
            scope, "reseller, customer, currency", "n_margin DESC, reseller, customer"
        )
        return self._report("Margin by customer", labels, raw, scope)

    # ------------------------------------------------------------------------ ledger
    HISTORY_COLS = (
        Col("time", "Time (UTC)", Kind.TEXT),
        Col("kind", "Kind", Kind.TEXT),
        Col("card", "Card", Kind.TEXT),
        Col("amount", "Amount", Kind.MONEY),
        Col("reason", "Reason", Kind.TEXT),
        Col("by", "By", Kind.TEXT),
    )

    def history(self, reseller: str, customer: str, limit: int = 100) -> Report:
        """The latest changes of one customer's balance, newest first, from the ledger: top-ups,
        corrections, batch funding, and calls summed per day (one line a day, not a call).

        A call entry is one call ('call to X', written before migration 080) or the calls of
        one insert ('412 calls', schemas/clickhouse/080_ledger_calls_grouped.sql)."""
        # the day (or entry) is grouped by its alias: ClickHouse 18.16 does not match
        # toDate(ts) in the SELECT list with the same expression in GROUP BY
        rows = self.ch.rows(
            "SELECT toString(max(ts)), kind, '' AS card, toInt64(sum(amount)), "
            "if(kind = 'call', concat('calls of ', day_or_entry, ': ', "
            "toString(sum(if(startsWith(reason, 'call to '), 1, "
            "toInt64OrZero(extract(reason, '^(-?[0-9]+) calls')))))), any(reason)) AS why, "
            "any(actor), if(kind = 'call', toString(toDate(ts)), entry_id) AS day_or_entry, "
            "if(kind = 'call', '', toString(ts)) AS at FROM ledger "
            "WHERE level = 'customer' AND reseller = %(r)s AND customer = %(c)s "
            "GROUP BY kind, day_or_entry, at ORDER BY max(ts) DESC LIMIT %(n)s",
            {"r": reseller, "c": customer, "n": limit},
        )
        return Report(
            f"Balance history of customer {customer}", self.HISTORY_COLS,
            [tuple(r[:6]) for r in rows], None, [] if rows else ["no balance changes yet"],
        )  # fmt: skip

    # ------------------------------------------------------------------------ cards
    CARD_COLS = (
        Col("card", "Card", Kind.TEXT),
        Col("customer", "Customer", Kind.TEXT),
        Col("status", "Status", Kind.TEXT),
        Col("disposable", "Disp", Kind.TEXT),
        Col("ani", "ANI", Kind.TEXT),
        Col("currency", "Cur", Kind.TEXT),
        Col("value", "Value", Kind.MONEY),
        Col("balance", "Balance", Kind.MONEY),
        Col("calls", "Calls", Kind.COUNT),
        Col("answered", "Answered", Kind.COUNT),
        Col("billed_minutes", "Billed min", Kind.MINUTES),
        Col("spent", "Spent", Kind.MONEY),
    )

    def card_usage(self, scope: Scope) -> dict[str, tuple[str, str, str, int, int, int, int]]:
        """card -> (reseller, customer, currency, calls, answered, billed seconds, spent)."""
        cond, params = scope.where()
        sums = (
            "toInt64(sum(calls)), toInt64(sum(answered)), toInt64(sum(billed_seconds)),"
            " toInt64(sum(revenue)) FROM card_summary"
        )
        if not scope.utc:
            sums = (
                "toInt64(sum(sign)), toInt64(sum(if(billsec > 0, sign, 0))),"
                " toInt64(sum(billable_seconds * sign)), toInt64(sum(price * sign))"
                " FROM rated_cdrs"
            )
            cond += " AND card != ''"
        rows = self.ch.rows(
            "SELECT card, any(reseller), any(customer), any(currency),"
            f" {sums} WHERE {cond} GROUP BY card",
            params,
        )
        return {
            str(r[0]): (r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7])) for r in rows
        }

    def cards(self, scope: Scope, cards: list[Card], currency: dict[str, str]) -> Report:
        """Every card in `cards` (from Redis) with its usage in the period; cards with usage but
        no longer in Redis are listed too, with status `unknown`.

        `currency` maps reseller id -> currency (cards carry no currency of their own).
        """
        usage = self.card_usage(scope)
        rows: list[tuple[Any, ...]] = []
        listed: set[str] = set()
        for card in sorted(cards, key=lambda c: (c.customer_id, c.number)):
            listed.add(card.number)
            _, _, cur, calls, answered, billed, spent = usage.get(
                card.number, ("", "", "", 0, 0, 0, 0)
            )
            rows.append(
                (
                    card.number,
                    card.customer_id,
                    card.status,
                    "yes" if card.disposable else "no",
                    "on" if card.ani_on else "off",
                    cur or currency.get(card.reseller_id, ""),
                    card.value,
                    card.balance,
                    calls,
                    answered,
                    minutes(billed),
                    spent,
                )
            )
        for number, (_, customer, cur, calls, answered, billed, spent) in sorted(usage.items()):
            if number in listed:
                continue
            rows.append(
                (
                    number,
                    customer,
                    "unknown",
                    None,
                    None,
                    cur,
                    None,
                    None,
                    calls,
                    answered,
                    minutes(billed),
                    spent,
                )
            )
        notes = [] if rows else ["no cards in scope"]
        return Report(f"Cards: {scope.describe()}", self.CARD_COLS, rows, None, notes)


def cards_in_scope(accounts: Accounts, scope: Scope) -> tuple[list[Card], dict[str, str]]:
    """The cards of scope's customer, or of every customer of its reseller, or of everyone;
    and each reseller's currency."""
    resellers = (
        [accounts.get_reseller(scope.reseller)] if scope.reseller else accounts.list_resellers()
    )
    currency = {r.reseller_id: r.currency for r in resellers}
    if scope.customer:
        customer = accounts.get_customer(scope.customer)
        currency.setdefault(
            customer.reseller_id, accounts.get_reseller(customer.reseller_id).currency
        )
        return accounts.list_cards(scope.customer), currency
    cards: list[Card] = []
    for reseller in resellers:
        for customer in accounts.list_customers(reseller.reseller_id):
            cards.extend(accounts.list_cards(customer.customer_id))
    return cards, currency


def query_report(ch: Executor, name: str, params: dict[str, Param]) -> Report:
    """One of the example queries (rater.analytics.queries) as a report; columns ending in
    `_micro` are money."""
    from rater.analytics.queries import by_name  # noqa: PLC0415 - only this report needs it

    query = by_name(name)
    names, rows = ch.table(query.sql, params)
    columns = []
    for index, column in enumerate(names):
        values = [row[index] for row in rows]
        if column.endswith("_micro"):
            kind = Kind.MONEY
        elif values and all(isinstance(v, int) for v in values):
            kind = Kind.COUNT
        else:
            kind = Kind.TEXT
        columns.append(Col(column, column, kind))
    shown = [tuple(_plain(v) for v in row) for row in rows]
    return Report(f"{query.name}: {query.question}", tuple(columns), shown)


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value
