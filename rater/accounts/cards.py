"""Card numbers (prefix + random digits + Luhn check digit) and PINs (secrets, HMAC-SHA256).

A clear PIN exists only in the CardBatch returned at creation; Redis keeps HMAC-SHA256(pin)
keyed with settings.pin_secret, so a copy of the database does not reveal PINs.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from rater.accounts.luhn import luhn_digit
from rater.errors import ConfigError
from rater.settings import Settings


def new_card_number(settings: Settings) -> str:
    """A random card number of settings.card_number_length digits ending in its Luhn digit."""
    prefix = settings.card_number_prefix
    random_digits = settings.card_number_length - len(prefix) - 1
    if not prefix.isdigit() and prefix:
        raise ConfigError(f"card number prefix {prefix!r} must be digits")
    if random_digits < 6:
        raise ConfigError(
            f"card numbers of {settings.card_number_length} digits with prefix {prefix!r} leave "
            f"{random_digits} random digits; at least 6 are needed"
        )
    payload = prefix + "".join(str(secrets.randbelow(10)) for _ in range(random_digits))
    return payload + luhn_digit(payload)


def new_pin(settings: Settings) -> str:
    if settings.pin_length < 4:
        raise ConfigError(f"PIN length {settings.pin_length} is too short; at least 4")
    return "".join(str(secrets.randbelow(10)) for _ in range(settings.pin_length))


def pin_hash(settings: Settings, number: str, pin: str) -> str:
    """HMAC-SHA256 of 'number:pin' with the server secret (the number salts equal PINs apart)."""
    key = str(settings.pin_secret).encode()
    return hmac.new(key, f"{number}:{pin}".encode(), hashlib.sha256).hexdigest()
