"""POST /v1/authorize, /v1/authorize/{auth_id}/renew and /v1/authorize/{auth_id}/release.

An authorization names exactly one payer: `account`, `card` with its PIN (body field `pin` or
header `X-Card-PIN`), or `ani` (PIN-less card dialling by caller number). The same Authorizer
as `rater authorize` decides, with the switch's scope: as soon as it has found the payer's
reseller, one the switch does not act for is answered 403 before anything else happens, so
the switch cannot spend that reseller's money nor count wrong PINs against its cards. A
refusal is a 200 with `allowed: false` and the reason.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater.accounts.ani import normalise_ani
from rater.accounts.answers import Authorization
from rater.accounts.authorize import OutOfScope
from rater.errors import AccountError
from rater.serve import metrics
from rater.serve.domain import AuthorizeAsk
from rater.serve.gate import Principal
from rater.serve.problems import Code, bad_request
from rater.serve.service import answer, json_fields, principal_of, service_of

ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.@+\-]{1,64}")
CARD_NUMBER = re.compile(r"[0-9]{4,32}")
#: printable ASCII without ':' or braces, 1-64 (the account layer's rule for auth ids)
AUTH_ID = re.compile(r"[!-9;-z|~]{1,64}")
MAX_SECONDS = 86_400
PIN_HEADER = "x-card-pin"


async def authorize(request: Request) -> Response:
    principal = principal_of(request)
    fields = await json_fields(request)
    switch = fields.text("switch")
    principal.check_switch(switch)
    account = fields.text("account", pattern=ACCOUNT_ID, what="1-64 letters, digits or '_.@+-'")
    card = fields.text("card", max_length=32, pattern=CARD_NUMBER, what="4-32 digits")
    ani = fields.text("ani", max_length=32)
    if ani is not None:
        try:
            normalise_ani(ani)
        except AccountError as error:
            raise bad_request(Code.BAD_VALUE, "ani", str(error)) from None
    pin = fields.text("pin", max_length=32)
    if card and pin is None:
        pin = _pin_header(request)  # the header is read for card calls only
    payers = [name for name, value in (("account", account), ("card", card), ("ani", ani)) if value]
    if not payers:
        raise bad_request(
            Code.MISSING_FIELD, "account", "name the payer: account, card (with pin) or ani"
        )
    if len(payers) > 1:
        raise bad_request(
            Code.CONFLICTING_FIELDS, payers[1], f"give one payer, not {' and '.join(payers)}"
        )
    if card and not pin:
        raise bad_request(Code.MISSING_FIELD, "pin", "a card needs its PIN (pin or X-Card-PIN)")
    if pin and not card:
        raise bad_request(Code.CONFLICTING_FIELDS, "pin", "a PIN goes with a card")
    callee = fields.required_text("callee")
    caller = fields.text("caller")
    max_seconds = fields.integer("max_seconds", minimum=1, maximum=MAX_SECONDS)

    ask = AuthorizeAsk(
        callee=callee,
        switch=principal.switch,
        account=account,
        card=card,
        pin=pin,
        ani=ani,
        caller=caller,
        max_seconds=max_seconds,
    )
    try:
        result = service_of(request).control.authorize(ask, principal.scope.allows_reseller)
    except OutOfScope as error:
        principal.check_reseller(error.reseller_id, payers[0])
        raise  # not reached: check_reseller raised the 403
    metrics.AUTHORIZATIONS.labels(result.reason.value).inc()
    return answer(_authorization(result))


async def renew(request: Request) -> Response:
    """More time for a long call: allowed with the call's new total and expiry, or refused with
    the reason (the credit no longer covers it, or the reservation is unknown or ended)."""
    principal = principal_of(request)
    auth_id = _auth_id(request)
    await json_fields(request, empty_ok=True)  # no fields yet; the body is still capped
    control = service_of(request).control
    reseller = control.reseller_of_auth(auth_id)
    _check_scope(principal, reseller, auth_id)
    result = control.renew(auth_id, reseller)
    return answer(_authorization(result, auth_id))


async def release(request: Request) -> Response:
    """Idempotent: releasing twice, or after the CDR's debit released it, answers the same."""
    principal = principal_of(request)
    auth_id = _auth_id(request)
    await json_fields(request, empty_ok=True)
    control = service_of(request).control
    reseller = control.reseller_of_auth(auth_id)
    _check_scope(principal, reseller, auth_id)
    control.release(auth_id, reseller)
    return answer({"auth_id": auth_id, "released": True})


def _check_scope(principal: Principal, reseller: str | None, auth_id: str) -> None:
    """A reservation of a reseller the switch does not act for: 403. An unknown or ended one
    goes on (renew refuses it, release has nothing to do)."""
    if reseller is not None:
        principal.check_reseller(reseller, f"auth_id {auth_id}")


def _authorization(result: Authorization, auth_id: str | None = None) -> dict[str, object]:
    return {
        "allowed": result.allowed,
        "reason": result.reason.value,
        "message": result.message,
        "max_seconds": result.max_seconds,
        "auth_id": (result.auth_id or auth_id) if result.allowed else None,
        "expires_at": result.expires_at.isoformat() if result.expires_at else None,
    }


def _auth_id(request: Request) -> str:
    auth_id = str(request.path_params["auth_id"])
    if not AUTH_ID.fullmatch(auth_id):
        raise bad_request(
            Code.BAD_VALUE,
            "auth_id",
            "auth_id must be 1-64 printable ASCII characters without ':', '{' or '}'",
        )
    return auth_id


def _pin_header(request: Request) -> str | None:
    value = request.headers.get(PIN_HEADER)
    if value is None:
        return None
    if not value.strip() or len(value) > 32:
        raise bad_request(Code.BAD_VALUE, "X-Card-PIN", "X-Card-PIN must be 1-32 characters")
    return value


def routes() -> list[Route]:
    return [
        Route("/v1/authorize", authorize, methods=["POST"]),
        Route("/v1/authorize/{auth_id}/renew", renew, methods=["POST"]),
        Route("/v1/authorize/{auth_id}/release", release, methods=["POST"]),
    ]
