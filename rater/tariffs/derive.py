"""Deriving a sell table from a buy table (docs/DESIGN.md section 1, the reseller notice's tip 3).

`markup P`: sell = buy x (1 + P/100) (the notice's "40% margin" is `markup 40`);
`margin P`: sell = buy / (1 - P/100), so that P% of the sell price is margin.
Rates, first-step rates and connect fees are scaled exactly (integer micro-units times a
Fraction) and rounded UP to the micro-unit, 6 decimals, so the reseller never sells below
the intended markup. The result is a snapshot: deriving again makes a new version.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

from rater.errors import TariffError
from rater.money import Rounding
from rater.tariffs.model import Steps, TariffRow, TariffTable


def derive(
    base: TariffTable,
    *,
    name: str,
    markup: Decimal | None = None,
    margin: Decimal | None = None,
    steps: Steps | None = None,
    decimals: int | None = None,
    rounding: Rounding | None = None,
) -> TariffTable:
    """A new table priced from `base` with exactly one of markup or margin (percent).

    With `steps`, every row bills with those steps (row overrides of the base are dropped: a
    60/60 calling-card table bills 60/60 everywhere); without, the base's steps are kept.
    """
    if (markup is None) == (margin is None):
        raise TariffError("give exactly one of markup or margin (a percentage)")
    if not name.strip():
        raise TariffError("the derived table needs a name")
    if markup is not None:
        percent = _percent(markup, "markup")
        factor = 1 + percent / 100
        how = f"+{_show(markup)}% markup"
    else:
        assert margin is not None
        percent = _percent(margin, "margin")
        if percent >= 100:
            raise TariffError(f"margin {margin}% must be below 100%")
        factor = 1 / (1 - percent / 100)
        how = f"{_show(margin)}% margin"

    cache: dict[int, int] = {}

    def scale(micro: int) -> int:
        scaled = cache.get(micro)
        if scaled is None:
            # exact: Fraction arithmetic on integers, then up to the next whole micro-unit
            scaled = math.ceil(micro * factor)
            cache[micro] = scaled
        return scaled

    rows = tuple(
        TariffRow(
            prefix=row.prefix,
            destination=row.destination,
            rate=scale(row.rate),
            connect_fee=scale(row.connect_fee),
            steps=None if steps is not None else row.steps,
            first_rate=None if row.first_rate is None else scale(row.first_rate),
            effective_from=row.effective_from,
            effective_to=row.effective_to,
            line=row.line,
        )
        for row in base.rows
    )
    return replace(
        base,
        name=name,
        rows=rows,
        steps=steps or base.steps,
        decimals=base.decimals if decimals is None else decimals,
        rounding=base.rounding if rounding is None else Rounding(rounding),
        version=1,
        effective_from=None,
        created_at=datetime.now(UTC),
        source=f"derived from {base.key} ({how})",
    )


def _percent(value: Decimal | int | str, what: str) -> Fraction:
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise TariffError(f"{what} {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise TariffError(f"{what} {value}% must be a number >= 0")
    return Fraction(number)


def _show(value: Decimal | int | str) -> str:
    return format(Decimal(value).normalize(), "f")
