"""Report values and renderings: exact money text, ratios, durations, the text table."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from rater.analytics.tables import (
    Col,
    Kind,
    Report,
    duration_text,
    minutes,
    money_text,
    ratio,
    to_text,
)
from rater.money import MICRO


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_money_text_is_exact_with_at_least_two_decimals(micro: int) -> None:
    text = money_text(micro)
    assert Decimal(text) * MICRO == micro
    decimals = text.split(".")[1]
    assert 2 <= len(decimals) <= 6


def test_ratios_round_half_up_and_undefined_ratios_are_none() -> None:
    assert ratio(2, 3, 100) == Decimal("66.7")
    assert ratio(1, 8, 100) == Decimal("12.5")
    assert ratio(1, 16, 100) == Decimal("6.3")  # 6.25 -> 6.3 (half-up, not banker's)
    assert ratio(5, 0, 100) is None
    assert minutes(90) == Decimal("1.50")
    assert minutes(1) == Decimal("0.02")


def test_durations() -> None:
    assert duration_text(None) == "-"
    assert duration_text(Decimal("92.5")) == "1:33"
    assert duration_text(Decimal("5")) == "0:05"
    assert duration_text(Decimal("3725")) == "1:02:05"


def test_text_table_aligns_and_totals() -> None:
    report = Report(
        "Demo",
        (Col("name", "Name", Kind.TEXT), Col("calls", "Calls", Kind.COUNT),
         Col("revenue", "Revenue", Kind.MONEY), Col("asr", "ASR", Kind.PERCENT)),
        [("alpha", 1200, 1_500_000, Decimal("50.0")), ("b", 3, 10, None)],
        ("Total", 1203, 1_500_010, Decimal("49.9")),
    )  # fmt: skip
    lines = to_text(report).splitlines()
    assert lines[0] == "Demo"
    assert lines[2].split() == ["Name", "Calls", "Revenue", "ASR"]
    # money shows as many decimals as the column's most precise value: points line up
    assert lines[4].split() == ["alpha", "1,200", "1.50000", "50.0%"]
    assert lines[5].split() == ["b", "3", "0.00001", "-"]
    assert lines[-1].split() == ["Total", "1,203", "1.50001", "49.9%"]
    assert lines[4].index("1.50000") == lines[5].index("0.00001")
    assert len({len(line) for line in lines[2:4]}) == 1  # header and rule line up
