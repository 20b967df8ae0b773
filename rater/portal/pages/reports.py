"""Reports: daily revenue, cost and margin with an SVG chart, destinations with ASR and ACD,
cards; CSV and XLSX downloads (rater/analytics/tables.py writers, cells escaped by
rater/escape.py `cell`)."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

from starlette.responses import Response

from rater.analytics.reports import Scope as ReportScope
from rater.analytics.reports import cards_in_scope
from rater.analytics.tables import Report, write_csv, write_xlsx
from rater.errors import ConfigError
from rater.portal.chart import Day, svg
from rater.portal.pages.overview import today_in
from rater.portal.web import Ctx

MAX_DAYS = 366
#: cards shown on the page (the download has them all)
CARDS_SHOWN = 50


def _scope(ctx: Ctx) -> ReportScope:
    reseller = ctx.scope.reseller
    today = today_in(reseller.timezone)
    try:
        last = date.fromisoformat(ctx.field("last")) if ctx.field("last") else today
        first = (
            date.fromisoformat(ctx.field("first"))
            if ctx.field("first")
            else last - timedelta(days=29)
        )
    except ValueError:
        raise ConfigError("dates are written like 2026-11-30") from None
    if first > last:
        first, last = last, first
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    return ReportScope(first, last, reseller=ctx.reseller_id, timezone=reseller.timezone)


def _column(report: Report, key: str) -> int:
    return next(i for i, c in enumerate(report.columns) if c.key == key)


def reports(ctx: Ctx) -> Response:
    scope = _scope(ctx)
    data = ctx.portal.reports()
    daily = data.daily(scope)
    destinations = data.destinations(scope)
    at = {k: _column(daily, k) for k in ("day", "revenue", "cost", "margin")}
    chart = svg(
        [Day(r[at["day"]], r[at["revenue"]], r[at["cost"]], r[at["margin"]]) for r in daily.rows],
        ctx.scope.reseller.currency,
    )
    usage = sorted(data.card_usage(scope).items(), key=lambda kv: -kv[1][6])[:CARDS_SHOWN]
    return ctx.render(
        "reports.html", title="Reports", scope=scope, daily=daily, destinations=destinations,
        chart=chart, usage=usage, first=scope.first.isoformat(), last=scope.last.isoformat(),
    )  # fmt: skip


def download(ctx: Ctx) -> Response:
    name = ctx.request.path_params["name"]
    fmt = ctx.request.path_params["fmt"]
    if fmt not in ("csv", "xlsx"):
        return ctx.back("/reports", error=f"reports download as .csv or .xlsx, not .{fmt}")
    scope = _scope(ctx)
    data = ctx.portal.reports()
    if name == "daily":
        report = data.daily(scope)
    elif name == "destinations":
        report = data.destinations(scope)
    elif name == "cards":
        cards, currency = cards_in_scope(ctx.accounts, scope)
        report = data.cards(scope, cards, currency)
    else:
        return ctx.back("/reports", error=f"no report named {name!r}")
    with tempfile.TemporaryDirectory(prefix="rater-report-") as folder:
        path = Path(folder) / f"report.{fmt}"
        if fmt == "csv":
            write_csv(report, path)
            media = "text/csv; charset=utf-8"
        else:
            write_xlsx(report, path)
            media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        body = path.read_bytes()
    filename = f"{name}-{scope.first.isoformat()}-{scope.last.isoformat()}.{fmt}"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
