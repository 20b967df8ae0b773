"""Key names: one encoding for every name from outside; ids rater creates encode to themselves;
the Lua key functions are generated from the same shapes."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from rater.redis import keys

#: names that have broken keys: the registry's own key names, hash tag braces, separators
AWKWARD = [
    "names", "generation", "switch:names", "tariff:names", "{r:R1}", "}x", "a{b}c", "{}",
    ":", "a:b", "\x00", "a\nb", "%41", "%", " ", "r:", "Calling cards rates 40% - 60/60 billing",
    "Ünïcödé", "\ud800",
]  # fmt: skip
names = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(alphabet=st.sampled_from("{}:%\x00\n aZ9_.@+-"), max_size=12),
    st.text(max_size=12),
)


def _tag_of(key: str) -> str:
    """What Redis Cluster hashes: the first {...} with something inside, else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


@given(names)
def test_encoding_round_trips_and_keeps_key_syntax_out(value: str) -> None:
    encoded = keys.name(value)
    assert keys.name_of(encoded) == value
    assert re.fullmatch(r"[A-Za-z0-9_.@+%\-]*", encoded)


@given(st.from_regex(r"[A-Za-z0-9_.@+\-]{1,64}", fullmatch=True))
def test_ids_rater_creates_encode_to_themselves(value: str) -> None:
    assert keys.check_id("customer", value) == value
    assert keys.name(value) == value
    assert keys.customer("R1", value) == f"{{r:R1}}:c:{value}"


@given(names, names)
def test_distinct_names_give_distinct_keys_and_never_a_fixed_key(a: str, b: str) -> None:
    for build in (keys.switch, keys.account_index, keys.card_index):
        assert (build(a) == build(b)) == (a == b)
        assert build(a) not in keys.FIXED


@given(names.filter(bool), st.integers(min_value=1, max_value=10**6))
def test_a_tariff_tables_keys_share_one_slot(name: str, version: int) -> None:
    index, blob = keys.tariff_index(name), keys.tariff_version(name, version)
    assert _tag_of(index) == _tag_of(blob) == keys.name(name)
    assert key_slot(index.encode()) == key_slot(blob.encode())


@given(names, names, names)
def test_a_resellers_keys_share_its_slot_whatever_the_other_names(r: str, c: str, k: str) -> None:
    built = [
        keys.reseller(r), keys.customer(r, c), keys.card(r, k), keys.card_anis(r, k),
        keys.reservations(r, "c", c), keys.reseller_records(r, 7), keys.watermark(r, c, 3),
        keys.correction(r, f"rerate:1:{c}:{k}:2"),
    ]  # fmt: skip
    assert {_tag_of(key) for key in built} == {"r:" + keys.name(r)}


def test_every_shape_has_a_literal_family_prefix() -> None:
    """No family starts with a segment, and no fixed key has the form '<family>:<segment>'."""
    for shape in keys.SHAPES.values():
        first_is_segment, _ = shape.pieces()[0]
        assert not first_is_segment, shape
    literal_heads = {shape.pieces()[0][1] for shape in keys.SHAPES.values()}
    for fixed in keys.FIXED:
        for head in literal_heads:
            if fixed.startswith(head):
                rest = fixed[len(head) :]
                assert not re.fullmatch(r"[A-Za-z0-9_.@+%\-]*", rest), (fixed, head)
