"""Log in and out (rater/portal/sessions.py, logins.py, passwords.py)."""

from __future__ import annotations

import re
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from rater.portal import passwords, sessions
from rater.portal.web import PREFIX, Portal, _page_headers, error_page

_ID = re.compile(r"[A-Za-z0-9_.@+\-]{1,64}")


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _login_page(portal: Portal, message: str = "", status: int = 200) -> HTMLResponse:
    nonce = secrets.token_hex(16)
    body = portal.templates.get_template("login.html").render(
        prefix=PREFIX, reseller=None, message=message,
        csrf=sessions.csrf_token(portal.key, nonce),
    )  # fmt: skip
    response = HTMLResponse(body, status_code=status, headers=_page_headers())
    response.set_cookie(
        sessions.LOGIN_COOKIE, nonce, max_age=3600, path=sessions.PATH,
        httponly=True, samesite="strict",
    )  # fmt: skip
    return response


async def login_form(request: Request) -> Response:
    portal: Portal = request.app.state.portal
    return _login_page(portal)


async def login(request: Request) -> Response:
    portal: Portal = request.app.state.portal
    form = await request.form(max_part_size=4096)
    nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
    if not sessions.csrf_ok(portal.key, nonce, str(form.get("csrf") or "")):
        return _login_page(portal, "This form has expired; please log in again.", 403)
    reseller_id = str(form.get("reseller") or "").strip()
    password = str(form.get("password") or "")
    return await run_in_threadpool(_check, request, portal, reseller_id, password)


def _check(request: Request, portal: Portal, reseller_id: str, password: str) -> Response:
    address = _client(request)
    known_id = reseller_id if _ID.fullmatch(reseller_id) else ""
    wait = portal.limits.wait_s(known_id or "-", address)
    if wait:
        minutes = max(1, (wait + 59) // 60)
        return _login_page(
            portal, f"Too many failed logins. Try again in {minutes} minute(s).", 429
        )
    generation = passwords.check_password(portal.redis, known_id, password)
    if generation is None:
        portal.limits.failed(known_id or "-", address)
        return _login_page(portal, "Reseller id or password not accepted.", 401)
    portal.limits.succeeded(known_id, address)
    session = sessions.new_session(known_id, generation, portal.settings.portal_session_s)
    response = RedirectResponse(PREFIX + "/", status_code=303)
    response.set_cookie(
        sessions.COOKIE, sessions.encode(portal.key, session),
        max_age=portal.settings.portal_session_s, path=sessions.PATH, httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    response.delete_cookie(sessions.LOGIN_COOKIE, path=sessions.PATH)
    return response


async def logout(request: Request) -> Response:
    portal: Portal = request.app.state.portal
    session = sessions.decode(portal.key, request.cookies.get(sessions.COOKIE))
    form = await request.form(max_part_size=4096)
    if session is not None:
        if not sessions.csrf_ok(portal.key, session.nonce, str(form.get("csrf") or "")):
            return error_page(portal, 403, "This form has expired. Reload and try again.")
        await run_in_threadpool(passwords.end_sessions, portal.redis, session.reseller_id)
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=sessions.PATH)
    return response
