"""`rater reseller password ID`: from standard input (no terminal), hashed with argon2."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_admin_cli_helpers import RATER, cli_env

from rater.accounts.api import Accounts
from rater.portal.passwords import check_password, generation
from rater.redis import keys
from rater.settings import Settings

pytestmark = pytest.mark.integration


def _password(settings: Settings, tmp_path: Path, *args: str, text: str) -> Any:
    return subprocess.run(
        [str(RATER), "reseller", "password", *args], input=text, env=cli_env(settings),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_password_from_stdin(settings: Settings, redis: Any, tmp_path: Path) -> None:
    Accounts(settings, redis).create_reseller("R1", "One", credit="0", buy_tariff="buy")
    done = _password(settings, tmp_path, "R1", text="a long enough password\n")
    assert done.returncode == 0, done.stderr
    assert "portal password set" in done.stdout
    stored = redis.hget(keys.portal_login("R1"), "pw").decode()
    assert stored.startswith("$argon2id$")
    assert "a long enough password" not in stored
    assert check_password(redis, "R1", "a long enough password") == generation(redis, "R1")
    assert check_password(redis, "R1", "a long enough passwore") is None
    short = _password(settings, tmp_path, "R1", text="short\n")
    assert (short.returncode, short.stderr.strip()) == (
        1, "error: a portal password needs at least 10 characters"
    )  # fmt: skip
    unknown = _password(settings, tmp_path, "R9", text="a long enough password\n")
    assert unknown.returncode == 1
    assert "reseller 'R9' does not exist" in unknown.stderr
