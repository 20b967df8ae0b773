"""Luhn check digits for card numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rater.accounts.cards import new_card_number, new_pin
from rater.accounts.luhn import luhn_digit, luhn_valid
from rater.accounts.pinkeys import PinKey
from rater.errors import ConfigError
from rater.settings import Settings


@pytest.mark.parametrize(
    "number",
    ["79927398713", "4539578763621486", "371449635398431", "6011111111111117", "0"],
)
def test_known_valid_numbers(number: str) -> None:
    if len(number) < 2:
        assert not luhn_valid(number)
    else:
        assert luhn_valid(number)


def test_known_check_digit() -> None:
    assert luhn_digit("7992739871") == "3"


def _reference_valid(number: str) -> bool:
    """The textbook statement: double every second digit from the right, sum digits, mod 10."""
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit // 10 + digit % 10
    return total % 10 == 0


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_check_digit_matches_textbook_rule(payload: str) -> None:
    number = payload + luhn_digit(payload)
    assert luhn_valid(number)
    assert _reference_valid(number)


@given(st.text(alphabet="0123456789", min_size=1, max_size=20), st.data())
def test_any_single_digit_error_is_caught(payload: str, data: st.DataObject) -> None:
    number = payload + luhn_digit(payload)
    position = data.draw(st.integers(0, len(number) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
    assert not luhn_valid(number[:position] + wrong + number[position + 1 :])


def test_non_digits_refused() -> None:
    with pytest.raises(ValueError, match="digits"):
        luhn_digit("12a")
    assert not luhn_valid("12a4")


def test_card_numbers_follow_the_settings() -> None:
    settings = Settings(card_number_length=16, card_number_prefix="42")
    numbers = {new_card_number(settings) for _ in range(200)}
    assert len(numbers) == 200  # random enough not to collide in a small batch
    for number in numbers:
        assert len(number) == 16
        assert number.startswith("42")
        assert luhn_valid(number)


def test_too_short_card_numbers_refused() -> None:
    with pytest.raises(ConfigError, match="random digits"):
        new_card_number(Settings(card_number_length=6, card_number_prefix="8"))


def test_pins_and_their_hashes() -> None:
    settings = Settings(pin_length=6)
    pin = new_pin(settings)
    assert len(pin) == 6
    assert pin.isdigit()
    key = PinKey.of("test-pin-secret-0123456789abcdef-not-for-production")
    digest = key.hmac("800000000009", pin)
    assert len(digest) == 64
    assert pin not in digest
    # the same PIN on another card or with another secret hashes differently
    assert key.hmac("800000000017", pin) != digest
    other = PinKey.of("another-test-pin-secret-fedcba9876543210-not-for-use")
    assert other.hmac("800000000009", pin) != digest
