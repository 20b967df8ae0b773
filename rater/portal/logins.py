"""Failed portal logins, counted in Redis so every serve process shares them.

Per reseller id and per client address, within settings.portal_login_window_s: at
settings.portal_login_failures for an id (four times as many for an address, which may be an
office behind one NAT) further logins are refused, right password or not, until the window
has passed since the first failure counted. A right password does not reset an address's
count, only its id's. Guessing one id is therefore at most 5 passwords per 15 minutes (480 a
day) with the defaults, against argon2 hashes of passwords of 10 characters or more.
"""

from __future__ import annotations

from typing import Any

from rater.redis import keys
from rater.settings import Settings

ADDRESS_FACTOR = 4


class LoginLimits:
    def __init__(self, redis: Any, settings: Settings) -> None:
        self.redis = redis
        self.failures = settings.portal_login_failures
        self.window_s = settings.portal_login_window_s

    def _keys(self, reseller_id: str, address: str) -> tuple[str, str]:
        return keys.portal_failures(f"id:{reseller_id}"), keys.portal_failures(f"ip:{address}")

    def wait_s(self, reseller_id: str, address: str) -> int:
        """Seconds until a login may be tried again (0: now)."""
        by_id, by_address = self._keys(reseller_id, address)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(by_id)
        pipe.ttl(by_id)
        pipe.get(by_address)
        pipe.ttl(by_address)
        n_id, ttl_id, n_address, ttl_address = pipe.execute()
        wait = 0
        if n_id is not None and int(n_id) >= self.failures:
            wait = max(wait, int(ttl_id))
        if n_address is not None and int(n_address) >= self.failures * ADDRESS_FACTOR:
            wait = max(wait, int(ttl_address))
        return max(wait, 0)

    def failed(self, reseller_id: str, address: str) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key in self._keys(reseller_id, address):
            # the window starts at the first failure (SET NX EX works on Redis 6.2 too)
            pipe.set(key, 0, ex=self.window_s, nx=True)
            pipe.incr(key)
        pipe.execute()

    def succeeded(self, reseller_id: str, address: str) -> None:
        self.redis.delete(self._keys(reseller_id, address)[0])
