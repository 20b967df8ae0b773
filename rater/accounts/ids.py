"""Authorization ids: the one rule every place an auth_id enters applies (docs/REDIS_KEYS.md).

An auth_id travels from `rater authorize` to the switch, back on the CDR (docs/DESIGN.md
section 5) and into Redis: it is a field of the `rsv` hashes, part of key names, and one line
of the newline-separated auth-id list the debit script splits (rater/redis/lua/debit.lua). So
it must be printable ASCII without spaces and without the scripts' separators (newline, ':')
or hash-tag braces, and short: 1 to 64 bytes. The CDR decoder, the debit encoder, the account
API and the CLI all call `auth_id_problem` / `check_auth_id`; this module imports nothing but
the error types, so any of them can.
"""

from __future__ import annotations

import secrets

from rater.errors import AuthorizationError

MAX_AUTH_ID_BYTES = 64
#: printable ASCII is 0x21-0x7e (no space); of those the scripts reserve these
_RESERVED = frozenset(":{}")


def auth_id_problem(value: str) -> str | None:
    """Why `value` cannot be an auth_id, or None when it can."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "is empty"
    for char in value:
        if not "\x21" <= char <= "\x7e" or char in _RESERVED:
            return (
                f"has the character {char!r}: only printable ASCII without spaces, ':', '{{' "
                "or '}' is allowed"
            )
    if len(value) > MAX_AUTH_ID_BYTES:
        return f"is {len(value)} bytes long; at most {MAX_AUTH_ID_BYTES}"
    return None


def check_auth_id(value: str) -> str:
    """The id itself; AuthorizationError naming the value and the reason otherwise."""
    problem = auth_id_problem(value)
    if problem is not None:
        raise AuthorizationError(f"auth_id {value!r} {problem}")
    return value


def new_auth_id() -> str:
    """A fresh id: 'a' and 16 random hex digits (64 bits: no collision among live ones)."""
    return "a" + secrets.token_hex(8)
