"""GET /v1/cards/{number}/balance: what an IVR reads out ("you have 4 euro 20").

The PIN travels in the `X-Card-PIN` header only: never in the URL (it would land in access
logs and proxies' caches) nor in a GET body. The check is the authorization's own
(the Authorizer's PIN gate): a wrong PIN counts towards the card's lockout and the switch's
slow-down, and a locked card is refused even with the right PIN. Like an authorization, every
card-or-PIN problem (unknown card, wrong PIN, locked or blocked) is the same 200 with
`ok: false` and reason `card_or_pin`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater.money import display
from rater.serve.calls import CARD_NUMBER, PIN_HEADER
from rater.serve.problems import Code, bad_request
from rater.serve.service import answer, principal_of, service_of


async def balance(request: Request) -> Response:
    principal = principal_of(request)
    number = str(request.path_params["number"])
    if not CARD_NUMBER.fullmatch(number):
        raise bad_request(Code.BAD_VALUE, "number", "a card number is 4-32 digits")
    if "pin" in request.query_params:
        raise bad_request(
            Code.BAD_VALUE, "pin", "the PIN goes in the X-Card-PIN header, never in the URL"
        )
    pin = request.headers.get(PIN_HEADER)
    if not pin:
        raise bad_request(Code.MISSING_FIELD, "X-Card-PIN", "send the card's PIN in X-Card-PIN")
    if len(pin) > 32:
        raise bad_request(Code.BAD_VALUE, "X-Card-PIN", "X-Card-PIN is at most 32 characters")
    control = service_of(request).control
    reseller = control.reseller_of(card=number)
    if reseller is not None:
        principal.check_reseller(reseller, f"card {number}")
    found = control.card_balance(number, pin, switch=principal.switch)
    body: dict[str, object] = {
        "ok": found.ok,
        "reason": found.reason.value,
        "message": found.message,
        "card": found.card,
    }
    if found.ok:
        body |= {
            "status": found.status,
            "currency": found.currency,
            "balance": display(found.balance),
            "available": display(found.available),
            "expires_at": found.expires_at.isoformat() if found.expires_at else None,
        }
    return answer(body)


def routes() -> list[Route]:
    return [Route("/v1/cards/{number}/balance", balance, methods=["GET"])]
