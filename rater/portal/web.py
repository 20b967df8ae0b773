"""The portal's plumbing: the shared state, the per-request context, and the `page` wrapper
every route goes through (session, CSRF on every POST, scope, errors as HTML pages).

Handlers are plain functions run in Starlette's thread pool: they call the account API,
which talks to Redis and ClickHouse synchronously, and must not hold up the event loop that
answers the switches' authorizations in the same process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from rater.accounts.api import Accounts
from rater.accounts.ledger import LedgerWriter
from rater.analytics.reports import Reports
from rater.clickhouse.executor import DriverExecutor
from rater.errors import NotFound, RaterError
from rater.logs import get_logger
from rater.money import from_micro
from rater.portal import passwords, sessions
from rater.portal.census import Censuses
from rater.portal.logins import LoginLimits
from rater.portal.scope import Scope
from rater.settings import Settings
from rater.tariffs.store import TariffStore

log = get_logger(__name__)

HERE = Path(__file__).parent
PREFIX = sessions.PATH


def money(micro: int | None, decimals: int = 2) -> str:
    """Money for people: at least `decimals` places, more when the amount has them."""
    if micro is None:
        return ""
    text = from_micro(micro)
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(decimals, "0")
    return f"{whole}.{frac}" if frac else whole


class Portal:
    """What every request shares (one per serve process)."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self.settings = settings
        self.redis = redis
        self._key: bytes | None = None
        self.limits = LoginLimits(redis, settings)
        self.censuses = Censuses(redis, settings.portal_census_s)
        self.ledger = LedgerWriter(settings, redis)
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=StrictUndefined,  # a misspelt field fails loudly, never renders blank
        )
        self.templates.filters["money"] = money
        # what base.html reads on every page, for pages that have no session (login, errors)
        self.templates.globals.update(
            title="", path="", ok="", error="", csrf="", reseller=None, prefix=PREFIX
        )
        self._local = threading.local()

    @property
    def key(self) -> bytes:
        """Made on first use: `rater serve` checked the PIN secret at start; an application
        made without one (tests of the switch API) answers the portal with 500 only."""
        if self._key is None:
            self._key = sessions.signing_key(self.settings)
        return self._key

    def reports(self) -> Reports:
        """A ClickHouse connection per thread (the driver's client is not thread-safe)."""
        found: Reports | None = getattr(self._local, "reports", None)
        if found is None:
            found = self._local.reports = Reports(DriverExecutor.from_settings(self.settings))
        return found

    def tariffs(self, *, clickhouse: bool = False) -> TariffStore:
        return TariffStore(self.redis, self.settings, clickhouse=clickhouse)

    # ------------------------------------------------------------------ signed notes
    def note(self, text: str) -> str:
        """A message for the next page, signed so a link cannot put words in our mouth."""
        raw = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
        return f"{raw}.{self._sign('note:' + raw)[:32]}"

    def read_note(self, token: str | None) -> str:
        if not token or token.count(".") != 1:
            return ""
        raw, signature = token.split(".")
        if not hmac.compare_digest(self._sign("note:" + raw)[:32], signature):
            return ""
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode(errors="replace")

    def _sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


@dataclass
class Ctx:
    """One request of a logged-in reseller."""

    request: Request
    portal: Portal
    session: sessions.Session
    scope: Scope
    form: FormData | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def accounts(self) -> Accounts:
        return self.scope.accounts

    @property
    def reseller_id(self) -> str:
        return self.scope.reseller_id

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        if value is None:
            value = self.request.query_params.get(name)
        return value.strip() if isinstance(value, str) else default

    def render(self, template: str, **values: Any) -> HTMLResponse:
        body = self.portal.templates.get_template(template).render(
            prefix=PREFIX,
            reseller=self.scope.reseller,
            csrf=self.session.csrf(self.portal.key),
            ok=self.portal.read_note(self.request.query_params.get("ok")),
            error=self.portal.read_note(self.request.query_params.get("err")),
            path=self.request.url.path,
            **values,
        )
        return HTMLResponse(body, status_code=self.status, headers=_page_headers())

    def back(self, to: str, *, ok: str = "", error: str = "") -> RedirectResponse:
        """303 to a page of the portal with a signed message for it."""
        query = {}
        if ok:
            query["ok"] = self.portal.note(ok)
        if error:
            query["err"] = self.portal.note(error)
        sep = "&" if "?" in to else "?"
        url = PREFIX + to + (sep + urlencode(query) if query else "")
        return RedirectResponse(url, status_code=303)


Handler = Callable[[Ctx], Response]


def _page_headers() -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        # no script at all; styles and images only from the portal itself
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route of a logged-in reseller: GETs render, POSTs need the session's CSRF token."""

    async def route(request: Request) -> Response:
        portal: Portal = request.app.state.portal
        session = sessions.decode(portal.key, request.cookies.get(sessions.COOKIE))
        form = None
        if request.method == "POST":
            form = await _form(request, portal)
            if form is None:
                return _error(portal, 413, "The upload is larger than this portal accepts.")
        if session is None:
            return _to_login(request)
        if form is not None and not sessions.csrf_ok(
            portal.key, session.nonce, str(form.get("csrf") or "")
        ):
            return _error(portal, 403, "This form has expired. Go back, reload, and try again.")
        return await run_in_threadpool(_run, handler, request, portal, session, form)

    route.__name__ = handler.__name__
    return route


def _run(
    handler: Handler,
    request: Request,
    portal: Portal,
    session: sessions.Session,
    form: FormData | None,
) -> Response:
    if passwords.generation(portal.redis, session.reseller_id) != session.generation:
        return _to_login(request)  # logged out, or a new password since
    accounts = Accounts(
        portal.settings, portal.redis, portal.ledger, actor=f"portal:{session.reseller_id}"
    )
    try:
        reseller = accounts.get_reseller(session.reseller_id)
    except NotFound:
        return _to_login(request)
    ctx = Ctx(request, portal, session, Scope(reseller, accounts, portal.tariffs()), form)
    try:
        return handler(ctx)
    except NotFound:
        return _error(portal, 404, "Not found: nothing of yours has that name or number.")
    except RaterError as error:
        log.info("portal action refused", reseller=session.reseller_id, error=str(error))
        return _error(portal, 400, str(error))


async def _form(request: Request, portal: Portal) -> FormData | None:
    declared = request.headers.get("content-length")
    limit = portal.settings.portal_max_upload_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    return await request.form(max_part_size=limit)


def _to_login(request: Request) -> Response:
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response


def _error(portal: Portal, status: int, message: str) -> HTMLResponse:
    body = portal.templates.get_template("error.html").render(
        prefix=PREFIX, status=status, message=message, reseller=None
    )
    return HTMLResponse(body, status_code=status, headers=_page_headers())


def error_page(portal: Portal, status: int, message: str) -> HTMLResponse:
    return _error(portal, status, message)
