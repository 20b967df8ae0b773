"""Signed session cookies and CSRF tokens.

A session is `<payload>.<signature>`: payload the URL-safe base64 of JSON [reseller id, session
generation, expiry (epoch s), nonce], signature HMAC-SHA256 over it with a key derived from the
PIN secret (`rater serve` cannot start without one, and every serve process shares it). The
cookie is HttpOnly, SameSite=Strict, Path=/portal, Secure on HTTPS, and expires with the
payload. A session ends at its expiry, at log-out and when the password changes (the
generation, rater/portal/passwords.py).

CSRF: every form carries HMAC(key, "csrf:" + nonce) of its session (or, on the login form, of a
random nonce in a cookie of its own); a POST without the right token is refused (403).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import orjson

from rater.settings import Settings

COOKIE = "rater_portal"
LOGIN_COOKIE = "rater_portal_login"
PATH = "/portal"


def signing_key(settings: Settings) -> bytes:
    """The portal's own key, derived from the PIN secret (a new PIN secret ends sessions)."""
    secret, _ = settings.pin_secret_value()
    return hmac.new(secret.encode(), b"rater portal sessions v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    reseller_id: str
    generation: int
    expires: int
    nonce: str

    def csrf(self, key: bytes) -> str:
        return csrf_token(key, self.nonce)


def csrf_token(key: bytes, nonce: str) -> str:
    return hmac.new(key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, nonce: str, given: str) -> bool:
    return bool(nonce) and hmac.compare_digest(csrf_token(key, nonce), given or "")


def new_session(reseller_id: str, generation: int, lifetime_s: int) -> Session:
    return Session(reseller_id, generation, int(time.time()) + lifetime_s, secrets.token_hex(16))


def encode(key: bytes, session: Session) -> str:
    body = orjson.dumps([session.reseller_id, session.generation, session.expires, session.nonce])
    payload = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{payload}.{_sign(key, payload)}"


def decode(key: bytes, cookie: str | None, now: float | None = None) -> Session | None:
    """The session of a cookie when its signature holds and it has not expired, else None."""
    if not cookie or cookie.count(".") != 1:
        return None
    payload, signature = cookie.split(".")
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    try:
        reseller_id, gen, expires, nonce = orjson.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        )
    except (ValueError, binascii.Error, orjson.JSONDecodeError, TypeError):
        return None
    if expires <= (time.time() if now is None else now):
        return None
    return Session(str(reseller_id), int(gen), int(expires), str(nonce))


def _sign(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
