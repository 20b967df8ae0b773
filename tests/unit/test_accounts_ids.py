"""Authorization ids: one rule (rater/accounts/ids.py) for every place an auth id enters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.accounts.ids import MAX_AUTH_ID_BYTES, auth_id_problem, check_auth_id, new_auth_id
from rater.errors import AuthorizationError


@pytest.mark.parametrize(
    "good", ["a1b2c3d4e5f60718", "A-1_b.c@d+e", "x" * MAX_AUTH_ID_BYTES, "sw1/2026-11-01#17"]
)
def test_printable_ids_pass(good: str) -> None:
    assert auth_id_problem(good) is None
    assert check_auth_id(good) == good


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "empty"),
        ("a\nb", "'\\n'"),  # the debit script's list separator: it would shift the list
        ("a\rb", "'\\r'"),
        ("a b", "' '"),
        ("a:b", "':'"),  # reservation values and key names use ':'
        ("{r:R1}x", "'{'"),  # a hash tag would move keys to another cluster slot
        ("a}b", "'}'"),
        ("caf\u00e9", "'\u00e9'"),  # printable ASCII only: bytes and characters are the same
        ("a\x00b", "'\\x00'"),
        ("x" * (MAX_AUTH_ID_BYTES + 1), f"at most {MAX_AUTH_ID_BYTES}"),
    ],
)
def test_ids_the_scripts_cannot_hold_are_refused_with_the_reason(bad: str, why: str) -> None:
    problem = auth_id_problem(bad)
    assert problem is not None
    assert why in problem
    with pytest.raises(AuthorizationError, match="auth_id"):
        check_auth_id(bad)


def test_a_non_string_is_refused() -> None:
    assert auth_id_problem(17) == "must be a string, not int"  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_accepted_ids_cannot_split_or_retag_anything(text: str) -> None:
    if auth_id_problem(text) is None:
        assert 1 <= len(text.encode()) <= MAX_AUTH_ID_BYTES
        assert not any(c in text for c in "\n\r\t :{}")
        assert text.isascii()
        assert text.isprintable()


def test_new_ids_pass_the_rule() -> None:
    made = {new_auth_id() for _ in range(100)}
    assert len(made) == 100
    assert all(auth_id_problem(i) is None for i in made)
