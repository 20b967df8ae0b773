"""The overview: credit and coverage with the shortfall named, alerts for tips 1 and 2,
today's calls, revenue, cost and margin (docs/DESIGN.md section 1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import errors as ch_errors
from starlette.responses import Response

from rater.accounts.model import Coverage
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
    reseller = ctx.scope.reseller
    customers = ctx.accounts.list_customers(ctx.reseller_id)
    census = ctx.portal.censuses.current(ctx.reseller_id, customers, reseller.ani_threshold)
    coverage = Coverage.of(reseller, customers, census.normal_value if census else 0)
    stopped = sorted((c for c in customers if c.balance <= 0), key=lambda c: c.balance)
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
        customers=len(customers),
        census=census,
        census_age=int(census.age_s()) if census else None,
        stopped=stopped[:LISTED],
        stopped_count=len(stopped),
        day=day.isoformat(),
        report=report,
        totals=dict(zip([c.key for c in report.columns], totals, strict=True))
        if report is not None and totals is not None
        else None,
    )
