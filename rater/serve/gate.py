"""Who is calling: the switch behind a request's token, and what it may do.

Clients send `Authorization: Bearer <token>`, or HTTP Basic `<switch>:<token>` (FreeSWITCH's
mod_json_cdr can send nothing else). The token's secret is hashed and compared with the stored
digest by `hmac.compare_digest` (constant time). No token, a malformed, unknown or revoked one:
401. A valid token used from an address outside its switch's allow-list, with a Basic user
name that is not its switch, or (checked by the endpoints) for a switch or a reseller it does
not act for: 403.

Tokens and scopes are cached per process: every `poll_s` (1 s) one GET of
`switchauth:generation` tells whether anything changed (then the cache is dropped), and no
entry is older than `max_age_s` (5 s) even if that GET were missed. So a revoked token stops
working within about a second on every serve process, and within 5 s at worst. Unknown token
ids are cached too, so a flood of bad tokens costs no Redis look-ups.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rater.serve.credentials import Credentials, Scope, StoredToken, digest, split_token
from rater.serve.problems import forbidden, unauthorized


@dataclass(frozen=True)
class Principal:
    """An authenticated switch and its scope."""

    switch: str
    scope: Scope
    token_id: str

    def check_switch(self, named: str | None) -> None:
        """A request naming another switch than the token's: 403."""
        if named is not None and named != self.switch:
            raise forbidden(
                f"this token belongs to switch {self.switch!r}, not {named!r}", "switch"
            )

    def check_reseller(self, reseller_id: str, what: str) -> None:
        if not self.scope.allows_reseller(reseller_id):
            raise forbidden(
                f"switch {self.switch!r} does not act for the reseller of {what} "
                f"(rater switch set {self.switch} --resellers ...)"
            )


class Gate:
    """Authenticates requests against Credentials, with the cache described above."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        poll_s: float = 1.0,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.credentials = credentials
        self.poll_s = poll_s
        self.max_age_s = max_age_s
        self.clock = clock
        self._tokens: dict[str, StoredToken | None] = {}
        self._scopes: dict[str, Scope] = {}
        self._generation: str | None = None
        self._checked_at = float("-inf")
        self._filled_at = float("-inf")

    def authenticate(self, headers: Mapping[str, str], client_ip: str) -> Principal:
        user, token = _credentials_of(headers)
        parts = split_token(token)
        if parts is None:
            raise unauthorized("the token is malformed")
        token_id, secret = parts
        self._refresh()
        stored = self._token(token_id)
        # compare even for an unknown id, so both answers take the same time
        expected = stored.sha256 if stored is not None else "0" * 64
        if not hmac.compare_digest(digest(secret), expected) or stored is None:
            raise unauthorized("the token is unknown or revoked")
        if user is not None and user != stored.switch:
            raise forbidden(f"the token does not belong to switch {user!r}", "Authorization")
        scope = self._scope(stored.switch)
        if not scope.allows_address(client_ip):
            raise forbidden(f"switch {stored.switch!r} may not call from {client_ip}")
        return Principal(stored.switch, scope, token_id)

    # ---------------------------------------------------------------- cache
    def _refresh(self) -> None:
        now = self.clock()
        aged = now - self._filled_at >= self.max_age_s
        if not aged and now - self._checked_at < self.poll_s:
            return
        generation = self.credentials.generation()
        if aged or generation != self._generation:
            self._tokens.clear()
            self._scopes.clear()
            self._generation = generation
            self._filled_at = now
        self._checked_at = now

    def _token(self, token_id: str) -> StoredToken | None:
        if token_id not in self._tokens:
            if len(self._tokens) > 100_000:  # bounded even under a flood of random ids
                self._tokens.clear()
            self._tokens[token_id] = self.credentials.lookup(token_id)
        return self._tokens[token_id]

    def _scope(self, switch: str) -> Scope:
        scope = self._scopes.get(switch)
        if scope is None:
            scope = self._scopes[switch] = self.credentials.scope(switch)
        return scope


def _credentials_of(headers: Mapping[str, str]) -> tuple[str | None, str]:
    """(Basic user name or None, token) from the Authorization header; 401 without one."""
    value = headers.get("authorization")
    if not value:
        raise unauthorized("send Authorization: Bearer <token> (rater switch token create)")
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return None, rest
    if scheme.lower() == "basic" and rest:
        try:
            user, sep, password = base64.b64decode(rest, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("the Basic credentials are not base64 of switch:token") from None
        if not sep:
            raise unauthorized("the Basic credentials are not switch:token")
        return user, password
    raise unauthorized("the Authorization scheme must be Bearer (or Basic switch:token)")
