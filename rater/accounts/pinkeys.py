"""The keys PINs are hashed with: HMAC-SHA256(secret, '<card number>:<PIN>') (docs/REDIS_KEYS.md,
"PIN keys").

A PIN has 10^4 values, so its HMAC protects it only as long as the secret stays secret: there
is no default (rater/settings.py refuses to go on without one) and a secret shorter than
32 bytes is refused. Each card keeps the key id beside its HMAC (card fields `pin` and
`pinkey`), so a new secret can be introduced while PINs hashed with the earlier ones still
verify: RATER_PIN_SECRET holds the current secret, RATER_PIN_SECRETS_OLD (or the file
RATER_PIN_SECRETS_OLD_FILE) the earlier ones, and rater/redis/lua/pin.lua re-hashes a PIN with
the current key on its next right use.

A key id is derived from its secret (the first 8 hex digits of a SHA-256 over a fixed label
and the secret), so ids cannot be mislabelled by hand; knowing one does not help guess a
32-byte secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rater.errors import ConfigError
from rater.settings import STACK_PIN_SECRET, Secret, Settings


def key_id(secret: str) -> str:
    """The id stored beside each HMAC made with `secret`."""
    return hashlib.sha256(b"rater pin key id\x00" + secret.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class PinKey:
    """One HMAC key and its id (the secret never prints itself)."""

    secret: Secret = field(repr=False)
    key_id: str

    @classmethod
    def of(cls, secret: str) -> PinKey:
        return cls(Secret(secret), key_id(secret))

    def hmac(self, number: str, pin: str) -> str:
        """HMAC-SHA256 of 'number:pin' (the number salts equal PINs of two cards apart)."""
        return hmac.new(
            self.secret.encode(), f"{number}:{pin}".encode(), hashlib.sha256
        ).hexdigest()

    def hmacs(self, numbers: Sequence[str], pins: Sequence[str]) -> list[str]:
        """hmac() for many cards with the one-shot C HMAC (hmac.digest): same digests."""
        key, digest = self.secret.encode(), hmac.digest
        pairs = zip(numbers, pins, strict=True)
        return [digest(key, f"{n}:{p}".encode(), "sha256").hex() for n, p in pairs]


@dataclass(frozen=True)
class PinKeys:
    """The current key (new HMACs) and the earlier ones (still verified)."""

    current: PinKey
    old: tuple[PinKey, ...] = ()
    source: str = ""  # where the current secret came from, for messages

    @classmethod
    def from_settings(cls, settings: Settings) -> PinKeys:
        """ConfigError (one line naming the variable) without a usable secret."""
        secret, source = settings.pin_secret_value()
        current = PinKey.of(secret)
        old = [PinKey.of(s) for s in settings.pin_old_secret_values() if s != secret]
        unique = {key.key_id: key for key in old if key.key_id != current.key_id}
        return cls(current, tuple(unique.values()), source)

    def all(self) -> tuple[PinKey, ...]:
        return (self.current, *self.old)

    def candidates(self, number: str, pin: str) -> list[str]:
        """pin.lua's arguments: key id and HMAC of the PIN under every known key, current first."""
        out: list[str] = []
        for key in self.all():
            out += [key.key_id, key.hmac(number, pin)]
        return out


def pin_keys(settings: Settings) -> PinKeys:
    return PinKeys.from_settings(settings)


def ensure_stack_secret(stack_dir: Path) -> Path:
    """The local stack's PIN secret (<stack_dir>/pin-secret, mode 0600), made once with 48
    random bytes; an existing one is kept (the PIN HMACs in the stack's Redis depend on it)."""
    path = stack_dir / STACK_PIN_SECRET
    stack_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        if not path.read_text().strip():
            raise ConfigError(
                f"{path} is empty: delete it and run `rater stack up` again"
            ) from None
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    return path
