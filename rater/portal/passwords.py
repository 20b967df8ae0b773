"""Portal passwords: argon2id hashes (argon2-cffi) in `{r:R}:portal` (docs/REDIS_KEYS.md).

The hash's field `pw`; `gen`, a session generation, is raised by every new password and every
log-out, so sessions signed before stop working at once (rater/portal/sessions.py).
"""

from __future__ import annotations

import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rater.errors import AccountError, NotFound
from rater.redis import keys

#: shorter passwords are refused (NIST SP 800-63B's minimum for chosen secrets is 8)
MIN_LENGTH = 10
MAX_LENGTH = 256

# argon2-cffi's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes, 4 lanes) took
# about 60 ms a hash on this machine: slow for a guesser, unnoticed at a login
_HASHER = PasswordHasher()
#: verified when the reseller is unknown or has no password, so both take as long as a real one
_DUMMY = _HASHER.hash("no password is set for this reseller")


def set_password(redis: Any, reseller_id: str, password: str) -> None:
    """Hash and store a reseller's portal password; its open sessions end."""
    if not redis.exists(keys.reseller(reseller_id)):
        raise NotFound(f"reseller {reseller_id!r} does not exist")
    if len(password) < MIN_LENGTH:
        raise AccountError(f"a portal password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise AccountError(f"a portal password has at most {MAX_LENGTH} characters")
    if password != password.strip():
        raise AccountError("a portal password cannot start or end with spaces")
    key = keys.portal_login(reseller_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, mapping={"pw": _HASHER.hash(password), "set": int(time.time())})
    pipe.hincrby(key, "gen", 1)
    pipe.execute()


def check_password(redis: Any, reseller_id: str, password: str) -> int | None:
    """The session generation when `password` is the reseller's, else None. As slow for an
    unknown reseller, or one without a password, as for a wrong password."""
    fields = redis.hgetall(keys.portal_login(reseller_id)) if reseller_id else {}
    stored = fields.get(b"pw")
    try:
        _HASHER.verify(stored.decode() if stored else _DUMMY, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not stored:
        return None
    if _HASHER.check_needs_rehash(stored.decode()):
        redis.hset(keys.portal_login(reseller_id), "pw", _HASHER.hash(password))
    return int(fields.get(b"gen", b"0"))


def generation(redis: Any, reseller_id: str) -> int:
    """The reseller's session generation (sessions of another one are over)."""
    raw = redis.hget(keys.portal_login(reseller_id), "gen")
    return int(raw) if raw is not None else 0


def end_sessions(redis: Any, reseller_id: str) -> None:
    """Every session of the reseller ends (log-out)."""
    redis.hincrby(keys.portal_login(reseller_id), "gen", 1)
