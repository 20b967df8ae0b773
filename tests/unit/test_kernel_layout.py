"""The compiled-tariff layout is one contract (kernels/layout.py) between the compiler and the
kernels: these tests tie the remaining copies to it."""

from __future__ import annotations

import inspect
import re
from datetime import UTC, datetime
from decimal import Decimal

import kernels.rate
from kernels import layout
from rater.money import Rounding
from rater.tariffs.compile import compile_tables
from rater.tariffs.model import Steps, TariffRow, TariffTable


def test_rounding_codes_are_the_money_module_codes() -> None:
    assert Rounding.UP.code == layout.ROUND_UP
    assert Rounding.HALF_UP.code == layout.ROUND_HALF_UP
    assert Rounding.DOWN.code == layout.ROUND_DOWN


def test_the_kernel_unpacks_its_tariff_arguments_in_layout_order() -> None:
    source = inspect.getsource(kernels.rate.rate_group)
    unpacked = re.search(r"^\s*([\w, ]+) = tariffs$", source, re.M)
    assert unpacked is not None, "rate_group no longer unpacks `tariffs` in one statement"
    assert tuple(n.strip() for n in unpacked[1].split(",")) == layout.TARIFF_ARGS


def test_compiled_records_put_each_value_in_its_named_column() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    row = TariffRow(
        "3161",
        "Netherlands mobile",
        rate=70_000,
        first_rate=90_000,
        connect_fee=10_000,
        steps=Steps(30, 6),
        effective_from=start,
    )
    table = TariffTable(name="t", rows=(row,), decimals=4, rounding=Rounding.HALF_UP)
    compiled = compile_tables({"t": [table]})
    assert compiled.kernel_args() == tuple(getattr(compiled, n) for n in layout.TARIFF_ARGS)
    record = compiled.row_data[0]
    assert record.shape == (layout.ROW_COLUMNS,)
    assert record[layout.ROW_FROM] == int(start.timestamp())
    assert record[layout.ROW_TO] == layout.TIME_MAX
    assert record[layout.ROW_RATE] == 70_000
    assert record[layout.ROW_BASE60] == 60 * 10_000 + 90_000 * 30
    assert record[layout.ROW_STEPS] == (30 << 32) + 6
    unit = int(Decimal(10) ** (6 - 4))
    assert record[layout.ROW_ROUND] == unit * 4 + layout.ROUND_HALF_UP
    node = compiled.node_data[record[layout.ROW_NODE] // 32]
    assert record[layout.ROW_NODE] % 32 == len("3161")
    assert node.shape == (layout.NODE_COLUMNS,)
    assert node[layout.NODE_LEN] == len("3161")
    assert node[layout.NODE_ROW_LO] == 0
    assert node[layout.NODE_ROW_HI] == 1


def test_padded_space_holds_the_largest_root_and_every_level() -> None:
    assert layout.PAD_DIGITS == 17
    assert layout.ROOT_DIGITS + (layout.LEVELS - 1) * layout.BLOCK_DIGITS == layout.PAD_DIGITS
