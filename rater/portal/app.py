"""The portal's Starlette application, mounted by `rater serve` at /portal
(rater/serve/app.py); docs/PORTAL.md describes it."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rater.portal.pages import cards, customers, login, overview, reports, tariffs
from rater.portal.web import HERE, PREFIX, Portal, error_page, page
from rater.settings import Settings


def create_portal(settings: Settings, redis: Any) -> Starlette:
    routes = [
        Route("/", page(overview.overview), methods=["GET"]),
        Route("/login", login.login_form, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/tariffs", page(tariffs.tariffs), methods=["GET"]),
        Route("/tariffs/view", page(tariffs.tariff), methods=["GET"]),
        Route("/tariffs/derive", page(tariffs.derive_table), methods=["POST"]),
        Route("/tariffs/upload", page(tariffs.upload), methods=["POST"]),
        Route("/customers", page(customers.customers), methods=["GET"]),
        Route("/customers", page(customers.create), methods=["POST"]),
        Route("/customers/{customer_id}", page(customers.customer), methods=["GET"]),
        Route("/customers/{customer_id}/topup", page(customers.topup), methods=["POST"]),
        Route("/customers/{customer_id}/correct", page(customers.correct), methods=["POST"]),
        Route("/customers/{customer_id}/cards", page(cards.create_batch), methods=["POST"]),
        Route("/batches/{batch_id}/export.xlsx", page(cards.export_batch), methods=["GET"]),
        Route("/cards/{number}/{action:str}", page(cards.card_action), methods=["POST"]),
        Route("/reports", page(reports.reports), methods=["GET"]),
        Route("/reports/{name}.{fmt:str}", page(reports.download), methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.portal = Portal(settings, redis)
    return app


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    portal: Portal = request.app.state.portal
    if error.status_code == 405:
        return error_page(portal, 405, f"{request.method} is not allowed here.")
    if error.status_code == 404:
        return error_page(portal, 404, "Not found: nothing of yours has that name or number.")
    return error_page(portal, error.status_code, str(error.detail))


def to_portal(request: Request) -> Response:
    """/portal without the slash."""
    return RedirectResponse(PREFIX + "/", status_code=307)
