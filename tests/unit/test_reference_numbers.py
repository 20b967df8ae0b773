"""The reference rater's own number normalisation (rater/reference.py) against the product's
(rater/switches/numbers.py): same digits or the same error, on worked examples and on random
input. The reference imports neither it nor any other product logic, so it stays an oracle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rater import reference
from rater.errors import NormalisationError
from rater.settings import PROJECT_ROOT
from rater.switches.numbers import normalise_number
from rater.tariffs.model import SwitchSettings

SWITCHES = [
    SwitchSettings(name="a2b", country_code="1", trunk_prefix="1"),
    SwitchSettings(name="ams", country_code="31", trunk_prefix="0"),
    SwitchSettings(name="bare"),
    SwitchSettings(name="dt", country_code="44", tech_prefix=r"^(?:78816|25830)"),
    SwitchSettings(name="five", country_code="49", tech_prefix=r"^\d{5}#"),
    SwitchSettings(name="none", country_code="33", trunk_prefix="", tech_prefix=""),
]


def _outcome(function: object, raw: str, switch: SwitchSettings) -> tuple[str, str]:
    try:
        return "number", function(raw, switch)  # type: ignore[operator]
    except NormalisationError as error:
        return "error", str(error)


@pytest.mark.parametrize(
    "raw",
    [
        "01113474604646", "5082159142", "15082159142", "78816#15082159142", "+34798400122",
        "0034798400122", "4930123456", "0201234567", "0111123456", "0049301234567",
        "sip:+31201234567@example.com;user=phone", "sip:0201234567@10.0.0.1",
        "tel:+1-508-215-9142", "%2B4930123456@host", " +44 (20) 7946-0958 ", "7881602079460958",
        "", "   ", "anonymous", "12ab34567", "123*456", "12345", "+1234567890123456", "+0201234567",
        "00", "+", "78816#", "sips:alice@host", "0612345678", "1234567890",
    ],
)  # fmt: skip
def test_worked_examples_agree(raw: str) -> None:
    for switch in SWITCHES:
        assert _outcome(reference.normalise, raw, switch) == _outcome(normalise_number, raw, switch)


_PIECES = st.lists(
    st.sampled_from(
        ["+", "00", "011", "0", "1", "31", "44", "6", "9", "12", "555", "0101", "78816#",
         "12345#", "#", " ", "-", ".", "(", ")", "\t", "a", "*", "%2B", "é", "١"]
    ),
    max_size=10,
)  # fmt: skip


@st.composite
def dialled(draw: st.DrawFn) -> str:
    body = "".join(draw(_PIECES)) + draw(st.text("0123456789", max_size=12))
    wrap = draw(
        st.sampled_from(["{}", "sip:{}@host", "SIP:{};user=phone", "tel:{}", "{}@10.0.0.1"])
    )
    return wrap.format(body)


@settings(max_examples=3000, deadline=None)
@given(dialled(), st.sampled_from(SWITCHES))
def test_random_numbers_agree(raw: str, switch: SwitchSettings) -> None:
    assert _outcome(reference.normalise, raw, switch) == _outcome(normalise_number, raw, switch)


def _imports(path: Path) -> set[str]:
    """The modules a file imports, and 'module.name' for each `from module import name`."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_reference_imports_no_product_logic() -> None:
    imported = _imports(PROJECT_ROOT / "rater" / "reference.py")
    allowed = ("rater.errors", "rater.tariffs.model")  # the types it takes and raises
    product = {m for m in imported if m.split(".")[0] == "rater"}
    assert product, "the check found nothing: it would pass on anything"
    assert all(m.startswith(allowed) for m in product), sorted(product)


def test_authorization_does_not_rate_with_the_reference() -> None:
    """The slow reference is for checks; authorization matches and prices with the kernel."""
    for path in (PROJECT_ROOT / "rater" / "accounts").glob("*.py"):
        # both `import rater.reference` and `from rater import reference` show as this
        assert "rater.reference" not in _imports(path), path
