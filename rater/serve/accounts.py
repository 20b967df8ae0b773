"""GET /v1/accounts/{id}: a SIP account's booked balance, what is available after the credit
held by live reservations (authorized calls not yet debited), and those reservations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rater.money import display
from rater.serve.calls import ACCOUNT_ID
from rater.serve.problems import ApiError, Code, bad_request
from rater.serve.service import answer, principal_of, service_of


async def account(request: Request) -> Response:
    principal = principal_of(request)
    account_id = str(request.path_params["account_id"])
    if not ACCOUNT_ID.fullmatch(account_id):
        raise bad_request(Code.BAD_VALUE, "id", "an account id is 1-64 letters, digits or _.@+-")
    control = service_of(request).control
    reseller = control.reseller_of(account=account_id)
    if reseller is None:
        raise ApiError(404, Code.NOT_FOUND, f"account {account_id} does not exist", "id")
    principal.check_reseller(reseller, f"account {account_id}")
    view = control.account(account_id)
    return answer(
        {
            "account": view.account,
            "name": view.name,
            "reseller": view.reseller,
            "currency": view.currency,
            "status": view.status,
            "balance": display(view.balance),
            "available": display(view.available),
            "held": display(view.balance - view.available),
            "reservations": [
                {
                    "auth_id": hold.auth_id,
                    "amount": display(hold.amount),
                    "expires_at": hold.expires_at.isoformat(),
                }
                for hold in view.holds
            ],
        }
    )


def routes() -> list[Route]:
    return [Route("/v1/accounts/{account_id}", account, methods=["GET"])]
