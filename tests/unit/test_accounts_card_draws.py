"""Bulk card numbers, PINs, PIN hashes and ledger ids (rater/accounts/cards.py, ledger.py)."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.accounts import cards
from rater.accounts.cards import (
    luhn_digits,
    new_card_numbers,
    new_pins,
    random_digit_strings,
)
from rater.accounts.ledger import COLUMNS, CardIssues, LedgerEntry, _row_json, new_entry_ids
from rater.accounts.luhn import luhn_digit, luhn_valid
from rater.accounts.pinkeys import PinKey
from rater.errors import ConfigError
from rater.settings import Settings


@given(st.lists(st.text("0123456789", min_size=11, max_size=11), min_size=1, max_size=50))
def test_luhn_digits_match_the_one_by_one_digit(payloads: list[str]) -> None:
    assert luhn_digits(payloads) == [luhn_digit(p) for p in payloads]


def test_luhn_digits_of_mixed_lengths_and_bad_input() -> None:
    assert luhn_digits(["7992739871", "42"]) == ["3", luhn_digit("42")]
    with pytest.raises(ValueError, match="digits"):
        luhn_digits(["12a4", "1234"])


@pytest.mark.parametrize(("length", "prefix"), [(12, "8"), (16, "42"), (24, ""), (40, "9")])
def test_batch_numbers_follow_the_settings(length: int, prefix: str) -> None:
    settings = Settings(card_number_length=length, card_number_prefix=prefix)
    numbers = new_card_numbers(settings, 500)
    assert len(set(numbers)) == 500
    for number in numbers:
        assert len(number) == length
        assert number.startswith(prefix)
        assert luhn_valid(number)


def test_batch_numbers_avoid_the_given_ones_and_stay_distinct(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A draw that repeats itself or hits `avoid` is drawn again."""
    settings = Settings(card_number_length=8, card_number_prefix="1")
    draws = iter([["000001", "000001", "000002"], ["000003"], ["000004"]])
    monkeypatch.setattr(cards, "random_digit_strings", lambda count, width: next(draws))
    numbers = new_card_numbers(settings, 3, avoid={"1000002" + luhn_digit("1000002")})
    assert [n[:-1] for n in numbers] == ["1000001", "1000003", "1000004"]


def test_a_batch_too_big_for_the_number_space_is_refused() -> None:
    settings = Settings(card_number_length=8, card_number_prefix="1")  # 6 random digits
    with pytest.raises(ConfigError, match="widen card_number_length"):
        new_card_numbers(settings, 600_000)
    with pytest.raises(ConfigError, match="random digits"):
        new_card_numbers(Settings(card_number_length=6, card_number_prefix="8"), 1)


def test_random_digits_are_uniform_and_of_any_width() -> None:
    for width in (1, 4, 18, 19, 37):
        values = random_digit_strings(300, width)
        assert len(values) == 300
        assert all(len(v) == width and v.isdigit() for v in values)
    digits = Counter("".join(random_digit_strings(20_000, 5)))  # 100,000 digits
    # each digit expected 10,000 times, standard deviation ~95: 8 sigma would be a real bias
    assert all(abs(digits[d] - 10_000) < 800 for d in "0123456789"), digits


def test_pins_and_their_bulk_hashes() -> None:
    settings = Settings(pin_length=6)
    pins = new_pins(settings, 200)
    assert all(len(p) == 6 and p.isdigit() for p in pins)
    numbers = new_card_numbers(settings, 200)
    key = PinKey.of("test-pin-secret-0123456789abcdef-not-for-production")
    assert key.hmacs(numbers, pins) == [key.hmac(n, p) for n, p in zip(numbers, pins, strict=True)]
    with pytest.raises(ConfigError, match="too short"):
        new_pins(Settings(pin_length=3), 1)


def test_entry_ids_look_like_uuid4_hex() -> None:
    ids = new_entry_ids(1000)
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", i) for i in ids)


def test_card_issue_columns_are_the_rows_of_ledger_entries() -> None:
    ts = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    issues = CardIssues("R1", "C1", ["81", "82"], 5_000_000, "EUR", "card issued", "B1", "me", ts)
    rows = list(zip(*issues.columns(), strict=True))
    assert len(issues) == 2
    for row, number in zip(rows, ["81", "82"], strict=True):
        entry = LedgerEntry(
            level="card", reseller="R1", customer="C1", card=number, kind="card_issue",
            amount=5_000_000, currency="EUR", reason="card issued", ref="B1", actor="me",
            entry_id=row[0], ts=ts,
        )  # fmt: skip
        assert row == entry.row()
        # the pending-list form reads back as the same entry
        assert LedgerEntry.from_json(_row_json(row)) == entry
        assert json.loads(_row_json(row)).keys() == set(COLUMNS)
