"""The one error answer of the HTTP service: `{"error": {"code", "field", "message"}}`.

A refusal to authorize a call is not an error (200 with `allowed: false`). Errors are bad
requests (400, never 422), authentication (401) and scope (403), a body over the cap (413), a
client too slow to send its body (408), unknown paths (404, 405), and a Redis that does not
answer (503). `code` is stable (clients switch on it), `field` names the part
of the request at fault ('' when none), `message` is for a person.
"""

from __future__ import annotations

from enum import StrEnum

import orjson
from starlette.responses import Response

from rater.errors import RaterError


class Code(StrEnum):
    BAD_JSON = "bad_json"  # the body is not JSON, or not a JSON object
    MISSING_FIELD = "missing_field"
    BAD_TYPE = "bad_type"  # a field of the wrong JSON type
    BAD_VALUE = "bad_value"  # right type, unusable value (empty, negative, too long, ...)
    CONFLICTING_FIELDS = "conflicting_fields"  # e.g. an account and a card in one request
    UNKNOWN_FIELD = "unknown_field"
    BODY_TOO_LARGE = "body_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    UNAUTHORIZED = "unauthorized"  # no token, or a bad or revoked one
    FORBIDDEN = "forbidden"  # a valid token acting outside its switch, resellers or addresses
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAVAILABLE = "unavailable"  # Redis did not answer
    INTERNAL = "internal_error"


class ApiError(RaterError):
    """An HTTP error answer; raised by request handling, turned into a response by the app."""

    def __init__(self, status: int, code: Code, message: str, field: str = "") -> None:
        self.status = status
        self.code = code
        self.field = field
        self.message = message
        super().__init__(f"{status} {code.value}: {message}")

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.field)


def error_response(
    status: int, code: Code, message: str, field: str = "", headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps({"error": {"code": code.value, "field": field, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def bad_request(code: Code, field: str, message: str) -> ApiError:
    return ApiError(400, code, message, field)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, Code.UNAUTHORIZED, message, "Authorization")


def forbidden(message: str, field: str = "") -> ApiError:
    return ApiError(403, Code.FORBIDDEN, message, field)
