"""PIN secrets: none by default, 32 bytes or more, from a variable, a file or the local stack;
key ids beside the HMACs so earlier secrets still verify (rater/accounts/pinkeys.py)."""

from __future__ import annotations

import hashlib
import hmac
import stat
import time
from pathlib import Path

import pytest

from rater.accounts.pinkeys import PinKey, PinKeys, ensure_stack_secret, key_id
from rater.errors import ConfigError
from rater.settings import STACK_PIN_SECRET, Settings

SECRET = "test-pin-secret-0123456789abcdef-not-for-production"
OTHER = "another-test-pin-secret-fedcba9876543210-not-for-use"


def _settings(tmp_path: Path, **env: str) -> Settings:
    """Settings from these variables only, with a stack folder that holds no secret."""
    return Settings.from_env({"RATER_STACK_DIR": str(tmp_path / "stack"), **env})


def test_there_is_no_default_pin_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(ConfigError) as error:
        PinKeys.from_settings(settings)
    message = str(error.value)
    assert "RATER_PIN_SECRET is not set" in message
    assert "\n" not in message  # one line, naming the variable


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"RATER_PIN_SECRET is 31 bytes; at least 32"):
        PinKeys.from_settings(_settings(tmp_path, RATER_PIN_SECRET="x" * 31))
    assert PinKeys.from_settings(_settings(tmp_path, RATER_PIN_SECRET="x" * 32))


def test_secret_from_a_file_or_the_local_stack(tmp_path: Path) -> None:
    secret_file = tmp_path / "pin.key"
    secret_file.write_text(SECRET + "\n")
    from_file = PinKeys.from_settings(_settings(tmp_path, RATER_PIN_SECRET_FILE=str(secret_file)))
    assert from_file.current == PinKey.of(SECRET)  # the trailing newline is not part of it
    with pytest.raises(ConfigError, match="not both"):
        PinKeys.from_settings(
            _settings(tmp_path, RATER_PIN_SECRET=SECRET, RATER_PIN_SECRET_FILE=str(secret_file))
        )
    with pytest.raises(ConfigError, match=r"RATER_PIN_SECRET_FILE: cannot read .*missing"):
        PinKeys.from_settings(_settings(tmp_path, RATER_PIN_SECRET_FILE=str(tmp_path / "missing")))
    # neither variable: the local stack's secret, written by `rater stack up`
    made = ensure_stack_secret(tmp_path / "stack")
    assert made == tmp_path / "stack" / STACK_PIN_SECRET
    keys = PinKeys.from_settings(_settings(tmp_path))
    assert keys.current == PinKey.of(made.read_text().strip())
    assert "local stack" in keys.source
    # a variable wins over the stack's file
    assert PinKeys.from_settings(_settings(tmp_path, RATER_PIN_SECRET=SECRET)).current == (
        PinKey.of(SECRET)
    )


def test_the_stack_secret_is_private_random_and_kept(tmp_path: Path) -> None:
    first = ensure_stack_secret(tmp_path)
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    text = first.read_text().strip()
    assert len(text.encode()) >= 48
    assert ensure_stack_secret(tmp_path).read_text().strip() == text  # never replaced
    other = ensure_stack_secret(tmp_path / "elsewhere").read_text().strip()
    assert other != text


def test_hmacs_depend_on_key_card_and_pin() -> None:
    key = PinKey.of(SECRET)
    digest = key.hmac("800000000009", "1234")
    assert digest == hmac.new(SECRET.encode(), b"800000000009:1234", hashlib.sha256).hexdigest()
    assert key.hmac("800000000017", "1234") != digest
    assert PinKey.of(OTHER).hmac("800000000009", "1234") != digest
    assert key.hmacs(["800000000009", "800000000017"], ["1234", "1234"]) == [
        digest,
        key.hmac("800000000017", "1234"),
    ]
    assert SECRET not in repr(key)


def test_key_ids_are_stable_and_distinct() -> None:
    assert key_id(SECRET) == key_id(SECRET)
    assert key_id(SECRET) != key_id(OTHER)
    assert len(key_id(SECRET)) == 8


def test_old_secrets_from_variable_and_file(tmp_path: Path) -> None:
    old_file = tmp_path / "old.keys"
    old_file.write_text(f"# retired 2026-11\n{OTHER}\n\n")
    third = "third-test-pin-secret-00000000000000000000000"
    keys = PinKeys.from_settings(
        _settings(
            tmp_path,
            RATER_PIN_SECRET=SECRET,
            RATER_PIN_SECRETS_OLD=f"{third} {SECRET}",  # the current one listed again: ignored
            RATER_PIN_SECRETS_OLD_FILE=str(old_file),
        )
    )
    assert keys.current.key_id == key_id(SECRET)
    assert [k.key_id for k in keys.old] == [key_id(third), key_id(OTHER)]
    assert keys.candidates("81", "0000")[:2] == [
        key_id(SECRET),
        PinKey.of(SECRET).hmac("81", "0000"),
    ]
    assert len(keys.candidates("81", "0000")) == 6


def test_a_known_secret_recovers_every_pin_at_once() -> None:
    """Why the secret is required: with it, a Redis dump gives a 4-digit PIN in milliseconds."""
    key = PinKey.of(SECRET)
    stored = key.hmac("800000000009", "4711")
    started = time.perf_counter()
    found = next(
        p for p in (f"{i:04d}" for i in range(10_000)) if key.hmac("800000000009", p) == stored
    )
    assert found == "4711"
    assert time.perf_counter() - started < 5  # about 0.05 s on this machine
