"""Reading a request: the body under a size cap and a time limit, then its fields.

A body is a JSON object, or, with `Content-Type: application/x-www-form-urlencoded`, form
fields (`account=C1&callee=%2B31612345678&max_seconds=600`): what a dialplan's HTTP function
can send, where double quotes and commas are argument syntax (Asterisk's CURL(),
docs/SWITCHES_CALL_CONTROL.md). Form values are text; an integer field takes its digits.

A body over settings.http_max_body_bytes is refused with 413 as soon as its Content-Length
says so, or while it streams in (chunked). A client that does not finish sending its body
within settings.http_body_timeout_s gets 408 and the connection is closed: a slow or stalled
client holds one connection for at most that long (its request head is timed by server.py).

Fields are checked one by one so a bad request is answered with the field at fault and why.
Fields a request does not define are ignored (newer switch scripts may send more).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request

from rater.serve.problems import ApiError, Code, bad_request


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The whole body; ApiError 413 over `limit` bytes, 408 after `timeout_s` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise bad_request(Code.BAD_VALUE, "Content-Length", "Content-Length is not a number")
        if int(declared) > limit:
            raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            Code.REQUEST_TIMEOUT,
            f"the request body did not arrive within {timeout_s:g} s",
        ) from None
    except ClientDisconnect:
        raise ApiError(400, Code.BAD_JSON, "the client went away while sending the body") from None
    return b"".join(chunks)


def too_large(limit: int) -> ApiError:
    return ApiError(413, Code.BODY_TOO_LARGE, f"the request body is over {limit} bytes", "body")


def json_object(raw: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 bad_json otherwise."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise bad_request(Code.BAD_JSON, "body", "the body is empty; send a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise bad_request(Code.BAD_JSON, "body", f"the body is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise bad_request(
            Code.BAD_JSON, "body", f"the body must be a JSON object, not {_kind(value)}"
        )
    return value


FORM = "application/x-www-form-urlencoded"


def is_form(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == FORM


def form_object(raw: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """Form fields as a dict of strings; 400 naming the problem (a name twice, bad UTF-8)."""
    if not raw.strip():
        if empty_ok:
            return {}
        raise bad_request(Code.MISSING_FIELD, "body", "the body is empty; send the fields")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          errors="strict")  # fmt: skip
    except (UnicodeDecodeError, ValueError) as error:
        raise bad_request(
            Code.BAD_VALUE, "body", f"the form body cannot be read: {error}"
        ) from None
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name in values:
            raise bad_request(Code.CONFLICTING_FIELDS, name, f"{name} is given twice")
        values[name] = value
    return values


class Fields:
    """Typed access to the fields of one JSON object (or form), each failure naming its field."""

    def __init__(self, values: dict[str, Any], *, form: bool = False) -> None:
        self.values = values
        self.form = form  # values are strings: integers arrive as their digits

    def present(self, name: str) -> bool:
        return self.values.get(name) is not None

    def text(
        self,
        name: str,
        *,
        required: bool = False,
        max_length: int = 64,
        pattern: re.Pattern[str] | None = None,
        what: str = "",
    ) -> str | None:
        """A non-empty string (None when absent and not required)."""
        value = self.values.get(name)
        if value is None:
            if required:
                raise bad_request(Code.MISSING_FIELD, name, f"{name} is required")
            return None
        if not isinstance(value, str):
            raise bad_request(Code.BAD_TYPE, name, f"{name} must be a string, not {_kind(value)}")
        if not value.strip():
            raise bad_request(Code.BAD_VALUE, name, f"{name} is empty")
        if len(value) > max_length:
            raise bad_request(
                Code.BAD_VALUE, name, f"{name} is {len(value)} characters; at most {max_length}"
            )
        if pattern is not None and not pattern.fullmatch(value):
            raise bad_request(Code.BAD_VALUE, name, f"{name} {value!r} must be {what}")
        return value

    def required_text(self, name: str, *, max_length: int = 64) -> str:
        """A non-empty string that must be there."""
        value = self.text(name, required=True, max_length=max_length)
        assert value is not None  # text() raised for a missing required field
        return value

    def integer(self, name: str, *, minimum: int, maximum: int) -> int | None:
        """A JSON integer in [minimum, maximum] (None when absent); 1.5, "60" and true are not."""
        value = self.values.get(name)
        if value is None:
            return None
        if self.form and isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad_request(Code.BAD_TYPE, name, f"{name} must be an integer, not {_kind(value)}")
        if not minimum <= value <= maximum:
            raise bad_request(
                Code.BAD_VALUE, name, f"{name} is {value}; it must be {minimum}-{maximum}"
            )
        return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
