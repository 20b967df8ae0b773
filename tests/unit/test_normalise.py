"""Number normalisation: worked examples (the a2billing sample's forms), rejects with reasons,
and the batch fast path agreeing with the plain definition on random input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rater.errors import NormalisationError
from rater.switches.numbers import normalise_many, normalise_number
from rater.tariffs.model import SwitchSettings

NANP = SwitchSettings(name="a2b", country_code="1", trunk_prefix="1")
NL = SwitchSettings(name="ams", country_code="31", trunk_prefix="0")
BARE = SwitchSettings(name="bare")  # no country configured
DIGIT_TECH = SwitchSettings(name="dt", country_code="44", tech_prefix=r"^(?:78816|25830)")


@pytest.mark.parametrize(
    ("raw", "switch", "expected"),
    [
        ("01113474604646", NANP, "13474604646"),  # 011 international from North America
        ("5082159142", NANP, "15082159142"),  # 10-digit NANP with country 1
        ("15082159142", NANP, "15082159142"),  # 1 + 10 digits
        ("78816#15082159142", NANP, "15082159142"),  # carrier tech prefix
        ("25830#150821591423", NANP, "150821591423"),
        ("+34798400122", BARE, "34798400122"),  # cdr-stats: E.164 with '+'
        ("0034798400122", BARE, "34798400122"),
        ("01113474604646", BARE, "13474604646"),
        ("4930123456", BARE, "4930123456"),  # E.164 written without '+'
        ("0201234567", NL, "31201234567"),  # national with trunk prefix
        ("0111123456", NL, "31111123456"),  # Zierikzee: 011 is not international here
        ("0049301234567", NL, "49301234567"),
        ("31201234567", NL, "31201234567"),
        ("sip:+31201234567@example.com;user=phone", BARE, "31201234567"),
        ("sip:0201234567@10.0.0.1", NL, "31201234567"),
        ("tel:+1-508-215-9142", BARE, "15082159142"),
        ("%2B4930123456@host", BARE, "4930123456"),
        (" +44 (20) 7946-0958 ", BARE, "442079460958"),
        ("7881602079460958", DIGIT_TECH, "442079460958"),  # digit-only tech prefix, then trunk
    ],
)
def test_examples(raw: str, switch: SwitchSettings, expected: str) -> None:
    assert normalise_number(raw, switch) == expected
    values, lengths, reasons = normalise_many([raw], switch)
    assert (str(values[0]), int(lengths[0]), reasons[0]) == (expected, len(expected), None)


@pytest.mark.parametrize(
    ("raw", "switch", "reason"),
    [
        ("", BARE, "empty"),
        ("   ", BARE, "empty"),
        ("anonymous", BARE, "letters"),
        ("12ab34567", BARE, "letters"),
        ("123*456", BARE, "'*'"),
        ("+12345", BARE, "too short"),  # '+' says E.164 (12345 alone is a short number)
        ("+1234567890123456", BARE, "too long"),
        ("0201234567", BARE, "no country code"),
        ("+0201234567", BARE, "starts with 0"),
        ("00", NL, "too short (0 digits"),
        ("+", BARE, "no digits"),
        ("78816#", NANP, "no digits"),
    ],
)
def test_rejects_name_the_value_and_why(raw: str, switch: SwitchSettings, reason: str) -> None:
    with pytest.raises(NormalisationError) as caught:
        normalise_number(raw, switch)
    assert reason in str(caught.value)
    values, lengths, reasons = normalise_many([raw, "+31201234567"], switch)
    assert (int(values[0]), int(lengths[0])) == (0, 0)
    assert reasons[0] == str(caught.value)
    assert (int(values[1]), reasons[1]) == (31201234567, None)


def test_empty_batch() -> None:
    values, lengths, reasons = normalise_many([], NL)
    assert (values.shape, lengths.shape, reasons) == ((0,), (0,), [])


def test_long_strings_take_the_slow_path() -> None:
    raw = "sip:+31201234567@a-rather-long-host-name.example.com"
    values, _, reasons = normalise_many([raw], BARE)
    assert (int(values[0]), reasons[0]) == (31201234567, None)


switches = st.sampled_from(
    [
        NANP, NL, BARE, DIGIT_TECH,
        SwitchSettings(country_code="44", trunk_prefix=""),
        SwitchSettings(country_code="31", tech_prefix=r"^\d{5}#"),
        SwitchSettings(tech_prefix=r"^\d*#"),
        SwitchSettings(tech_prefix=""),
    ]
)  # fmt: skip
numbers = st.one_of(
    st.builds(
        lambda lead, body: lead + body,
        st.sampled_from(
            [
                "",
                "+",
                "00",
                "011",
                "0",
                "1",
                "78816#",
                "78816#+",
                "1234567#",
                "#",
                "sip:",
                "+0",
                " ",
            ]
        ),
        st.text(alphabet="0123456789", min_size=0, max_size=17),
    ),
    st.text(alphabet="0123456789+#-() abc@:", max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(raws=st.lists(numbers, max_size=20), switch=switches)
def test_batch_agrees_with_the_definition(raws: list[str], switch: SwitchSettings) -> None:
    values, lengths, reasons = normalise_many(raws, switch)
    for i, raw in enumerate(raws):
        assert (int(values[i]), int(lengths[i]), reasons[i]) == definition(raw, switch)


def definition(raw: str, switch: SwitchSettings) -> tuple[int, int, str | None]:
    """normalise_number's answer in normalise_many's terms."""
    try:
        digits = normalise_number(raw, switch)
    except NormalisationError as error:
        return 0, 0, str(error)
    return int(digits), len(digits), None


@given(st.text(alphabet="0123456789", min_size=5, max_size=14).filter(lambda s: s[0] != "0"))
def test_e164_with_plus_is_kept(digits: str) -> None:
    e164 = "1" + digits
    assert normalise_number("+" + e164, NL) == e164
    assert normalise_number("00" + e164, NL) == e164
