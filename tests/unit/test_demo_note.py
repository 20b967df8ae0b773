"""The demo says why balances end below zero (rater/demo.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from rater.demo import negative_balances_note


def _accounts(*balances: int) -> list[Any]:
    return [SimpleNamespace(balance=b) for b in balances]


def test_no_note_when_nothing_is_below_zero() -> None:
    assert negative_balances_note(_accounts(0, 5), _accounts(1)) == ""


def test_the_note_counts_and_explains() -> None:
    note = negative_balances_note(_accounts(-1, 5, 7), _accounts(-3, -1, 0, 2))
    assert note.startswith("1 of 3 customers and 2 of 4 cards ended below zero.")
    assert "rater authorize" in note
    assert "docs/DESIGN.md section 4" in note
