"""The overview: credit and coverage with the shortfall named, alerts for tips 1 and 2,
today's calls, revenue, cost and margin (docs/DESIGN.md section 1)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import errors as ch_errors
from starlette.responses import Response

from rater.analytics.reports import Scope as ReportScope
from rater.analytics.tables import Report
from rater.errors import RaterError
from rater.logs import get_logger
from rater.portal.web import Ctx

log = get_logger(__name__)

#: customers listed by name in the tip 2 alert; the rest are counted
LISTED = 50


def today_in(timezone: str) -> Any:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return datetime.now(UTC).astimezone(ZoneInfo(timezone)).date()


def traffic(ctx: Ctx, scope: ReportScope) -> Report | None:
    """The daily report of a scope, or None when ClickHouse does not answer (named on the
    page; the money figures from Redis are shown all the same)."""
    try:
        return ctx.portal.reports().daily(scope)
    except (ch_errors.Error, OSError, EOFError, RaterError) as error:
        log.warning("portal report failed", error=str(error))
        return None


def overview(ctx: Ctx) -> Response:
    standing = ctx.accounts.standing(ctx.reseller_id, named=LISTED)
    reseller = standing.reseller
    census = ctx.portal.censuses.current(
        ctx.reseller_id, lambda: ctx.accounts.list_customers(ctx.reseller_id),
        reseller.ani_threshold,
    )  # fmt: skip
    coverage = replace(standing.coverage, card_value_issued=census.normal_value if census else 0)
    stopped = ctx.accounts.customers.get_many(ctx.reseller_id, [c for c, _ in standing.lowest])
    day = today_in(reseller.timezone)
    report = traffic(
        ctx,
        ReportScope(day, day, reseller=ctx.reseller_id, timezone=reseller.timezone),
    )
    totals = report.totals if report is not None else None
    return ctx.render(
        "overview.html",
        title="Overview",
        coverage=coverage,
        customers=standing.customers,
        census=census,
        census_age=int(census.age_s()) if census else None,
        stopped=stopped,
        stopped_count=standing.stopped,
        day=day.isoformat(),
        report=report,
        totals=dict(zip([c.key for c in report.columns], totals, strict=True))
        if report is not None and totals is not None
        else None,
    )
