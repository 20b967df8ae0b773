"""Key names: one reseller's keys share its hash tag; ids that would break keys are refused."""

from __future__ import annotations

import re

import pytest

from rater.accounts.ani import normalise_ani
from rater.errors import AccountError
from rater.redis import keys


def _slot_tag(key: str) -> str:
    """The part Redis Cluster hashes: the first {...} with something inside, else the key."""
    match = re.search(r"\{([^}]+)\}", key)
    return match[1] if match else key


def test_reseller_keys_share_one_hash_tag() -> None:
    names = [
        keys.reseller("R1"),
        keys.customers_of("R1"),
        keys.customer("R1", "C1"),
        keys.cards_of("R1", "C1"),
        keys.card("R1", "812345678901"),
        keys.card_anis("R1", "812345678901"),
        keys.batch("R1", "B1"),
        keys.events("R1"),
        keys.reservations("R1", "c", "C1"),
        keys.reseller_records("R1", 20_600),
        keys.watermark("R1", "topic-uuid", 3),
        keys.correction("R1", "sw1:cdr-1:2"),
    ]
    assert {_slot_tag(n) for n in names} == {"r:R1"}


def test_unknown_accounts_have_their_own_tag() -> None:
    assert _slot_tag(keys.reseller_records("", 20_600)) == "r:"
    assert _slot_tag(keys.watermark("", "t", 0)) == "r:"


def test_global_lookups_have_no_reseller_tag() -> None:
    for name in (keys.account_index("C1"), keys.card_index("8123"), keys.ani_index("3120")):
        assert "{" not in name


@pytest.mark.parametrize("bad", ["", "a:b", "a b", "{x}", "x" * 65, "a\nb", "C1\n"])
def test_ids_that_would_break_keys_are_refused(bad: str) -> None:
    with pytest.raises(AccountError, match="customer id"):
        keys.check_id("customer", bad)


@pytest.mark.parametrize(
    ("raw", "digits"),
    [("+31 20 123 4567", "31201234567"), ("0031201234567", "31201234567"), ("441234", "441234")],
)
def test_caller_numbers_normalised(raw: str, digits: str) -> None:
    assert normalise_ani(raw) == digits


def test_bad_caller_number_refused() -> None:
    with pytest.raises(AccountError, match="not a phone number"):
        normalise_ani("anonymous")


def test_dedup_fields_are_unambiguous() -> None:
    assert keys.dedup_field("a:b", "c") != keys.dedup_field("a", "b:c")
